"""The offline HTML lineage report: one file with the data, the app and its libraries inlined.

Why inline everything: the report is mailed around, attached to CI runs and opened on laptops
without network; a CDN link or a sibling .js file breaks all of those. The front-end is the one
`sqlassets ui` serves (sqlassets/ui/static: graph.js, lineage.js, app.css, and the vendored
cytoscape + cytoscape-dagre, MIT, see static/vendor/README), so the report and the UI get the same
fixes. It opens on the asset graph; columns are drawn inside their asset, with types and
descriptions. The data is a compact JSON (nodes as [asset index, column, status], edges as a flat
[source, target, kind, ...] list, sparse `types` / `descs` / `reasons` keyed by node id).
"""

from __future__ import annotations

import datetime as _dt
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
    """A front-end file shared with the UI (sqlassets/ui/static)."""
    return resources.files("sqlassets.ui").joinpath("static", name).read_text(encoding="utf-8")


# inlined in this order: libraries first, then the shared views, then the report's page script
_VENDOR = ("vendor/cytoscape.min.js", "vendor/cytoscape-dagre.min.js")
_APP = ("graph.js", "lineage.js", "report-page.js")


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
            entry = {
                "key": key,
                "kind": a.kind if a is not None else ("external" if rec is None else "asset"),
                "path": (a.path or "") if a is not None else "",
                "columns": [],
                "reason": (rec.unresolved.get("*") or "") if rec is not None else "",
            }
            if a is not None:
                from sqlassets.ui.data import folder_of

                entry.update(description=a.description or "", group=a.group or "", owner=a.owner or "",
                             folder=folder_of(a))
            assets.append(entry)
        return idx

    # assets in project (topological) order first, so the browser lists them as the project reads
    for key in cg.asset_columns:
        if wanted is None or key in wanted or any(i in ids for i in cg.asset_columns[key]):
            asset_of(key)
    nodes = []
    reasons: dict[int, str] = {}
    types: dict[int, str] = {}
    descs: dict[int, str] = {}
    declared: dict[str, dict[str, Any]] = {}
    for new, old in enumerate(order):
        info = cg.info[old]
        ai = asset_of(info.asset)
        assets[ai]["columns"].append(new)
        nodes.append([ai, info.column, _STATUS[info.status]])
        why = info.reason or info.note
        if why:
            reasons[new] = why
        if graph is not None:
            cols = declared.get(info.asset)
            if cols is None:
                a = graph.get(info.asset)
                cols = declared[info.asset] = {c.name.lower(): c for c in a.columns} if a is not None else {}
            col = cols.get(info.column.lower())
            if col is not None:
                if col.type:
                    types[new] = col.type
                if col.description:
                    descs[new] = col.description
    if graph is not None:
        # asset-level edges among the assets in the report (the Assets view)
        for entry in assets:
            a = graph.get(entry["key"])
            entry["deps"] = sorted(asset_index[d] for d in (a.deps if a is not None else ()) if d in asset_index)
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
        "types": types,
        "descs": descs,
    }


def render_report(data: dict[str, Any]) -> str:
    from markupsafe import Markup

    from sqlassets.ui.server import templates

    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    # Inside <script>, "</" could end the element early; JSON allows "<\/" for the same text.
    payload = payload.replace("</", "<\\/")
    vendor = "\n".join(_static(n) for n in _VENDOR)
    app = "\n".join(_static(n) for n in _APP)
    for name, text in (("vendor", vendor), ("app", app)):
        if "</script" in text.lower():
            raise RuntimeError(f"inlined {name} JavaScript contains '</script'; it cannot be inlined as is")
    return templates().get_template("report.html").render(
        title=data.get("project") or "project", generated=data.get("generated", ""), css=Markup(_static("app.css")),
        data=Markup(payload), vendor=Markup(vendor), app=Markup(app))


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
