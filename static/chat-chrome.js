// Understudy: the chat's small things. Times in the reader's zone, the sidebar's markers kept
// fresh, the Undo offer's timer, and the outage panel's folded state. Streaming is app.js's.
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

  // --- the sidebar: refreshed when a reply starts or lands here, polled while one is written --
  var pollTimer = null;
  var inFlight = false;
  var again = false;
  var failures = 0; // polls that could not reach the server: each doubles the wait (to 16x)

  // A reply's stream (static/stream.js) has lost the server: asking for the list would only fail.
  function offline() {
    return document.querySelector('.turn-stream[data-connection="waiting"], .turn-stream[data-connection="retrying"]') !== null;
  }

  function list() { return byId("conversation-list"); }

  function refreshSidebar() {
    var el = list();
    if (!el || !window.htmx) return;
    if (inFlight) { again = true; return; }
    clearTimeout(pollTimer);
    pollTimer = null;
    inFlight = true;
    var query = new URLSearchParams();
    var current = el.getAttribute("data-current");
    if (current) query.set("current", current);
    // As deep as the user opened it with "Show older"; focus stays on a link (same id).
    query.set("shown", String(el.querySelectorAll("li[data-conversation]").length));
    var url = el.getAttribute("data-sidebar-url") + "?" + query.toString();
    htmx.ajax("GET", url, { target: "#conversation-list", swap: "outerHTML" }).then(
      function () { failures = 0; },
      function () { failures = Math.min(failures + 1, 4); }
    ).then(function () {
      inFlight = false;
      if (again) { again = false; refreshSidebar(); } else schedulePoll();
    });
  }

  function schedulePoll() {
    var el = list();
    if (pollTimer || inFlight || !el || !el.querySelector('[data-activity="writing"]')) return;
    var ms = parseInt(el.getAttribute("data-poll-ms") || "2000", 10) * Math.pow(2, failures);
    pollTimer = setTimeout(function () {
      pollTimer = null;
      if (offline()) schedulePoll(); // the stream says when the server is back
      else if (!document.hidden) refreshSidebar(); // a hidden tab asks again when shown
    }, ms);
  }

  function transcriptStreaming() {
    return document.querySelector('#transcript [data-testid="assistant-message"][data-state="streaming"]') !== null;
  }

  function setupSidebar() {
    var log = byId("transcript");
    if (log) {
      var streaming = transcriptStreaming();
      new MutationObserver(function () {
        var now = transcriptStreaming();
        if (now === streaming) return;
        streaming = now; // a reply started (mark it) or landed here (seen, so never "new")
        refreshSidebar();
      }).observe(log, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-state"] });
    }
    document.addEventListener("visibilitychange", function () { if (!document.hidden) schedulePoll(); });
    schedulePoll();
  }

  // --- Undo after a delete: offered for some seconds, paused while pointed at or focused -------
  function setupUndo() {
    var toast = byId("undo-toast");
    if (!toast) return;
    var end = toast.querySelector("[data-undo-end]");
    var seconds = parseInt(toast.getAttribute("data-undo-seconds") || "0", 10);
    var left = seconds * 1000;
    var timer = null;
    var since = 0;
    var hovered = false;
    var focused = false;
    var undoing = false;

    function run() {
      if (timer || hovered || focused || undoing) return;
      since = Date.now();
      timer = setTimeout(function () {
        timer = null;
        // The offer ends: nothing can bring the conversation back, so it goes for good now.
        if (!undoing && document.body.contains(toast) && end) end.requestSubmit();
      }, Math.max(0, left));
    }
    function pause() {
      if (!timer) return;
      clearTimeout(timer);
      timer = null;
      left -= Date.now() - since;
    }

    toast.addEventListener("mouseenter", function () { hovered = true; pause(); });
    toast.addEventListener("mouseleave", function () { hovered = false; run(); });
    toast.addEventListener("focusin", function () { focused = true; pause(); });
    toast.addEventListener("focusout", function (event) {
      if (event.relatedTarget && toast.contains(event.relatedTarget)) return;
      focused = false;
      run();
    });
    toast.addEventListener("submit", function (event) {
      if (event.target !== end) { undoing = true; pause(); } // Undo: never purge after it
    }, true);
    toast.addEventListener("htmx:afterRequest", function (event) {
      if (event.target === end || event.detail.successful) return;
      undoing = false; // the undo was refused (said by the flash): the offer runs on
      run();
    });

    var status = byId("status");
    var title = toast.getAttribute("data-undo-title") || "the conversation";
    if (status) status.textContent = "Deleted “" + title + "”. Undo is available for " + seconds + " seconds.";
    run();
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
    if (window.htmx) {
      htmx.onLoad(function (elt) {
        if (elt.querySelectorAll) formatTimes(elt);
        schedulePoll(); // a list swapped in by a rename or "Show older" may have a reply being written
      });
    }
    setupSidebar();
    setupUndo();
    setupOutage();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
