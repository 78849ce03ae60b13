/* Column lineage view, shared by `sqlassets ui` (Lineage page) and `sqlassets lineage --report`.
 *
 * Data (report_data in sqlassets/lineage/report.py): assets [{key, kind, path, description, columns: [node ids]}],
 * nodes [[asset index, column, status]], edges as a flat [source, target, kind, ...] list, and sparse
 * reasons / types / descs keyed by node id. Columns are drawn inside their asset's box (compound
 * nodes); assets are placed in layers by their lineage, upstream on the left; upstream columns are
 * tinted blue, downstream green, edges coloured by kind (copy / transform / aggregate / filter), and
 * each kind can be switched off. Clicking a reached column highlights its path to the focus.
 */
(function () {
  "use strict";
  var KINDS = ["copy", "transform", "aggregate", "filter"];
  var STATUS = ["resolved", "declared", "inferred", "unresolved"];
  var COLORS = { copy: "#1a7f37", transform: "#0969da", aggregate: "#8250df", filter: "#9a6700" };
  var MAX_NODES = 600, ROW = 26, COL_W = 210, LAYER_W = 320, ASSET_GAP = 46;

  function esc(s) {
    return String(s === null || s === undefined ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" }[c]; });
  }
  function $(id) { return document.getElementById(id); }

  function SqlAssetsLineage(D, opts) {
    opts = opts || {};
    var n = D.nodes.length, up = new Array(n), down = new Array(n), i;
    var types = D.types || {}, descs = D.descs || {}, reasons = D.reasons || {};
    for (i = 0; i < n; i++) { up[i] = []; down[i] = []; }
    for (i = 0; i < D.edges.length; i += 3) {
      var s = D.edges[i], t = D.edges[i + 1], k = D.edges[i + 2];
      up[t].push([s, k]); down[s].push([t, k]);
    }
    function assetOf(id) { return D.assets[D.nodes[id][0]]; }
    function name(id) { return assetOf(id).key + "." + D.nodes[id][1]; }
    var byName = {};
    for (i = 0; i < n; i++) byName[name(i).toLowerCase()] = i;
    var byAsset = {};
    D.assets.forEach(function (a, ai) { byAsset[a.key.toLowerCase()] = ai; });
    if ($("summary")) $("summary").textContent = D.assets.length + " assets \u00b7 " + n + " columns \u00b7 " +
      (D.edges.length / 3) + " edges" + (D.generated ? " \u00b7 generated " + D.generated : "");

    var cy = cytoscape({
      container: $("cy"), wheelSensitivity: 0.3, minZoom: 0.05, maxZoom: 3,
      style: [
        { selector: "node.asset", style: { "shape": "round-rectangle", "background-color": "#f6f8fa", "border-width": 1,
            "border-color": "#8c959f", "label": "data(label)", "text-valign": "top", "text-halign": "center",
            "font-size": 12, "font-weight": "bold", "padding": 8, "text-margin-y": -4, "color": "#1f2328",
            "font-family": "-apple-system, Helvetica, Arial, sans-serif" } },
        { selector: "node.col", style: { "shape": "round-rectangle", "background-color": "#fff", "border-width": 1,
            "border-color": "#afb8c1", "label": "data(label)", "text-valign": "center", "text-halign": "center",
            "font-size": 10.5, "width": COL_W, "height": ROW - 6, "font-family": "Menlo, monospace",
            "text-max-width": COL_W - 8, "text-wrap": "ellipsis", "min-zoomed-font-size": 6 } },
        { selector: "node.col.up", style: { "background-color": "#ddf4ff", "border-color": "#54aeff" } },
        { selector: "node.col.down", style: { "background-color": "#dafbe1", "border-color": "#4ac26b" } },
        { selector: "node.col.unresolved", style: { "border-color": "#cf222e", "border-style": "dashed" } },
        { selector: "node.col.inferred", style: { "border-style": "dotted" } },
        { selector: "node.col.focus", style: { "border-width": 3, "border-color": "#bf8700", "background-color": "#fff8c5" } },
        { selector: "node.col.onpath", style: { "border-width": 3, "border-color": "#0550ae" } },
        { selector: "edge", style: { "width": 1.6, "curve-style": "bezier", "target-arrow-shape": "triangle",
            "line-color": "data(color)", "target-arrow-color": "data(color)", "opacity": 0.75, "arrow-scale": 0.8 } },
        { selector: "edge.filter", style: { "line-style": "dashed" } },
        { selector: "edge.onpath", style: { "width": 4, "opacity": 1 } },
        { selector: ".faded", style: { "opacity": 0.15 } }
      ]
    });
    /* Fit, but legible first: a wide lineage is not shrunk until column names vanish; it opens at the focus. */
    function fitView() {
      cy.fit(undefined, 30);
      if (cy.nodes().length && cy.zoom() < 0.6) {
        var focusNodes = cy.nodes(".col.focus");
        cy.zoom(0.6);
        cy.center(focusNodes.length ? focusNodes : cy.nodes());
      }
    }
    var refit = function () { cy.resize(); fitView(); };
    if (window.ResizeObserver) new ResizeObserver(refit).observe($("cy")); else window.addEventListener("resize", refit);

    var state = { focus: null, reached: null, selected: null, asset: null };

    function allowed() {
      var ok = [true, true, true, $("show-filter") ? $("show-filter").checked : true];
      document.querySelectorAll(".kind-toggle").forEach(function (cb) { ok[KINDS.indexOf(cb.value)] = cb.checked; });
      return ok;
    }

    function walk(start, adj, maxDepth, ok) {
      var seen = {}, out = [], queue = [[start, 0]], head = 0;
      seen[start] = true;
      while (head < queue.length) {
        var cur = queue[head++], node = cur[0], d = cur[1];
        if (maxDepth && d >= maxDepth) continue;
        var nb = adj[node];
        for (var j = 0; j < nb.length; j++) {
          var nxt = nb[j][0], kind = nb[j][1];
          if (!ok[kind] || seen[nxt]) continue;
          seen[nxt] = true;
          out.push({ id: nxt, depth: d + 1, kind: kind, via: node });
          queue.push([nxt, d + 1]);
        }
      }
      return out;
    }

    /* Draw columns grouped in their assets; assets layered by the asset-level edges among them. */
    function draw(shown, focusSet, ok) {
      var inShown = {}, assetsShown = {}, order = [];
      shown.forEach(function (s) {
        inShown[s.id] = s;
        var ai = D.nodes[s.id][0];
        if (!assetsShown[ai]) { assetsShown[ai] = []; order.push(ai); }
        assetsShown[ai].push(s);
      });
      var aUp = {}, edges = [];
      shown.forEach(function (s) {
        up[s.id].forEach(function (e) {
          if (!inShown[e[0]] || !ok[e[1]]) return;
          edges.push([e[0], s.id, e[1]]);
          var from = D.nodes[e[0]][0], to = D.nodes[s.id][0];
          if (from !== to) (aUp[to] = aUp[to] || {})[from] = true;
        });
      });
      // longest-path layers over the shown assets (Kahn order; the asset graph is acyclic)
      var layer = {}, indeg = {}, kids = {};
      order.forEach(function (ai) { indeg[ai] = 0; });
      order.forEach(function (ai) { Object.keys(aUp[ai] || {}).forEach(function (p) { indeg[ai]++; (kids[p] = kids[p] || []).push(ai); }); });
      var queue = order.filter(function (ai) { return indeg[ai] === 0; }), h = 0;
      queue.forEach(function (ai) { layer[ai] = 0; });
      while (h < queue.length) {
        var cur = queue[h++];
        (kids[cur] || []).forEach(function (c) {
          layer[c] = Math.max(layer[c] || 0, layer[cur] + 1);
          if (--indeg[c] === 0) queue.push(c);
        });
      }
      order.forEach(function (ai) { if (layer[ai] === undefined) layer[ai] = 0; });
      var layers = {};
      order.forEach(function (ai) { (layers[layer[ai]] = layers[layer[ai]] || []).push(ai); });
      var els = [];
      Object.keys(layers).forEach(function (L) {
        var list = layers[L];
        list.sort(function (a, b) { return D.assets[a].key < D.assets[b].key ? -1 : 1; });
        var total = list.reduce(function (s, ai) { return s + assetsShown[ai].length * ROW + ASSET_GAP; }, 0);
        var y = -total / 2;
        list.forEach(function (ai) {
          var a = D.assets[ai];
          els.push({ group: "nodes", data: { id: "a" + ai, label: a.key, ai: ai }, classes: "asset" });
          var cols = assetsShown[ai];
          cols.sort(function (x, z) { return D.nodes[x.id][1] < D.nodes[z.id][1] ? -1 : 1; });
          cols.forEach(function (c) {
            var st = STATUS[D.nodes[c.id][2]], ty = types[c.id];
            var cls = "col " + st + (focusSet[c.id] ? " focus" : (c.dir ? " " + c.dir : ""));
            els.push({ group: "nodes", data: { id: "n" + c.id, nid: c.id, parent: "a" + ai, name: name(c.id),
              label: D.nodes[c.id][1] + (ty ? "  " + ty.toLowerCase() : "") },
              position: { x: parseInt(L, 10) * LAYER_W, y: y + ROW / 2 }, classes: cls });
            y += ROW;
          });
          y += ASSET_GAP;
        });
      });
      edges.forEach(function (e) {
        var kind = KINDS[e[2]];
        els.push({ group: "edges", data: { id: "e" + e[0] + "_" + e[1], source: "n" + e[0], target: "n" + e[1], kind: kind,
          color: COLORS[kind] }, classes: kind });
      });
      cy.startBatch();
      cy.elements().remove();
      cy.add(els);
      cy.endBatch();
      cy.layout({ name: "preset", fit: false }).run();
      fitView();
      if ($("empty")) $("empty").style.display = "none";
    }

    function focus(id) {
      var maxDepth = parseInt($("depth").value, 10), ok = allowed();
      var ups = walk(id, up, maxDepth, ok), downs = walk(id, down, maxDepth, ok);
      state.focus = id; state.asset = null; state.selected = null;
      state.reached = { up: {}, down: {} };
      ups.forEach(function (r) { state.reached.up[r.id] = r; });
      downs.forEach(function (r) { state.reached.down[r.id] = r; });
      var shown = [{ id: id, depth: 0 }].concat(ups.map(function (r) { return { id: r.id, depth: -r.depth, dir: "up" }; }),
                                                 downs.map(function (r) { return { id: r.id, depth: r.depth, dir: "down" }; }));
      var truncated = shown.length > MAX_NODES;
      if (truncated) shown = shown.slice(0, MAX_NODES);
      var fs = {}; fs[id] = true;
      draw(shown, fs, ok);
      showDetails(id, ups, downs, truncated);
      markActive(id);
      if (opts.onFocus) opts.onFocus(name(id));
    }

    /* One asset with all its columns and their direct up/downstream columns. */
    function showAsset(ai) {
      var a = D.assets[ai], ok = allowed(), shown = [], seen = {}, fs = {};
      state.focus = null; state.asset = ai; state.reached = { up: {}, down: {} };
      a.columns.forEach(function (c) { fs[c] = true; seen[c] = true; shown.push({ id: c, depth: 0 }); });
      a.columns.forEach(function (c) {
        walk(c, up, 1, ok).forEach(function (r) { if (!seen[r.id]) { seen[r.id] = true; shown.push({ id: r.id, dir: "up" }); } });
        walk(c, down, 1, ok).forEach(function (r) { if (!seen[r.id]) { seen[r.id] = true; shown.push({ id: r.id, dir: "down" }); } });
      });
      if (shown.length > MAX_NODES) shown = shown.slice(0, MAX_NODES);
      draw(shown, fs, ok);
      var h = "<h3 id=\"focus-name\">" + esc(a.key) + "</h3><div class=\"status\">" + esc(a.kind) + (a.path ? " \u00b7 " + esc(a.path) : "") + "</div>";
      if (a.description) h += "<p class=\"desc\">" + esc(a.description) + "</p>";
      if (a.reason) h += "<div class=\"warn\">" + esc(a.reason) + "</div>";
      h += "<h4>Columns (" + a.columns.length + ")</h4><table class=\"coltable\">";
      a.columns.forEach(function (c) {
        h += "<tr data-nid=\"" + c + "\"><td><code>" + esc(D.nodes[c][1]) + "</code></td><td class=\"muted\">" + esc(types[c] || "") +
             "</td><td>" + esc(descs[c] || "") + "</td></tr>";
      });
      h += "</table>";
      var det = $("details");
      det.innerHTML = h;
      det.querySelectorAll("tr[data-nid]").forEach(function (tr) {
        tr.addEventListener("click", function () { focus(parseInt(tr.getAttribute("data-nid"), 10)); });
      });
      if (opts.onFocus) opts.onFocus(a.key);
    }

    function pathTo(id) {
      var r = state.reached.up[id] || state.reached.down[id], chain = [id], isUp = !!state.reached.up[id];
      while (r) { chain.push(r.via); r = (isUp ? state.reached.up : state.reached.down)[r.via]; }
      return isUp ? chain : chain.reverse();
    }

    function highlightPath(id) {
      cy.elements().removeClass("onpath faded");
      if ($("path")) $("path").textContent = "";
      if (state.focus === null || id === state.focus || !(state.reached.up[id] || state.reached.down[id])) return null;
      var chain = pathTo(id);
      cy.elements().addClass("faded");
      cy.nodes(".asset").removeClass("faded");
      for (var k = 0; k < chain.length; k++) {
        cy.$id("n" + chain[k]).removeClass("faded").addClass("onpath");
        if (k > 0) cy.$id("e" + chain[k - 1] + "_" + chain[k]).removeClass("faded").addClass("onpath");
      }
      $("path").textContent = "path: " + chain.map(name).join("  \u2192  ");
      return chain;
    }

    function listHtml(rows, title) {
      if (!rows.length) return "<h4>" + title + " (0)</h4>";
      var h = "<h4>" + title + " (" + rows.length + ")</h4><ul class=\"" + title.toLowerCase() + "\">";
      rows.forEach(function (r) {
        h += "<li data-nid=\"" + r.id + "\"><span class=\"edge e-" + KINDS[r.kind] + "\">" + KINDS[r.kind] + "</span>" +
             esc(name(r.id)) + " <span class=\"status\">(" + r.depth + ")</span></li>";
      });
      return h + "</ul>";
    }

    function showDetails(id, ups, downs, truncated) {
      var node = D.nodes[id], asset = D.assets[node[0]], st = STATUS[node[2]];
      var h = "<h3 id=\"focus-name\">" + esc(name(id)) + "</h3><div class=\"status\">" + esc(asset.kind) + " \u00b7 " + st +
              (types[id] ? " \u00b7 <code>" + esc(types[id]) + "</code>" : "") + (asset.path ? " \u00b7 " + esc(asset.path) : "") + "</div>";
      if (descs[id]) h += "<p class=\"desc\">" + esc(descs[id]) + "</p>";
      if (asset.description) h += "<p class=\"small muted\">" + esc(asset.key) + ": " + esc(asset.description) + "</p>";
      var why = reasons[id];
      if (why) h += "<div class=\"" + (st === "unresolved" ? "warn" : "note") + "\">" + esc(why) + "</div>";
      if (truncated) h += "<div class=\"note\">Showing the nearest " + MAX_NODES + " columns; lower the depth to see fewer.</div>";
      if (opts.assetLink) h += "<p class=\"small\"><a href=\"" + esc(opts.assetLink(asset.key)) + "\">open " + esc(asset.key) + "</a></p>";
      h += "<div id=\"path\"></div>";
      h += listHtml(ups, "Upstream") + listHtml(downs, "Downstream");
      var det = $("details");
      det.innerHTML = h;
      det.querySelectorAll("li[data-nid]").forEach(function (li) {
        li.addEventListener("click", function () { select(parseInt(li.getAttribute("data-nid"), 10)); });
      });
    }

    function select(id) {
      // A click on a reached column highlights its path to the focus; clicking it again makes it the focus.
      if (state.focus !== null && id !== state.focus && (state.reached.up[id] || state.reached.down[id]) &&
          state.selected !== id) {
        state.selected = id;
        highlightPath(id);
        return;
      }
      state.selected = null;
      focus(id);
    }

    cy.on("tap", "node.col", function (evt) { select(evt.target.data("nid")); });
    cy.on("tap", "node.asset", function (evt) { if (evt.target.hasClass("asset")) showAsset(evt.target.data("ai")); });
    cy.on("tap", function (evt) { if (evt.target === cy) { state.selected = null; highlightPath(-1); } });

    function markActive(id) {
      document.querySelectorAll("li.col.active").forEach(function (el) { el.classList.remove("active"); });
      var el = document.querySelector("li.col[data-nid=\"" + id + "\"]");
      if (el) el.classList.add("active");
    }

    // Asset browser: assets in project order; a click lists the columns (with types) and draws the asset.
    var assetList = $("assets");
    var LIST_MAX = 3000;
    D.assets.slice(0, LIST_MAX).forEach(function (a, ai) {
      var li = document.createElement("li");
      li.className = "item asset";
      li.innerHTML = esc(a.key) + "<span class=\"kind\">" + esc(a.kind) + " \u00b7 " + a.columns.length + "</span>";
      li.title = a.reason || a.description || a.key;
      li.addEventListener("click", function () {
        var open = li.nextSibling && li.nextSibling.classList && li.nextSibling.classList.contains("cols");
        if (open) { li.parentNode.removeChild(li.nextSibling); return; }
        var ul = document.createElement("li");
        ul.className = "cols";
        var inner = "<ul>";
        if (a.reason) inner += "<li class=\"item col warn\">" + esc(a.reason) + "</li>";
        a.columns.forEach(function (nid) {
          inner += "<li class=\"item col\" data-nid=\"" + nid + "\" title=\"" + esc(descs[nid] || "") + "\">" + esc(D.nodes[nid][1]) +
                   (types[nid] ? " <span class=\"kind\">" + esc(types[nid].toLowerCase()) + "</span>" : "") + "</li>";
        });
        ul.innerHTML = inner + "</ul>";
        ul.querySelectorAll("li[data-nid]").forEach(function (c) {
          c.addEventListener("click", function () { focus(parseInt(c.getAttribute("data-nid"), 10)); });
        });
        li.parentNode.insertBefore(ul, li.nextSibling);
        if (a.columns.length) showAsset(ai);
      });
      assetList.appendChild(li);
    });
    if (D.assets.length > LIST_MAX) {
      var more = document.createElement("li");
      more.className = "item status";
      more.textContent = (D.assets.length - LIST_MAX) + " more assets: use the search";
      assetList.appendChild(more);
    }

    // Search: substring match on asset.column and on asset keys, best (exact / suffix) first.
    var search = $("search"), results = $("results"), names = [];
    for (i = 0; i < n; i++) names.push(name(i).toLowerCase());
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      results.innerHTML = "";
      if (!q) return;
      var hits = [];
      for (var j = 0; j < n && hits.length < 400; j++) {
        var pos = names[j].indexOf(q);
        if (pos >= 0) hits.push([names[j] === q ? -1 : (names[j].endsWith("." + q) ? 0 : 1 + pos), j]);
      }
      hits.sort(function (a, b) { return a[0] - b[0] || (names[a[1]] < names[b[1]] ? -1 : 1); });
      hits.slice(0, 50).forEach(function (hh) {
        var li = document.createElement("li");
        li.className = "item col result";
        li.setAttribute("data-nid", hh[1]);
        li.textContent = name(hh[1]);
        li.addEventListener("click", function () { focus(hh[1]); });
        results.appendChild(li);
      });
      if (!hits.length) results.innerHTML = "<li class=\"item status\">no column matches</li>";
    });
    search.addEventListener("keydown", function (e) {
      if (e.key === "Enter") { var first = results.querySelector("li[data-nid]"); if (first) first.click(); }
    });
    var redraw = function () { if (state.focus !== null) focus(state.focus); else if (state.asset !== null) showAsset(state.asset); };
    ["show-filter", "depth"].forEach(function (id) { if ($(id)) $(id).addEventListener("change", redraw); });
    document.querySelectorAll(".kind-toggle").forEach(function (cb) { cb.addEventListener("change", redraw); });

    function open(spec) {
      spec = (spec || "").toLowerCase();
      if (!spec) return false;
      if (byName[spec] !== undefined) { focus(byName[spec]); return true; }
      if (byAsset[spec] !== undefined) { showAsset(byAsset[spec]); return true; }
      return false;
    }
    /* Never a blank canvas: the last asset in project order that has columns (usually a mart). */
    function openDefault() {
      for (var ai = D.assets.length - 1; ai >= 0; ai--) if (D.assets[ai].columns.length) { showAsset(ai); return true; }
      return false;
    }
    var api = { cy: cy, focus: focus, showAsset: showAsset, open: open, openDefault: openDefault, byName: byName, byAsset: byAsset, state: state,
                name: name, ready: true };
    return api;
  }

  window.SqlAssetsLineage = SqlAssetsLineage;
})();
