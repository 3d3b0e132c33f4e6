// Understudy: a reply's live stream (Server-Sent Events) and what happens when its connection drops.
//
// Why not htmx-ext-sse 2.2.4, which this replaces: when a stream drops, the browser's EventSource
// retries on its own every ~3 s forever (the extension only steps in once a source is CLOSED, and
// then doubles up to 64 s), every failed try logs two console errors (the network's, and htmx's
// logError of htmx:sseError), and nothing on the page says the connection is gone, so a reply
// looks frozen. Here the first error closes the EventSource, the reply says "Connection lost,
// reconnecting…" (and #status says it once), and we try again after about 1, 2, 4, 8, then every
// 16 s (jittered, so many tabs do not come back in step). A reconnect needs no state of ours: the
// stream endpoint starts every connection with the reply so far (or, for a turn that ended
// meanwhile, its final state), so nothing is lost or shown twice.
//
// The markup is htmx-ext-sse's, so templates read the same:
//   <div sse-connect="URL" sse-close="done">          one stream; its "done" event ends it
//     <p data-connection-status hidden>…</p>          shown while the connection is lost
//     <div sse-swap="a,b" hx-target="#x" hx-swap="beforeend"></div>
//   </div>
// Each event named in an sse-swap list is an HTML fragment, swapped by htmx.swap into hx-target
// (default: that element) with the hx-swap style, out-of-band swaps honoured, as htmx would.
// Adding an event is adding its name to a list. A stream also ends when its element leaves the page.
(function () {
  "use strict";

  var BASE_DELAY_MS = 1000;
  var MAX_DELAY_MS = 16000;
  var streams = new Set();
  var seen = new WeakSet();
  var unloading = false;

  // Capped exponential backoff with "equal jitter": half the step fixed, half random, so retries
  // spread out but never come in a tight loop.
  function retryDelay(failures) {
    var step = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * Math.pow(2, failures - 1));
    return step / 2 + Math.random() * (step / 2);
  }

  function announce(text) {
    var status = document.getElementById("status");
    if (status) status.textContent = text;
  }

  function bindings(el) {
    var out = [];
    el.querySelectorAll("[sse-swap]").forEach(function (swapper) {
      var target = swapper.getAttribute("hx-target");
      var style = (swapper.getAttribute("hx-swap") || "innerHTML").trim().split(/\s+/)[0];
      swapper.getAttribute("sse-swap").split(",").forEach(function (name) {
        name = name.trim();
        if (name) out.push({ name: name, swapper: swapper, target: target, style: style });
      });
    });
    return out;
  }

  function Stream(el) {
    this.el = el;
    this.url = el.getAttribute("sse-connect");
    this.closeOn = el.getAttribute("sse-close");
    this.status = el.querySelector("[data-connection-status]");
    this.bindings = bindings(el);
    this.source = null;
    this.timer = null;
    this.failures = 0; // consecutive tries that ended before any event came
    this.lost = false;
    this.ended = false;
  }

  Stream.prototype.setState = function (state) {
    this.el.setAttribute("data-connection", state);
  };

  Stream.prototype.connect = function () {
    var self = this;
    this.timer = null;
    if (this.ended || unloading) return;
    if (!this.el.isConnected) { this.end(); return; }
    this.setState(this.lost ? "retrying" : "connecting");
    var source = new EventSource(this.url);
    this.source = source;
    this.bindings.forEach(function (binding) {
      source.addEventListener(binding.name, function (event) { self.receive(binding, event); });
    });
    source.onerror = function () { self.dropped(source); };
  };

  Stream.prototype.receive = function (binding, event) {
    if (this.ended) return;
    if (!this.el.isConnected) { this.end(); return; }
    this.failures = 0;
    if (this.lost) {
      this.lost = false;
      if (this.status) this.status.hidden = true;
      announce("Reconnected");
    }
    this.setState("open");
    // Close before swapping: the final fragment replaces this element, and nothing may reconnect.
    if (binding.name === this.closeOn) this.end();
    var target = binding.target ? document.querySelector(binding.target) : binding.swapper;
    htmx.swap(target || binding.swapper, event.data,
      { swapStyle: binding.style, swapDelay: 0, settleDelay: 0 }, { contextElement: binding.swapper });
  };

  Stream.prototype.dropped = function (source) {
    // Close at once, or the browser keeps retrying on its own schedule (every ~3 s).
    source.close();
    if (this.source !== source) return;
    this.source = null;
    if (this.ended || unloading) return;
    if (!this.el.isConnected) { this.end(); return; }
    this.failures += 1;
    if (!this.lost) {
      this.lost = true;
      if (this.status) {
        this.status.hidden = false;
        announce(this.status.textContent.trim());
      }
    }
    this.setState("waiting");
    var self = this;
    this.timer = window.setTimeout(function () { self.connect(); }, retryDelay(this.failures));
  };

  Stream.prototype.retryNow = function () {
    if (this.timer === null) return;
    window.clearTimeout(this.timer);
    this.connect();
  };

  Stream.prototype.pause = function () {
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    if (this.source) this.source.close();
    this.source = null;
  };

  Stream.prototype.end = function () {
    this.ended = true;
    this.pause();
    streams.delete(this);
  };

  function scan(root) {
    if (!(root instanceof Element)) return;
    var found = Array.prototype.slice.call(root.querySelectorAll("[sse-connect]"));
    if (root.matches("[sse-connect]")) found.push(root);
    found.forEach(function (el) {
      if (seen.has(el)) return;
      seen.add(el);
      var stream = new Stream(el);
      streams.add(stream);
      stream.connect();
    });
  }

  // A stream whose element was swapped out (Stop's answer, Regenerate, a newer page) ends.
  new MutationObserver(function () {
    streams.forEach(function (stream) { if (!stream.el.isConnected) stream.end(); });
  }).observe(document.documentElement, { childList: true, subtree: true });

  // htmx fires htmx:load on whatever it inserts (a new turn, a regenerated one).
  document.addEventListener("htmx:load", function (event) { scan(event.detail.elt); });
  // The network came back: no need to wait out the backoff.
  window.addEventListener("online", function () {
    streams.forEach(function (stream) { stream.retryNow(); });
  });
  // Leaving the page is not losing the connection; a page restored from the back/forward cache
  // picks its streams up again.
  window.addEventListener("pagehide", function () {
    unloading = true;
    streams.forEach(function (stream) { stream.pause(); });
  });
  window.addEventListener("pageshow", function (event) {
    unloading = false;
    if (event.persisted) streams.forEach(function (stream) { stream.connect(); });
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { scan(document.body); });
  } else {
    scan(document.body);
  }
})();
