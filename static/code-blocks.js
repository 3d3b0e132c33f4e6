// Code blocks in replies: the copy button web/highlight.py puts on each block. One listener on
// document (event delegation), so blocks swapped in later work too: a reply re-rendered while it
// streams, a regenerated reply, a conversation opened from the sidebar. No inline scripts (CSP).
(function () {
  "use strict";

  var LABEL = "Copy code"; // as web/highlight.py writes it
  var SHOWN_MS = 1500;
  var timers = new WeakMap();

  var copyText = function (text) { return window.understudyCopy(text); }; // static/app.js

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
