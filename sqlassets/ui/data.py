"""What each page shows, as plain dicts built from the graph and the state store's public methods.

The UI never writes the state store itself and never reads its tables directly: runs, steps, logs,
materializations, backfills and check results come through `StateStore` methods, so the `state`
helpers (leases, other back ends) can change the storage underneath. Nothing here serves a file from
the project folder: code comes from the loaded `Asset`s, and the warehouse connection settings
(profiles, passwords) are never part of any payload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.run.state import StateStore
    from sqlassets.run.status import AssetStatus

#: the colours of the graph, worst first for partitioned assets
STATES = ("failed", "running", "stale", "missing", "done", "observed")


def ts(value: float | None) -> str:
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def folder_of(asset: Asset) -> str:
    """The folder an asset's file lives in (`models/marts`), `sources/<name>` for sources."""
    if asset.kind == "source":
        return "sources/" + asset.key.split(".", 1)[0]
    if asset.kind == "external":
        return "external"
    if asset.path:
        parent = str(PurePosixPath(asset.path.replace("\\", "/")).parent)
        return parent if parent != "." else "(root)"
    return asset.kind


def buildable(asset: Asset) -> bool:
    return not asset.is_external and asset.materialization != "ephemeral" and asset.kind != "snapshot" \
        and asset.materialization != "snapshot"


@dataclass
class NodeState:
    state: str
    done: int = 0
    total: int = 0
    last: float | None = None
    rows: int | None = None


def running_assets(graph: AssetGraph, state: StateStore, extra: Iterable[str] = ()) -> set[str]:
    """Assets a live run is writing: a running backfill's requested assets, a running materialize's
    selection (as it was typed), plus what the UI itself is running (`extra`)."""
    from sqlassets.errors import UserError
    from sqlassets.selection import select_keys

    out = set(extra)
    for run in state.runs(50):
        if run["status"] != "running":
            continue
        if run.get("backfill_id") is not None:
            bf = state.backfill(int(run["backfill_id"]))
            if bf is not None:
                out.update(k for k in bf["requested"] if k in graph)
                continue
        try:
            opts = json.loads(run.get("options") or "{}")
        except ValueError:
            opts = {}
        if run["kind"] in ("materialize", "backfill"):
            try:
                out.update(select_keys(graph, opts.get("select") or None))
            except UserError:
                pass
    return out


def node_states(graph: AssetGraph, state: StateStore, running: set[str]) -> dict[str, NodeState]:
    """One colour per asset: failed / running / stale / missing / done (observed for sources)."""
    from sqlassets.run.status import compute_status

    keys = [a.key for a in graph if buildable(a)]
    out: dict[str, NodeState] = {}
    for st in compute_status(graph, keys, state):
        c = st.counts
        total = len(st.states)
        if c["failed"]:
            s = "failed"
        elif st.key in running:
            s = "running"
        elif c["done"] == total and total:
            s = "done"
        elif c["stale"]:
            s = "stale"
        elif c["done"] and c["done"] + c["stale"] == total:
            s = "stale"
        else:
            s = "missing"
        out[st.key] = NodeState(s, c["done"], total, st.last_materialized, st.rows)
    for a in graph:
        if a.key not in out:
            out[a.key] = NodeState("running" if a.key in running else "observed")
    return out


def graph_payload(graph: AssetGraph, states: dict[str, NodeState], project_name: str) -> dict[str, Any]:
    """Every asset (compact) and every edge as index pairs: what the graph page draws."""
    keys = graph.topo_order
    index = {k: i for i, k in enumerate(keys)}
    nodes = []
    for k in keys:
        a = graph[k]
        ns = states.get(k) or NodeState("observed")
        node: dict[str, Any] = {"k": k, "kind": a.kind, "mat": a.materialization, "g": a.group or "",
                                "o": a.owner or "", "f": folder_of(a), "s": ns.state}
        if a.tags:
            node["t"] = list(a.tags)
        if a.description:
            node["d"] = a.description[:200]
        if ns.total > 1:
            node["p"] = [ns.done, ns.total]
        nodes.append(node)
    edges = [[index[d], index[k]] for k in keys for d in graph[k].deps]
    groups = sorted({a.group for a in graph if a.group})
    owners = sorted({a.owner for a in graph if a.owner})
    return {"project": project_name, "nodes": nodes, "edges": edges, "groups": groups, "owners": owners,
            "generated": time.time()}


# -- one asset ----------------------------------------------------------------------------------------

def _calendar(states: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Daily partitions as months of weeks (Monday first): [{month, weeks: [[(day, key, state)|None]*7]}]."""
    months: dict[str, dict[int, str]] = {}
    for key, s in states:
        try:
            d = date.fromisoformat(key[:10])
        except ValueError:
            return []
        months.setdefault(f"{d.year:04d}-{d.month:02d}", {})[d.day] = s
    out = []
    for month, days in months.items():
        y, m = int(month[:4]), int(month[5:])
        first = date(y, m, 1)
        n_days = ((date(y + (m == 12), m % 12 + 1, 1)) - first).days
        cells: list[Any] = [None] * first.weekday()
        for day in range(1, n_days + 1):
            s = days.get(day)
            cells.append({"day": day, "key": f"{month}-{day:02d}", "state": s} if s else {"day": day})
        while len(cells) % 7:
            cells.append(None)
        out.append({"month": first.strftime("%B %Y"), "weeks": [cells[i:i + 7] for i in range(0, len(cells), 7)]})
    return out


def partition_view(graph: AssetGraph, key: str, status: AssetStatus | None) -> dict[str, Any]:
    """A timeline the page can draw: calendar (daily), grid (static and other grains), or one cell."""
    from sqlassets.run.partitions import partitions_def

    asset = graph[key]
    pdef = partitions_def(asset)
    if status is None:
        return {"kind": "none", "describe": "observed, not built" if asset.is_external else "not built by sqlassets"}
    states = status.states
    counts = status.counts
    if pdef is None:
        return {"kind": "single", "state": states[0][1] if states else "missing", "counts": counts}
    spec = pdef.spec()
    view: dict[str, Any] = {"spec": spec, "describe": pdef.describe(), "counts": counts, "total": len(states)}
    if spec.get("type") == "daily" and len(states) <= 3 * 366:
        view.update(kind="calendar", months=_calendar(states))
        if view["months"]:
            return view
    view.update(kind="grid", cells=[{"key": k, "state": s} for k, s in states[-2000:]],
                truncated=max(0, len(states) - 2000))
    return view


def asset_history(state: StateStore, key: str, runs_back: int = 200) -> list[dict[str, Any]]:
    """Runs that wrote `key`, newest first: partitions, rows, duration, status, and the run's check results."""
    out = []
    for run in state.runs(runs_back):
        steps = [s for s in state.steps(int(run["id"])) if s["asset"] == key]
        checks = state.latest_check_results([key], run_id=int(run["id"]))
        if not steps and not checks:
            continue
        done = [s for s in steps if s["status"] == "done"]
        started = min((s["started_at"] for s in steps if s["started_at"]), default=None)
        finished = max((s["finished_at"] for s in steps if s["finished_at"]), default=None)
        parts = sorted({s["partition"] for s in steps if s["partition"]})
        out.append({
            "run": run["id"], "kind": run["kind"], "run_status": run["status"], "when": ts(run["started_at"]),
            "partitions": len(parts), "range": (parts[0] + (".." + parts[-1] if len(parts) > 1 else "")) if parts else "",
            "done": len(done), "failed": sum(1 for s in steps if s["status"] == "failed"),
            "rows": sum(s["rows"] or 0 for s in done) if done else None,
            "seconds": (finished - started) if started and finished else None,
            "step_seconds": sum(s["duration"] or 0 for s in steps),
            "errors": sorted({s["error"] for s in steps if s["error"]})[:3],
            "checks": _check_counts(checks), "check_list": [_check_json(c) for c in checks[:50]],
        })
    return out


def _check_counts(checks: Iterable[Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in checks:
        out[c.status] = out.get(c.status, 0) + 1
    return out


def _check_json(c: Any) -> dict[str, Any]:
    return {"asset": c.asset, "check": c.check, "status": c.status, "severity": c.severity, "partition": c.partition,
            "column": c.column, "observed": c.observed, "expected": c.expected, "message": c.message,
            "source": c.source}


def asset_detail(graph: AssetGraph, state: StateStore, key: str, running: set[str]) -> dict[str, Any]:
    from sqlassets.run.status import compute_status

    asset = graph[key]
    status = compute_status(graph, [key], state)[0] if buildable(asset) else None
    latest = state.latest_check_results([key])
    by_column: dict[str, list[dict[str, Any]]] = {}
    for c in latest:
        by_column.setdefault((c.column or "").lower(), []).append(_check_json(c))
    columns = [{"name": c.name, "type": c.type or "", "description": c.description,
                "checks": _summarize(by_column.get(c.name.lower(), []))} for c in asset.columns]
    known = {c.name.lower() for c in asset.columns}
    for col, results in by_column.items():
        if col and col not in known:
            columns.append({"name": col, "type": "", "description": "", "checks": _summarize(results)})
    node = _one_state(status, key in running) if status is not None else \
        NodeState("running" if key in running else "observed")
    return {
        "asset": asset, "key": key, "folder": folder_of(asset), "state": node.state,
        "relation": str(asset.relation) if asset.relation else "",
        "columns": columns, "asset_checks": _summarize(by_column.get("", [])),
        "upstream": list(asset.deps), "downstream": list(graph.children(key)),
        "partitions": partition_view(graph, key, status),
        "history": asset_history(state, key),
        "last": ts(status.last_materialized) if status else "-",
        "rows": status.rows if status else None,
    }


def _one_state(status: AssetStatus, running: bool) -> NodeState:
    c = status.counts
    total = len(status.states)
    if c["failed"]:
        s = "failed"
    elif running:
        s = "running"
    elif total and c["done"] == total:
        s = "done"
    elif c["stale"] or (c["done"] and c["done"] + c["stale"] == total):
        s = "stale"
    else:
        s = "missing"
    return NodeState(s, c["done"], total, status.last_materialized, status.rows)


def _summarize(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per check name: its worst latest status across partitions, with how many partitions."""
    rank = {"error": 0, "fail": 1, "warn": 2, "skipped": 3, "pass": 4}
    out: dict[str, dict[str, Any]] = {}
    for r in results:
        cur = out.get(r["check"])
        if cur is None:
            out[r["check"]] = {**r, "partitions": 1}
            continue
        cur["partitions"] += 1
        if rank.get(r["status"], 5) < rank.get(cur["status"], 5):
            cur.update({k: v for k, v in r.items() if k != "partitions"})
    return sorted(out.values(), key=lambda r: (rank.get(r["status"], 5), r["check"]))


# -- runs ----------------------------------------------------------------------------------------------

def runs_list(state: StateStore, limit: int = 100) -> dict[str, Any]:
    runs = []
    for r in state.runs(limit):
        runs.append({**{k: r[k] for k in ("id", "kind", "backfill_id", "status", "command", "planned", "done",
                                          "failed", "skipped")},
                     "started": ts(r["started_at"]),
                     "seconds": (r["finished_at"] - r["started_at"]) if r["finished_at"] else
                     (time.time() - r["started_at"])})
    backfills = []
    for bf in state.backfills(limit):
        prog = state.backfill_progress(bf)
        backfills.append({"id": bf["id"], "created": ts(bf["created_at"]), "status": bf["status"],
                          "selection": bf["selection"], "assets": sorted(bf["requested"]),
                          "last_run": bf["last_run_id"], **prog})
    return {"runs": runs, "backfills": backfills}


def run_detail(graph: AssetGraph | None, state: StateStore, run_id: int, sql: dict[str, list[str]] | None = None
               ) -> dict[str, Any] | None:
    """A run's steps (per asset and partition), timings, errors, logs, check results and SQL."""
    run = state.run(run_id)
    if run is None:
        return None
    steps = state.steps(run_id)
    t0 = run["started_at"]
    end = run["finished_at"] or time.time()
    span = max(end - t0, 1e-6)
    assets: dict[str, dict[str, Any]] = {}
    for s in steps:
        a = assets.setdefault(s["asset"], {"asset": s["asset"], "steps": [], "counts": {}, "rows": 0,
                                           "first": None, "last": None})
        a["counts"][s["status"]] = a["counts"].get(s["status"], 0) + 1
        a["rows"] += s["rows"] or 0
        st, fi = s["started_at"] or t0, s["finished_at"] or end
        a["first"] = st if a["first"] is None else min(a["first"], st)
        a["last"] = fi if a["last"] is None else max(a["last"], fi)
        a["steps"].append({"partition": s["partition"] or "-", "status": s["status"], "rows": s["rows"],
                           "seconds": s["duration"], "attempts": s["attempts"], "error": s["error"],
                           "batch": s["batch"],
                           "offset": 100 * (st - t0) / span, "width": max(0.4, 100 * (fi - st) / span)})
    for a in assets.values():
        a["offset"] = 100 * (a["first"] - t0) / span
        a["width"] = max(0.6, 100 * (a["last"] - a["first"]) / span)
        a["seconds"] = a["last"] - a["first"]
        if graph is not None and a["asset"] in graph:
            asset = graph[a["asset"]]
            a["compiled"] = asset.compiled_sql or ""
        a["sql"] = (sql or {}).get(a["asset"], [])
    backfill = None
    if run["backfill_id"] is not None:
        bf = state.backfill(int(run["backfill_id"]))
        if bf is not None:
            backfill = {"id": bf["id"], "selection": bf["selection"], "status": bf["status"],
                        **state.backfill_progress(bf)}
    checks = state.latest_check_results(run_id=run_id)
    return {
        "run": {**run, "started": ts(run["started_at"]), "finished": ts(run["finished_at"]),
                "seconds": end - t0},
        "assets": list(assets.values()), "steps": len(steps),
        "logs": [{"ts": ts(x["ts"]), "level": x["level"], "message": x["message"]} for x in state.logs(run_id)],
        "checks": [_check_json(c) for c in checks], "check_counts": _check_counts(checks),
        "backfill": backfill, "live": run["status"] == "running",
    }
