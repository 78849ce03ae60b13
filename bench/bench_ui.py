"""Server time per page of `sqlassets ui` on the generated 5,000-model project (target: under 1 s each).

Pages are requested through the real ASGI app (routing, security middleware, templates, JSON) in this
process, without sockets, so the figures are the server's own time. The graph is loaded once, as the
server does at start; the state store holds one materialize run. Printed as milliseconds (median of
--repeat), and as a ratio to the 1 s budget. With --lineage, `/api/lineage` too: cold (builds or loads
the column graph, once per server; a cold build compiles every model with dbt, which takes minutes on
5,000 models, so warm the lineage cache first with `sqlassets lineage --stats`) and warm.

    python bench/bench_ui.py [--models 5000] [--repeat 5] [--lineage]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def call(app, path: str) -> tuple[int, int]:
    """One GET through the ASGI app; (status, body bytes)."""
    raw_path, _, query = path.partition("?")
    scope = {"type": "http", "method": "GET", "path": raw_path, "raw_path": raw_path.encode(),
             "query_string": query.encode(), "headers": [(b"host", b"127.0.0.1:8765")], "scheme": "http",
             "server": ("127.0.0.1", 8765), "client": ("127.0.0.1", 5000), "root_path": "", "http_version": "1.1"}
    out = {"status": 0, "size": 0}

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            out["status"] = message["status"]
        elif message["type"] == "http.response.body":
            out["size"] += len(message.get("body", b""))

    asyncio.run(app(scope, receive, send))
    return out["status"], out["size"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--lineage", action="store_true", help="also the lineage data (see above)")
    args = ap.parse_args(argv)
    root = HERE / "_work" / f"p{args.models}"
    subprocess.run([sys.executable, str(HERE / "gen_project.py"), "--models", str(args.models), "--out", str(root)],
                   check=True)
    from sqlassets.loaders import load_graph
    from sqlassets.project import load_project
    from sqlassets.run.state import StateStore
    from sqlassets.ui.security import Guard
    from sqlassets.ui.server import UiState, build_app

    t0 = time.perf_counter()
    project = load_project(root)
    graph = load_graph(project)
    load_s = time.perf_counter() - t0
    # a run in the state store, so runs / run pages have something to show
    with StateStore(project.state_dir) as st:
        if not st.runs(1):
            from sqlassets.run.state import UnitRecord

            rid = st.start_run("materialize", command="bench", options={})
            now = time.time()
            st.record_units(rid, [UnitRecord(k, "", "done", now, now + 0.01, rows=10, code_version=graph[k].code_version)
                                  for k in graph.topo_order[:500]])
            st.finish_run(rid, "success", planned=500, done=500, failed=0, skipped=0)
        run_id = st.runs(1)[0]["id"]
    ui = UiState(project, graph, Guard(host="127.0.0.1", port=8765))
    app = build_app(ui)
    mid = graph.topo_order[len(graph) // 2]
    last = graph.topo_order[-1]
    pages = ["/graph", "/api/graph", f"/assets/{mid}", f"/assets/{last}", "/runs", f"/runs/{run_id}",
             "/lineage", "/gate", "/api/select?q=%2B" + last]
    print(f"project: {len(graph)} assets, graph loaded once at server start in {load_s:.2f}s")
    print(f"{'page':<44} {'ms':>8} {'of 1 s':>7} {'KB':>8}  {'first call ms':>13}")
    if args.lineage:
        t = time.perf_counter()
        status, size = call(app, "/api/lineage")
        cold = time.perf_counter() - t
        print(f"{'/api/lineage (cold: build/load, once)':<44} {cold * 1000:>8.0f} {cold:>7.2f} {size / 1024:>8.0f}"
              f"  [{status}]")
        pages.append("/api/lineage")
    worst = 0.0
    for path in pages:
        t = time.perf_counter()
        call(app, path)  # first call: template compile, defined checks discovered once per server
        first = time.perf_counter() - t
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            status, size = call(app, path)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        worst = max(worst, med)
        print(f"{path[:44]:<44} {med * 1000:>8.1f} {med:>7.3f} {size / 1024:>8.0f}  {first * 1000:>13.0f}  [{status}]")
    print(f"slowest page (warm): {worst * 1000:.0f} ms = {worst:.2f} of the 1 s budget")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
