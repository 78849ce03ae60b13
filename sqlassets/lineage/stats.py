"""`sqlassets lineage --stats`: what was parsed, what resolved, and every gap with its reason."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlassets.lineage.build import LineageBuild
from sqlassets.lineage.edges import EDGE_KINDS
from sqlassets.lineage.graph import STATUSES


def collect(build: LineageBuild) -> dict[str, Any]:
    """The stats as plain data; reads the graph's parallel arrays (no per-node view objects: 45k columns)."""
    cg, st = build.columns, build.stats
    counts = Counter(cg.status)
    status = {STATUSES[code]: n for code, n in counts.items()}
    edge_codes = Counter(code for ups in cg.up for _, code in ups)
    kinds = {EDGE_KINDS[code]: n for code, n in edge_codes.items()}
    unresolved_assets = {k: r.unresolved["*"] for k, r in cg.assets.items() if "*" in r.unresolved}
    unresolved_code = STATUSES.index("unresolved")
    inferred_code = STATUSES.index("inferred")
    unresolved_columns = []
    for i, reason in sorted(cg.reasons.items()):
        if cg.status[i] != unresolved_code:
            continue
        asset = cg.node_asset[i]
        if asset in unresolved_assets and reason == unresolved_assets[asset]:
            continue
        unresolved_columns.append({"column": cg.nodes[i], "reason": reason})
    guessed = [{"column": cg.nodes[i], "note": note} for i, note in sorted(cg.notes.items())
               if note and cg.status[i] != inferred_code]
    return {
        "assets": st.assets,
        "assets_with_sql": st.sql_assets,
        "parsed": st.computed,
        "from_cache": st.from_cache,
        "seconds": round(st.seconds, 3),
        "workers": st.workers,
        "catalog": st.catalog,
        "columns": len(cg.nodes),
        "columns_by_status": {k: status.get(k, 0) for k in ("resolved", "declared", "inferred", "unresolved")},
        "edges": cg.edge_count,
        "edges_by_kind": {k: kinds.get(k, 0) for k in EDGE_KINDS},
        "unresolved_assets": [{"asset": k, "reason": v} for k, v in sorted(unresolved_assets.items())],
        "unresolved_columns": unresolved_columns,
        "best_effort": guessed,
    }


def to_text(data: dict[str, Any], limit: int = 50) -> str:
    s = data["columns_by_status"]
    lines = [
        f"assets: {data['assets']} ({data['assets_with_sql']} with SQL: {data['parsed']} parsed, "
        f"{data['from_cache']} from cache) in {data['seconds']:.2f}s",
        f"columns: {data['columns']} ({s['resolved']} resolved from SQL, {s['declared']} declared, "
        f"{s['inferred']} inferred from how SQL reads them, {s['unresolved']} unresolved)",
        "edges: {} ({})".format(data["edges"], ", ".join(f"{k} {v}" for k, v in data["edges_by_kind"].items())),
        f"catalog: {data['catalog']}",
    ]
    for title, rows, key, label in (
        ("assets not followed", data["unresolved_assets"], "reason", "asset"),
        ("columns not (fully) followed", data["unresolved_columns"], "reason", "column"),
        ("best-effort edges (guesses, flagged)", data["best_effort"], "note", "column"),
    ):
        if not rows:
            continue
        lines.append(f"{title}: {len(rows)}")
        for row in rows[:limit]:
            lines.append(f"  {row[label]}: {row[key]}")
        if len(rows) > limit:
            lines.append(f"  ... {len(rows) - limit} more (--format json lists all)")
    return "\n".join(lines)
