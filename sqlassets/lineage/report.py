"""The offline HTML lineage report: one file with the data, the app and cytoscape.js inlined.

Why inline everything: the report is mailed around, attached to CI runs and opened on laptops
without network; a CDN link or a sibling .js file breaks all of those. cytoscape.min.js (MIT,
npm `cytoscape`, see static/README) is ~430 KB; the data is a compact JSON (nodes as
[asset index, column, status], edges as a flat [source, target, kind, ...] list).
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from collections import deque
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from sqlassets.errors import UserError
from sqlassets.lineage.graph import ColumnGraph

_STATUS = {"resolved": 0, "declared": 1, "inferred": 2, "unresolved": 3}


def _static(name: str) -> str:
    return resources.files("sqlassets.lineage").joinpath("static", name).read_text(encoding="utf-8")


def _closure(cg: ColumnGraph, start: set[int]) -> set[int]:
    """Columns of the selected assets plus everything upstream and downstream of them (paths stay whole)."""
    keep = set(start)
    for adj in (cg.up, cg.down):
        seen = set(start)
        frontier = deque(start)
        while frontier:
            node = frontier.popleft()
            for nxt, _ in adj[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append(nxt)
        keep |= seen
    return keep


def report_data(cg: ColumnGraph, keys: Sequence[str] | None = None, graph: Any = None,
                project_name: str = "") -> dict[str, Any]:
    """The JSON the page reads; `keys` limits it to those assets' columns and their whole lineage."""
    if keys is None:
        ids = set(range(len(cg.nodes)))
    else:
        start = {i for k in keys for i in cg.asset_columns.get(k, ())}
        ids = _closure(cg, start)
    order = sorted(ids)
    remap = {old: new for new, old in enumerate(order)}
    asset_index: dict[str, int] = {}
    assets: list[dict[str, Any]] = []
    wanted = set(keys) if keys is not None else None

    def asset_of(key: str) -> int:
        idx = asset_index.get(key)
        if idx is None:
            idx = asset_index[key] = len(assets)
            a = graph.get(key) if graph is not None else None
            rec = cg.assets.get(key)
            assets.append({
                "key": key,
                "kind": a.kind if a is not None else ("external" if rec is None else "asset"),
                "path": (a.path or "") if a is not None else "",
                "columns": [],
                "reason": (rec.unresolved.get("*") or "") if rec is not None else "",
            })
        return idx

    # assets in project (topological) order first, so the browser lists them as the project reads
    for key in cg.asset_columns:
        if wanted is None or key in wanted or any(i in ids for i in cg.asset_columns[key]):
            asset_of(key)
    nodes = []
    reasons: dict[int, str] = {}
    for new, old in enumerate(order):
        info = cg.info[old]
        ai = asset_of(info.asset)
        assets[ai]["columns"].append(new)
        nodes.append([ai, info.column, _STATUS[info.status]])
        why = info.reason or info.note
        if why:
            reasons[new] = why
    edges: list[int] = []
    for old in order:
        dst = remap[old]
        for src, code in cg.up[old]:
            if src in remap:
                edges.extend((remap[src], dst, code))
    return {
        "project": project_name,
        "generated": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "assets": assets,
        "nodes": nodes,
        "edges": edges,
        "reasons": reasons,
    }


def render_report(data: dict[str, Any]) -> str:
    template = _static("report.html")
    cytoscape = _static("cytoscape.min.js")
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Inside <script>, "</" could end the element early; JSON allows "<\/" for the same text.
    payload = payload.replace("</", "<\\/")
    if "</script" in cytoscape.lower():
        raise RuntimeError("bundled cytoscape.min.js contains '</script'; it cannot be inlined as is")
    title = html.escape(data.get("project") or "project")
    head, rest = template.split("__DATA__", 1)
    mid, tail = rest.split("__CYTOSCAPE__", 1)
    return head.replace("__TITLE__", title) + payload + mid + cytoscape + tail


def write_report(cg: ColumnGraph, out: Path, *, keys: Sequence[str] | None = None, graph: Any = None,
                 project_name: str = "") -> dict[str, int]:
    """Write the report atomically (a temp file renamed into place: never a half-written report)."""
    data = report_data(cg, keys, graph, project_name)
    text = render_report(data)
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write report {out}: {exc.strerror}") from None
    return {"columns": len(data["nodes"]), "edges": len(data["edges"]) // 3, "bytes": len(text.encode())}
