// Understudy: the little the server cannot do. htmx does the requests and swaps (stream.js the
// reply streams); this file does the composer keys, the send button's state, auto-scroll, copy,
// errors shown inline, the phone sidebar and Esc. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";

  var NEAR_BOTTOM_PX = 80;
  var follow = true; // keep the newest text in view until the user scrolls up
  var sending = false;

  function byId(id) { return document.getElementById(id); }

  function streaming() {
    return document.querySelector('[data-testid="assistant-message"][data-state="streaming"]') !== null;
  }

  // A queued reply (web.deferral) holds its conversation until it lands or is cancelled.
  function queued() {
    return document.querySelector('[data-testid="assistant-message"][data-state="queued"]') !== null;
  }

  function refreshSend() {
    var send = byId("send");
    var isQueued = queued();
    if (send) send.disabled = sending || streaming() || isQueued;
    var hint = byId("composer-queued");
    if (hint) hint.hidden = !isQueued;
    noticeLandings();
  }

  // --- a queued reply that lands while the tab is in the background says so in the title ----
  var waitingFor = new Set();
  var plainTitle = null;

  function noticeLandings() {
    document.querySelectorAll('[data-testid="assistant-message"][data-state="queued"]').forEach(function (el) {
      waitingFor.add(el.getAttribute("data-turn"));
    });
    waitingFor.forEach(function (turn) {
      var el = byId("reply-" + turn);
      var state = el ? el.getAttribute("data-state") : null;
      if (state === "queued") return;
      waitingFor.delete(turn);
      if (state === "done" && document.hidden) {
        if (plainTitle === null) plainTitle = document.title;
        document.title = "Reply arrived · " + plainTitle;
      }
    });
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && plainTitle !== null) {
      document.title = plainTitle;
      plainTitle = null;
    }
  });

  // --- auto-scroll that pauses when the user scrolls up --------------------------------------
  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
  }

  function scrollToBottom() {
    var log = byId("transcript");
    if (log) log.scrollTop = log.scrollHeight;
  }

  function updateJump() {
    var jump = byId("jump-to-bottom");
    if (jump) jump.hidden = follow;
  }

  function setupTranscript() {
    var log = byId("transcript");
    if (!log) return;
    log.addEventListener("scroll", function () {
      follow = nearBottom(log);
      updateJump();
    }, { passive: true });
    new MutationObserver(function () {
      if (follow) scrollToBottom();
      refreshSend();
    }).observe(log, { childList: true, subtree: true, characterData: true, attributes: true, attributeFilter: ["data-state"] });
    var jump = byId("jump-to-bottom");
    if (jump) jump.addEventListener("click", function () {
      follow = true;
      scrollToBottom();
      updateJump();
      var message = byId("message");
      if (message) message.focus();
    });
    window.addEventListener("resize", function () { if (follow) scrollToBottom(); });
    scrollToBottom();
  }

  // --- the composer ---------------------------------------------------------------------------
  function autoResize(textarea) {
    textarea.style.height = "auto";
    textarea.style.height = Math.min(textarea.scrollHeight, 240) + "px";
  }

  function updateHint(textarea) {
    var hint = byId("composer-hint");
    var max = parseInt(textarea.getAttribute("data-max-chars") || "0", 10);
    if (!hint || !max) return;
    var length = textarea.value.length;
    if (length > max) {
      hint.textContent = "Too long: " + length.toLocaleString() + " of " + max.toLocaleString() + " characters";
      hint.classList.add("over");
    } else {
      hint.textContent = "Enter sends · Shift+Enter adds a line";
      hint.classList.remove("over");
    }
  }

  function setupComposer() {
    var form = byId("composer");
    var textarea = byId("message");
    if (!form || !textarea) return;
    textarea.addEventListener("keydown", function (event) {
      // isComposing / 229: an IME is still composing (Japanese, Chinese...): Enter picks a candidate.
      if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
      event.preventDefault();
      var send = byId("send");
      if (send && send.disabled) return;
      form.requestSubmit();
    });
    textarea.addEventListener("input", function () {
      autoResize(textarea);
      updateHint(textarea);
    });
    form.addEventListener("htmx:beforeRequest", function (event) {
      if (event.target !== form) return;
      sending = true;
      follow = true;
      refreshSend();
    });
    form.addEventListener("htmx:afterRequest", function (event) {
      if (event.target !== form) return;
      sending = false;
      // Only a message the server accepted leaves the box; after any refusal or error the text
      // stays. (A 4xx counts as "successful" to htmx: base.html's config has it swapped, not logged.)
      var xhr = event.detail.xhr;
      if (event.detail.successful && xhr && xhr.status < 400) {
        textarea.value = "";
        autoResize(textarea);
        updateHint(textarea);
      }
      refreshSend();
      scrollToBottom();
    });
    if (!window.matchMedia("(max-width: 700px)").matches) textarea.focus();
  }

  // --- errors: shown inline by the composer, never lose what was typed -----------------------
  document.addEventListener("htmx:beforeSwap", function (event) {
    var xhr = event.detail.xhr;
    var flash = byId("flash");
    if (!xhr || xhr.status < 400 || !flash) return;
    event.detail.shouldSwap = true;
    event.detail.target = flash;
    event.detail.swapOverride = "innerHTML";
  });

  document.addEventListener("htmx:sendError", function () {
    var flash = byId("flash");
    if (flash) flash.textContent = "Could not reach the server. Check it is running, then try again; your message is still in the box.";
    sending = false;
    refreshSend();
  });

  // --- copy (also static/code-blocks.js's, through window.understudyCopy) --------------------
  // navigator.clipboard needs a secure context; a self-hosted app is often plain http on a LAN.
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    return new Promise(function (resolve, reject) {
      var area = document.createElement("textarea");
      area.value = text;
      area.setAttribute("readonly", "");
      area.className = "visually-hidden";
      document.body.appendChild(area);
      area.select();
      try {
        if (document.execCommand("copy")) resolve(); else reject(new Error("copy refused"));
      } finally {
        document.body.removeChild(area);
      }
    });
  }
  window.understudyCopy = copyText;

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) {
      var source = byId(button.getAttribute("data-copy"));
      if (!source) return;
      var label = button.textContent;
      var say = function (words) {
        button.textContent = words;
        setTimeout(function () { button.textContent = label; }, 1500);
      };
      copyText(source.content ? source.content.textContent : source.textContent).then(
        function () { say("Copied"); },
        function () { say("Could not copy"); }
      );
      return;
    }
    var toggle = event.target.closest('[data-action="toggle-sidebar"]');
    if (toggle) {
      var open = document.body.classList.toggle("sidebar-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      return;
    }
    if (event.target.closest("[hx-post]") && event.target.closest(".msg-actions")) {
      follow = true; // regenerate / retry: show the new reply
    }
  });

  // --- Esc: closes what is open on top (the phone sidebar, a dialog), else stops the reply ------
  function dialogOpen() {
    var found = document.querySelectorAll('dialog[open], [role="dialog"], [role="alertdialog"]');
    return Array.prototype.some.call(found, function (el) { return el.getClientRects().length > 0; });
  }

  document.addEventListener("keydown", function (event) {
    // An IME uses Esc to cancel what it is composing; a handler of a dialog may have used it.
    if (event.key !== "Escape" || event.isComposing || event.keyCode === 229 || event.defaultPrevented) return;
    if (document.body.classList.contains("sidebar-open")) {
      document.body.classList.remove("sidebar-open");
      var toggle = document.querySelector('[data-action="toggle-sidebar"]');
      if (toggle) { toggle.setAttribute("aria-expanded", "false"); toggle.focus(); }
      return;
    }
    if (dialogOpen()) return; // the dialog closes itself first
    var stop = document.querySelector('[data-testid="assistant-message"][data-state="streaming"] [data-testid="stop"]');
    if (stop && !stop.disabled) {
      event.preventDefault();
      stop.click(); // exactly what pressing Stop does; focus stays where it was (the composer)
    }
  });

  function start() {
    setupTranscript();
    setupComposer();
    refreshSend();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
