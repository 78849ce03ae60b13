/* The CI gate page: renders the gate's JSON (embedded by the server, or a file picked in the browser). */
(function () {
  "use strict";
  var esc = SQA.esc;
  function table(rows, cols) {
    if (!rows || !rows.length) return "<p class=\"muted\">none</p>";
    return "<table class=\"grid\"><thead><tr>" + cols.map(function (c) { return "<th>" + esc(c[0]) + "</th>"; }).join("") +
      "</tr></thead><tbody>" + rows.map(function (r) {
        return "<tr>" + cols.map(function (c) { var v = c[1](r); return "<td>" + (c[2] ? v : esc(v)) + "</td>"; }).join("") + "</tr>";
      }).join("") + "</tbody></table>";
  }
  function render(g) {
    var results = g.results || g.checks || [];
    var blocking = results.filter(function (r) { return r.blocking || (r.severity === "critical" && (r.status === "fail" || r.status === "error")); });
    var build = g.build || {};
    var code = g.exit_code !== undefined ? g.exit_code : ((build.failed || build.skipped || build.error || blocking.length ||
      ((g.breaking || []).length && !g.allow_breaking)) ? 1 : 0);
    var verdict = g.verdict || (code === 0 ? "CI gate: PASS" : "CI gate: FAIL");
    var h = "<div class=\"verdict " + (code === 0 ? "pass" : "fail") + "\">" + esc(verdict) + "</div>";
    h += "<h2>Changed assets</h2>" + table(g.changed, [["asset", function (r) { return "<a href=\"/assets/" + esc(r.asset) + "\">" + esc(r.asset) + "</a>"; }, true],
      ["change", function (r) { return r.change || ""; }], ["downstream", function (r) { return (r.downstream || []).join(", "); }]]);
    h += "<h2>Build</h2><p>" + esc((build.done || 0) + " done, " + (build.failed || 0) + " failed, " + (build.skipped || 0) + " skipped") +
      (build.error ? " <span class=\"err\">" + esc(build.error) + "</span>" : "") + "</p>";
    h += table(build.failures, [["asset", function (f) { return f[0]; }], ["partition", function (f) { return f[1]; }], ["error", function (f) { return f[2]; }]]);
    h += "<h2>Breaking column changes</h2>" + table(g.breaking, [["asset", function (b) { return b.asset; }], ["column", function (b) { return b.column; }],
      ["change", function (b) { return b.change; }], ["read by", function (b) { return (b.downstream || []).join(", "); }]]);
    h += "<h2>Checks (" + results.length + ", " + blocking.length + " blocking)</h2>" + table(results, [["asset", function (r) { return r.asset; }],
      ["check", function (r) { return r.check; }], ["partition", function (r) { return r.partition || "-"; }],
      ["status", function (r) { return "<span class=\"chk chk-" + esc(r.status) + "\">" + esc(r.status) + "</span>"; }, true],
      ["severity", function (r) { return r.severity; }], ["message", function (r) { return r.message || ""; }]]);
    document.getElementById("gate-view").innerHTML = h;
  }
  var embedded = JSON.parse(document.getElementById("gate-data").textContent);
  if (embedded) render(embedded);
  document.getElementById("gate-file").addEventListener("change", function () {
    var f = this.files[0];
    if (!f) return;
    f.text().then(function (t) {
      try { render(JSON.parse(t)); } catch (e) { document.getElementById("gate-view").innerHTML = "<p class=\"err\">not a gate JSON file: " + esc(e.message) + "</p>"; }
    });
  });
})();
