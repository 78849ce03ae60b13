/* A run's page refreshes itself while the run is going (server-rendered fragment, every second). */
(function () {
  "use strict";
  var page = document.getElementById("run-page");
  var id = page.getAttribute("data-run");
  function openState() {
    var s = {};
    page.querySelectorAll("details").forEach(function (d, i) { s[i] = d.open; });
    return s;
  }
  function tick() {
    if (document.getElementById("run-body").getAttribute("data-status") !== "running") return;
    fetch("/runs/" + id + "?fragment=1", { credentials: "same-origin" }).then(function (r) { return r.text(); }).then(function (html) {
      var keep = openState();
      page.innerHTML = html;
      page.querySelectorAll("details").forEach(function (d, i) { if (keep[i] !== undefined) d.open = keep[i]; });
      setTimeout(tick, 1000);
    });
  }
  setTimeout(tick, 1000);
})();
