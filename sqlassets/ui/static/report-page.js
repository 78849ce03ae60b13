/* The offline report: an asset graph first (never a blank page), column lineage one click away. */
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("lineage-data").textContent);
  var $ = function (id) { return document.getElementById(id); };
  function esc(s) { return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
    return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c]; }); }
  function show(which) {
    $("view-assets").hidden = which !== "assets"; $("view-columns").hidden = which !== "columns";
    $("tab-assets").classList.toggle("on", which === "assets"); $("tab-columns").classList.toggle("on", which === "columns");
  }
  var lineage = SqlAssetsLineage(D, { onFocus: function (spec) { history.replaceState(null, "", "#" + spec); } });
  var nodes = D.assets.map(function (a) {
    return { k: a.key, kind: a.kind, mat: a.kind, g: a.group || "", o: a.owner || "", f: a.folder || a.kind,
             s: a.kind === "source" || a.kind === "external" ? "observed" : "asset", d: a.description || "" };
  });
  var edges = [];
  D.assets.forEach(function (a, ai) { (a.deps || []).forEach(function (p) { edges.push([p, ai]); }); });
  var graph = new SqlAssetsGraph($("acy"), {
    onSelect: function (nd, idx) {
      var a = D.assets[idx], types = D.types || {}, descs = D.descs || {};
      var h = "<h3>" + esc(a.key) + "</h3><p class=\"small muted\">" + esc(a.kind) + (a.path ? " \u00b7 " + esc(a.path) : "") + "</p>" +
        (a.description ? "<p class=\"desc\">" + esc(a.description) + "</p>" : "") +
        "<p><a href=\"#\" id=\"open-cols\">Column lineage of " + esc(a.key) + "</a> \u00b7 <a href=\"#\" id=\"nbh\">Neighbourhood</a></p>" +
        "<h4>Columns (" + a.columns.length + ")</h4><table class=\"coltable\">";
      a.columns.forEach(function (c) { h += "<tr data-nid=\"" + c + "\"><td><code>" + esc(D.nodes[c][1]) + "</code></td><td class=\"muted\">" +
        esc(types[c] || "") + "</td><td>" + esc(descs[c] || "") + "</td></tr>"; });
      $("node-info").innerHTML = h + "</table>";
      $("open-cols").addEventListener("click", function (e) { e.preventDefault(); show("columns"); lineage.showAsset(idx); });
      $("nbh").addEventListener("click", function (e) { e.preventDefault(); graph.filter.focus = a.key; $("focus-box").hidden = false; $("focus-key").textContent = a.key; graph.render(); });
      $("node-info").querySelectorAll("tr[data-nid]").forEach(function (tr) {
        tr.addEventListener("click", function () { show("columns"); lineage.focus(parseInt(tr.getAttribute("data-nid"), 10)); });
      });
    },
    onOpen: function (key) { show("columns"); lineage.open(key); },
    onGroup: function (members) {
      graph.filter.keys = {}; members.forEach(function (k) { graph.filter.keys[k] = true; }); graph.render();
    },
    onRender: function (info) { $("graph-summary").textContent = info.assets + " of " + nodes.length + " assets" +
      (info.mode !== "none" ? " as " + info.nodes + " " + info.mode + "s (click one to open it)" : ""); }
  });
  graph.setData(nodes, edges);
  $("collapse").addEventListener("change", function () { graph.filter.collapse = this.value; graph.filter.keys = null; graph.render(); });
  $("focus-clear").addEventListener("click", function () { graph.filter.focus = null; graph.filter.keys = null; $("focus-box").hidden = true; graph.render(); });
  $("asset-search").addEventListener("input", function () {
    var q = this.value.trim().toLowerCase();
    if (!q) { graph.filter.keys = null; graph.render(); return; }
    graph.filter.keys = {};
    nodes.forEach(function (n) { if (n.k.toLowerCase().indexOf(q) >= 0 || n.f.toLowerCase().indexOf(q) >= 0) graph.filter.keys[n.k] = true; });
    graph.render();
  });
  $("tab-assets").addEventListener("click", function () { show("assets"); graph.cy.resize(); graph.cy.fit(undefined, 30); });
  $("tab-columns").addEventListener("click", function () {
    show("columns"); lineage.cy.resize();
    if (lineage.state.focus === null && lineage.state.asset === null) lineage.openDefault();
  });
  var start = decodeURIComponent((location.hash || "").slice(1));
  if (start && lineage.open(start)) show("columns");
  graph.render();
  window.lineageReport = lineage;
  window.assetGraph = graph;
})();
