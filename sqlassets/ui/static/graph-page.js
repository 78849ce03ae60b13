/* The UI's asset graph page: filters, dbt selection (evaluated by the server), neighbourhood, live colours. */
(function () {
  "use strict";
  var esc = SQA.esc, $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var data = null;
  var graph = new SqlAssetsGraph($("cy"), {
    onSelect: function (nd) { showInfo(nd); },
    onOpen: function (key) { location.href = "/assets/" + encodeURIComponent(key).replace(/%2F/g, "/"); },
    onGroup: function (members, name) {
      graph.filter.keys = {};
      members.forEach(function (k) { graph.filter.keys[k] = true; });
      // a folder opens into its assets, however many (the fast layered layout takes over past 300)
      graph.filter.collapse = "none";
      $("collapse").value = "none";
      $("select").value = "";
      $("select-msg").textContent = "showing " + members.length + " assets of " + name;
      SQA.selection = members.join(" ");
      draw();
    },
    onRender: function (info) {
      $("graph-summary").textContent = info.assets + " of " + data.nodes.length + " assets shown" +
        (info.mode !== "none" ? " as " + info.nodes + " " + info.mode + "s (click one to open it)" : "");
    }
  });
  window.assetGraph = graph;

  function showInfo(nd) {
    var h = "<h3><a href=\"/assets/" + esc(nd.k) + "\">" + esc(nd.k) + "</a></h3>" +
      "<p><span class=\"st st-" + esc(nd.s) + "\">" + esc(nd.s) + "</span> " + esc(nd.kind) + " · " + esc(nd.mat) +
      (nd.p ? " · " + nd.p[0] + "/" + nd.p[1] + " partitions done" : "") + "</p>" +
      (nd.d ? "<p>" + esc(nd.d) + "</p>" : "") +
      "<p class=\"small\">" + (nd.g ? "group <b>" + esc(nd.g) + "</b> · " : "") + (nd.o ? "owner <b>" + esc(nd.o) + "</b> · " : "") +
      "folder " + esc(nd.f) + "</p>" + (nd.t ? "<p>" + nd.t.map(function (t) { return "<span class=\"tag\">" + esc(t) + "</span>"; }).join(" ") + "</p>" : "") +
      "<p><a href=\"/assets/" + esc(nd.k) + "\">Open asset</a> · <a href=\"#\" id=\"nb\">Neighbourhood</a> · <a href=\"/lineage#" + esc(nd.k) + "\">Lineage</a></p>";
    $("node-info").innerHTML = h;
    $("nb").addEventListener("click", function (e) { e.preventDefault(); setFocus(nd.k); });
    SQA.selection = nd.k;
  }

  function setFocus(key) {
    graph.filter.focus = key;
    $("focus-box").hidden = !key;
    $("focus-key").textContent = key || "";
    draw();
  }

  function draw() { graph.render(); }

  function applySelection(q) {
    var msg = $("select-msg");
    if (!q) { graph.filter.keys = null; msg.textContent = ""; SQA.selection = ""; draw(); return; }
    SQA.get("/api/select?q=" + encodeURIComponent(q)).then(function (r) {
      if (r.error) { msg.textContent = r.error; msg.className = "small err"; return; }
      msg.className = "small muted";
      msg.textContent = r.keys.length + " selected";
      graph.filter.keys = {};
      r.keys.forEach(function (k) { graph.filter.keys[k] = true; });
      SQA.selection = q;
      draw();
    });
  }

  function fill(select, values) {
    values.forEach(function (v) { var o = document.createElement("option"); o.value = v; o.textContent = v; select.appendChild(o); });
  }

  function refreshStates() {
    // Colours follow runs without a re-layout.
    SQA.get("/api/graph").then(function (d) {
      var changed = false;
      d.nodes.forEach(function (nd, i) {
        if (data.nodes[i] && data.nodes[i].k === nd.k && (data.nodes[i].s !== nd.s || String(data.nodes[i].p) !== String(nd.p))) {
          data.nodes[i].s = nd.s; data.nodes[i].p = nd.p; changed = true;
        }
      });
      if (changed && graph.mode === "none") {
        graph.cy.nodes().forEach(function (node) {
          var nd = data.nodes[node.data("idx")];
          if (!nd) return;
          node.data("color", SqlAssetsGraph.STATE_COLORS[nd.s]);
          node.data("fg", nd.s === "failed" || nd.s === "running" ? "#fff" : "#1f2328");
          node.data("label", nd.k + (nd.p ? "  " + nd.p[0] + "/" + nd.p[1] : ""));
          node.classes(nd.s);
        });
      } else if (changed) draw();
    });
  }

  SQA.get("/api/graph").then(function (d) {
    data = d;
    graph.setData(d.nodes, d.edges);
    fill($("group"), d.groups);
    fill($("owner"), d.owners);
    $("cy-empty").remove();
    var q = params.get("select");
    if (params.get("focus")) { graph.filter.focus = params.get("focus"); $("focus-box").hidden = false; $("focus-key").textContent = params.get("focus"); }
    if (q) { $("select").value = q; applySelection(q); } else draw();
    window.assetGraphReady = true;
    setInterval(function () { if (!document.hidden) refreshStates(); }, 3000);
  });

  $("select-form").addEventListener("submit", function (e) { e.preventDefault(); applySelection($("select").value.trim()); });
  $("select").addEventListener("search", function () { if (!$("select").value) applySelection(""); });
  $("group").addEventListener("change", function () { graph.filter.group = this.value; draw(); });
  $("owner").addEventListener("change", function () { graph.filter.owner = this.value; draw(); });
  $("collapse").addEventListener("change", function () { graph.filter.collapse = this.value; draw(); });
  $("focus-depth").addEventListener("change", function () { graph.filter.depth = parseInt(this.value, 10); draw(); });
  $("focus-clear").addEventListener("click", function () { setFocus(null); });
})();
