// m365audit UI: the only script, served as a file (the CSP forbids inline script).
// It never reads record data; it only reloads pages that ask for it, e.g. the dashboard.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var el = document.querySelector("[data-refresh]");
  if (!el) { return; }
  var secs = parseInt(el.getAttribute("data-refresh"), 10);
  if (secs >= 5) {
    window.setTimeout(function () { window.location.reload(); }, secs * 1000);
  }
});
