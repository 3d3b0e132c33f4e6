// Understudy: the chat's small things. Times in the reader's zone and the outage panel's folded
// state. Streaming is app.js's.
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

  // --- times: the server writes UTC; write them in the reader's zone and language ------------
  var TODAY = { hour: "2-digit", minute: "2-digit" };
  var THIS_YEAR = { day: "numeric", month: "short" };
  var OTHER_YEAR = { day: "numeric", month: "short", year: "numeric" };
  var FULL = { dateStyle: "full", timeStyle: "long" };

  function formatTimes(root) {
    var now = new Date();
    root.querySelectorAll("time[data-local-time]").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) return; // keep the server's text
      var short = at.toDateString() === now.toDateString() ? TODAY
        : at.getFullYear() === now.getFullYear() ? THIS_YEAR : OTHER_YEAR;
      el.textContent = new Intl.DateTimeFormat(undefined, short).format(at);
      el.title = new Intl.DateTimeFormat(undefined, FULL).format(at);
    });
  }

  // --- the outage panel stays folded once folded ---------------------------------------------
  var OUTAGE_KEY = "understudy.outage-panel";

  function setupOutage() {
    var panel = byId("outage-panel");
    try {
      if (panel && localStorage.getItem(OUTAGE_KEY) === "closed") panel.open = false;
    } catch (e) { /* storage refused: it opens unfolded */ }
    document.addEventListener("toggle", function (event) {
      if (event.target.id !== "outage-panel") return;
      try { localStorage.setItem(OUTAGE_KEY, event.target.open ? "open" : "closed"); } catch (e) { /* as above */ }
    }, true); // toggle does not bubble
  }

  function start() {
    formatTimes(document);
    if (window.htmx) htmx.onLoad(function (elt) { if (elt.querySelectorAll) formatTimes(elt); });
    setupOutage();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
