// Understudy: the chat's small things: the outage panel's folded state. Streaming is app.js's.
(function () {
  "use strict";

  function byId(id) { return document.getElementById(id); }

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
    setupOutage();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
