/* The UI's lineage page: the report's view over the project's column graph fetched from the server. */
(function () {
  "use strict";
  var empty = document.getElementById("empty");
  empty.textContent = "Loading the column lineage (the first time builds it)…";
  SQA.get("/api/lineage").then(function (D) {
    if (D.error) { empty.textContent = D.error; return; }
    empty.textContent = "Search a column or pick an asset from the list.";
    var app = SqlAssetsLineage(D, {
      assetLink: function (key) { return "/assets/" + key; },
      onFocus: function (spec) { history.replaceState(null, "", "#" + spec); }
    });
    window.lineageReport = app;
    if (!app.open(decodeURIComponent((location.hash || "").slice(1)))) app.openDefault();
    window.addEventListener("hashchange", function () { app.open(decodeURIComponent(location.hash.slice(1))); });
  });
})();
