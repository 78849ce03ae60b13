/* The asset graph view, shared by `sqlassets ui` (graph page) and `sqlassets lineage --report` (Assets tab).
 *
 * Input: nodes [{k: key, kind, g: group, o: owner, f: folder, s: state, p: [done, total], d: description}]
 * and edges [[upstream index, downstream index]]. Level of detail: small views use the dagre layered
 * layout; large ones a linear-time layered layout (longest path + one barycentre sweep) and, in "auto"
 * mode, one node per folder (or group) until a filter, a selection or a neighbourhood makes the view
 * small. Refits when its container is resized.
 */
(function () {
  "use strict";
  var STATE_COLORS = { done: "#2da44e", stale: "#d4a72c", missing: "#afb8c1", failed: "#cf222e",
                       running: "#0969da", observed: "#ffffff", asset: "#ddf4ff" };
  var STATE_RANK = { failed: 0, running: 1, stale: 2, missing: 3, done: 4, asset: 5, observed: 6 };
  var DAGRE_MAX = 300, AUTO_COLLAPSE = 250;

  function SqlAssetsGraph(container, opts) {
    opts = opts || {};
    var self = this;
    this.opts = opts;
    this.container = container;
    this.nodes = [];
    this.edges = [];
    this.filter = { group: "", owner: "", keys: null, focus: null, depth: 2, collapse: "auto" };
    if (window.cytoscapeDagre && !SqlAssetsGraph._registered) { cytoscape.use(window.cytoscapeDagre); SqlAssetsGraph._registered = true; }
    this.cy = cytoscape({
      container: container, wheelSensitivity: 0.3, minZoom: 0.02, maxZoom: 3,
      textureOnViewport: true, hideEdgesOnViewport: true,
      style: [
        { selector: "node", style: { "shape": "round-rectangle", "background-color": "data(color)", "border-width": 1,
            "border-color": "#57606a", "label": "data(label)", "text-valign": "center", "text-halign": "center",
            "font-size": 11, "width": "data(w)", "height": 30, "text-wrap": "ellipsis", "text-max-width": "data(tw)",
            "min-zoomed-font-size": 4, "color": "data(fg)" } },
        { selector: "node.observed", style: { "border-style": "dashed" } },
        { selector: "node.group", style: { "shape": "round-rectangle", "height": 60, "font-size": 18, "border-width": 2,
            "text-wrap": "wrap", "min-zoomed-font-size": 0 } },
        { selector: "node:selected, node.hl", style: { "border-width": 3, "border-color": "#0550ae" } },
        { selector: "node.focus", style: { "border-width": 4, "border-color": "#bf8700" } },
        { selector: "edge", style: { "width": "data(width)", "curve-style": "straight", "target-arrow-shape": "triangle",
            "line-color": "#8c959f", "target-arrow-color": "#8c959f", "opacity": 0.7, "arrow-scale": 0.8 } },
        { selector: "edge.hl", style: { "line-color": "#0969da", "target-arrow-color": "#0969da", "width": 3, "opacity": 1 } },
        { selector: ".faded", style: { "opacity": 0.15 } }
      ]
    });
    this.cy.on("tap", "node", function (evt) {
      var d = evt.target.data();
      self.highlight(evt.target);
      if (d.members) { if (opts.onGroup) opts.onGroup(d.members, d.name); return; }
      if (opts.onSelect) opts.onSelect(self.nodes[d.idx], d.idx);
    });
    this.cy.on("dbltap", "node", function (evt) {
      var d = evt.target.data();
      if (!d.members && opts.onOpen) opts.onOpen(self.nodes[d.idx].k);
    });
    this.cy.on("tap", function (evt) { if (evt.target === self.cy) self.highlight(null); });
    var refit = function () { self.cy.resize(); self.cy.fit(undefined, 30); };
    if (window.ResizeObserver) { new ResizeObserver(function () { refit(); }).observe(container); }
    else window.addEventListener("resize", refit);
  }

  SqlAssetsGraph.prototype.setData = function (nodes, edges) {
    this.nodes = nodes; this.edges = edges;
    var n = nodes.length, up = new Array(n), down = new Array(n), i;
    for (i = 0; i < n; i++) { up[i] = []; down[i] = []; }
    for (i = 0; i < edges.length; i++) { up[edges[i][1]].push(edges[i][0]); down[edges[i][0]].push(edges[i][1]); }
    this.up = up; this.down = down;
    this.byKey = {};
    for (i = 0; i < n; i++) this.byKey[nodes[i].k] = i;
  };

  SqlAssetsGraph.prototype.walk = function (start, adj, depth) {
    var seen = {}, q = [[start, 0]], h = 0;
    seen[start] = true;
    while (h < q.length) {
      var cur = q[h++];
      if (depth && cur[1] >= depth) continue;
      var nb = adj[cur[0]];
      for (var j = 0; j < nb.length; j++) if (!seen[nb[j]]) { seen[nb[j]] = true; q.push([nb[j], cur[1] + 1]); }
    }
    return seen;
  };

  /* Indices of the assets the current filters keep. */
  SqlAssetsGraph.prototype.visible = function () {
    var f = this.filter, out = [], i, keep = null;
    if (f.focus !== null && f.focus !== undefined && this.byKey[f.focus] !== undefined) {
      var s = this.byKey[f.focus];
      var a = this.walk(s, this.up, f.depth), b = this.walk(s, this.down, f.depth);
      keep = {};
      Object.keys(a).forEach(function (k) { keep[k] = true; });
      Object.keys(b).forEach(function (k) { keep[k] = true; });
    }
    for (i = 0; i < this.nodes.length; i++) {
      var nd = this.nodes[i];
      if (keep && !keep[i]) continue;
      if (f.keys && !f.keys[nd.k]) continue;
      if (f.group && nd.g !== f.group) continue;
      if (f.owner && nd.o !== f.owner) continue;
      out.push(i);
    }
    return out;
  };

  function label(nd) {
    var name = nd.k;
    if (nd.p) name += "  " + nd.p[0] + "/" + nd.p[1];
    return name;
  }

  function layered(ids, parentsOf, dx, dy) {
    /* Longest-path layers, then one barycentre sweep to order each layer: O(V + E), fine for 5,000. */
    var layer = {}, pos = {}, layers = [], i;
    for (i = 0; i < ids.length; i++) {          // ids are in topological order
      var id = ids[i], l = 0, ps = parentsOf(id);
      for (var j = 0; j < ps.length; j++) if (layer[ps[j]] !== undefined && layer[ps[j]] + 1 > l) l = layer[ps[j]] + 1;
      layer[id] = l;
      (layers[l] = layers[l] || []).push(id);
    }
    for (var L = 0; L < layers.length; L++) {
      var row = layers[L];
      if (L > 0) {
        var bary = {};
        row.forEach(function (id) {
          var ps = parentsOf(id).filter(function (p) { return pos[p] !== undefined; });
          bary[id] = ps.length ? ps.reduce(function (s, p) { return s + pos[p]; }, 0) / ps.length : 1e9;
        });
        row.sort(function (a, b) { return bary[a] - bary[b]; });
      }
      row.forEach(function (id, k) { pos[id] = k; });
    }
    var out = {};
    for (var id2 in layer) out[id2] = { x: layer[id2] * dx, y: (pos[id2] - (layers[layer[id2]].length - 1) / 2) * dy };
    return out;
  }

  SqlAssetsGraph.prototype.render = function () {
    var self = this, f = this.filter, ids = this.visible(), els = [], i;
    var mode = f.collapse;
    if (mode === "auto") mode = ids.length > AUTO_COLLAPSE ? "folder" : "none";
    this.mode = mode;
    var shown = {};
    ids.forEach(function (id) { shown[id] = true; });
    if (mode === "none") {
      ids.forEach(function (id) {
        var nd = self.nodes[id], text = label(nd);
        var w = Math.max(90, Math.min(240, 7 * text.length + 16));
        els.push({ group: "nodes", data: { id: "n" + id, idx: id, label: text, color: STATE_COLORS[nd.s] || "#fff",
          fg: nd.s === "failed" || nd.s === "running" ? "#fff" : "#1f2328", w: w, tw: w - 10 },
          classes: nd.s + (nd.k === f.focus ? " focus" : "") });
      });
      ids.forEach(function (id) {
        self.up[id].forEach(function (p) {
          if (shown[p]) els.push({ group: "edges", data: { id: "e" + p + "_" + id, source: "n" + p, target: "n" + id, width: 1.2 } });
        });
      });
    } else {
      var attr = mode === "group" ? "g" : "f", groups = {}, order = [];
      ids.forEach(function (id) {
        var name = self.nodes[id][attr] || "(none)";
        if (!groups[name]) { groups[name] = { members: [], worst: "observed", counts: {} }; order.push(name); }
        var g = groups[name], s = self.nodes[id].s;
        g.members.push(self.nodes[id].k);
        g.counts[s] = (g.counts[s] || 0) + 1;
        if (STATE_RANK[s] < STATE_RANK[g.worst]) g.worst = s;
      });
      var gid = {};
      order.forEach(function (name, k) { gid[name] = k; });
      var gedges = {};
      ids.forEach(function (id) {
        var to = gid[self.nodes[id][attr] || "(none)"];
        self.up[id].forEach(function (p) {
          if (!shown[p]) return;
          var from = gid[self.nodes[p][attr] || "(none)"];
          if (from !== to) gedges[from + "_" + to] = (gedges[from + "_" + to] || 0) + 1;
        });
      });
      order.forEach(function (name, k) {
        var g = groups[name], text = name + "\n" + g.members.length + " assets";
        var w = Math.max(160, Math.min(360, 10 * name.length + 30));
        els.push({ group: "nodes", data: { id: "g" + k, name: name, members: g.members, label: text,
          color: STATE_COLORS[g.worst] || "#fff", fg: g.worst === "failed" || g.worst === "running" ? "#fff" : "#1f2328",
          w: w, tw: w - 10 }, classes: "group " + g.worst });
      });
      Object.keys(gedges).forEach(function (e) {
        var p = e.split("_");
        els.push({ group: "edges", data: { id: "ge" + e, source: "g" + p[0], target: "g" + p[1],
          width: Math.min(8, 1 + Math.log(gedges[e]) ) } });
      });
    }
    var cy = this.cy;
    cy.startBatch();
    cy.elements().remove();
    cy.add(els);
    cy.endBatch();
    var n = cy.nodes().length;
    if (mode === "none" && n <= DAGRE_MAX && window.cytoscapeDagre) {
      cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 14, rankSep: 70, fit: true, padding: 30, animate: false }).run();
    } else {
      var positions;
      if (mode === "none") {
        positions = layered(ids, function (id) { return self.up[id].filter(function (p) { return shown[p]; }); }, 260, 46);
        cy.nodes().forEach(function (node) { var p = positions[node.data("idx")]; node.position(p); });
      } else {
        var gp = {};
        cy.edges().forEach(function (e) { var t = e.data("target"); (gp[t] = gp[t] || []).push(e.data("source")); });
        var gids = cy.nodes().map(function (nn) { return nn.id(); });
        positions = layered(gids, function (id) { return gp[id] || []; }, 460, 90);
        cy.nodes().forEach(function (node) { node.position(positions[node.id()]); });
      }
      cy.fit(undefined, 30);
      // level of detail: never so far out that labels vanish; start at the sources and pan from there
      if (cy.zoom() < 0.45) {
        var bb = cy.elements().boundingBox();
        cy.zoom(0.45);
        cy.pan({ x: 30 - bb.x1 * 0.45, y: cy.height() / 2 - ((bb.y1 + bb.y2) / 2) * 0.45 });
      }
    }
    if (this.opts.onRender) this.opts.onRender({ assets: ids.length, nodes: n, mode: mode });
    return ids.length;
  };

  SqlAssetsGraph.prototype.highlight = function (node) {
    var cy = this.cy;
    cy.elements().removeClass("hl faded");
    if (!node) return;
    var nb = node.closedNeighborhood();
    cy.elements().not(nb).addClass("faded");
    nb.addClass("hl");
  };

  SqlAssetsGraph.prototype.select = function (key) {
    var i = this.byKey[key];
    if (i === undefined) return;
    var node = this.cy.$id("n" + i);
    if (node.length) { this.highlight(node); this.cy.center(node); }
  };

  SqlAssetsGraph.STATE_COLORS = STATE_COLORS;
  window.SqlAssetsGraph = SqlAssetsGraph;
})();
