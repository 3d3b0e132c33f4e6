// Code blocks in replies: the copy button web/highlight.py puts on each block. One listener on
// document (event delegation), so blocks swapped in later work too: a reply re-rendered while it
// streams, a regenerated reply, a conversation opened from the sidebar. No inline scripts (CSP).
(function () {
  "use strict";

  var LABEL = "Copy code"; // as web/highlight.py writes it
  var SHOWN_MS = 1500;
  var timers = new WeakMap();

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

  function say(button, words) {
    button.textContent = words;
    clearTimeout(timers.get(button));
    timers.set(button, setTimeout(function () { button.textContent = LABEL; }, SHOWN_MS));
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button.code-copy");
    if (!button) return;
    var code = button.closest(".code-block");
    code = code && code.querySelector("pre > code");
    if (!code) return;
    // The code element holds exactly the code: the label and the button are outside the pre.
    copyText(code.textContent).then(
      function () { say(button, "Copied"); },
      function () { say(button, "Could not copy"); }
    );
  });
})();
