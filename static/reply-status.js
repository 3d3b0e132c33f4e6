// Understudy: the wait on a reply that has no text yet. The server says who is being asked and
// how long the wait has lasted when it rendered the line (data-waited-s); this counts on from
// there, once a second, and reveals "Answer with ... now" once the wait passes its threshold.
// The counter is aria-hidden: the status region announces what changes, not every tick.
(function () {
  "use strict";

  var SHOW_AFTER_S = 1;
  var origins = new WeakMap(); // element -> the moment its wait began, on this page's clock

  function origin(el) {
    var start = origins.get(el);
    if (start === undefined) {
      var waited = parseFloat(el.getAttribute("data-waited-s") || "0") || 0;
      start = performance.now() - waited * 1000;
      origins.set(el, start);
    }
    return start;
  }

  function tick() {
    var now = performance.now();
    var counters = document.querySelectorAll(".elapsed[data-waited-s]");
    for (var i = 0; i < counters.length; i++) {
      var seconds = Math.floor((now - origin(counters[i])) / 1000);
      var text = seconds >= SHOW_AFTER_S ? " " + seconds + " s" : "";
      if (counters[i].textContent !== text) counters[i].textContent = text;
    }
    var buttons = document.querySelectorAll('[data-testid="answer-now"][hidden]');
    for (var j = 0; j < buttons.length; j++) {
      var after = parseFloat(buttons[j].getAttribute("data-reveal-after-s") || "0") || 0;
      if ((now - origin(buttons[j])) / 1000 >= after) buttons[j].hidden = false;
    }
  }

  // --- the degraded-mode banner: refreshed every data-poll-s seconds -----------------------
  // A plain fetch, not htmx polling: a failed poll (the server restarting) is not an error worth
  // a console line, and while a reply's stream has lost the server (static/stream.js) there is
  // no point asking; the next poll after it is back brings the banner up to date.
  function offline() {
    return document.querySelector('.turn-stream[data-connection="waiting"], .turn-stream[data-connection="retrying"]') !== null;
  }

  function pollBanner() {
    var slot = document.getElementById("degraded-banner-slot");
    if (!slot) return;
    var every = (parseFloat(slot.getAttribute("data-poll-s") || "10") || 10) * 1000;
    var failures = 0;
    function schedule() {
      setTimeout(poll, every * Math.min(8, Math.pow(2, failures)));
    }
    function poll() {
      if (document.hidden || offline()) { schedule(); return; }
      fetch(slot.getAttribute("data-poll"), { headers: { "HX-Request": "true" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error(String(response.status));
          return response.text();
        })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("degraded-banner-slot");
          if (fresh && fresh.innerHTML !== slot.innerHTML) slot.innerHTML = fresh.innerHTML;
          failures = 0;
        })
        .catch(function () { failures += 1; })
        .then(schedule);
    }
    schedule();
  }

  function start() {
    tick();
    setInterval(tick, 250);
    pollBanner();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
