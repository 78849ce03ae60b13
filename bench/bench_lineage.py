"""Column-lineage speed on the generated 5,000-model dbt project (compiled SQL in the manifest).

Measured in one run, in this process unless said otherwise:
  * cold: whole-project lineage with an empty cache: every model parsed, qualified and resolved
    against its parents' columns in topological order, and the project-wide column graph built
    (after that any transitive question is a graph walk);
  * warm: the same with the cache from the cold run (nothing changed: nothing recomputed);
  * one change: one staging model edited (same columns) -> only it is recomputed;
  * one column's full transitive upstream after load (median over the mart columns with the
    largest upstream);
  * end to end in a new process: `sqlassets lineage COL --upstream --format json`, warm cache
    (interpreter start-up + manifest load + cache + walk);
  * the reference: naive `sqlglot.lineage.lineage(column, sql_string, schema)` once per column on
    a sample of the same models, extrapolated to every column (peers.md: ~60 ms/column).
Targets (issue 4): cold < 10 s, warm < 1 s, one column's upstream < 50 ms. Printed, never asserted.

    .venv/bin/python bench/bench_lineage.py [--models 5000] [--sample 24] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import VENV_BIN, ratio, table, time_cmd  # noqa: E402
from gen_project import cached_project  # noqa: E402

TARGETS = {"cold": 10.0, "warm": 1.0, "column": 0.050}


def _naive_per_column(graph, built, keys: list[str]) -> tuple[float, int, int]:
    """Seconds and column count for `lineage(column, sql, schema)` per output column, as peers call it."""
    from sqlglot.lineage import lineage

    total, n_cols, failed = 0.0, 0, 0
    for key in keys:
        asset = graph[key]
        sql = asset.compiled_sql
        schema: dict = {}
        for dep in asset.deps:
            rel = graph[dep].relation
            cols = built.columns.assets[dep].columns
            if rel is None or not cols:
                continue
            schema.setdefault(rel.database, {}).setdefault(rel.schema, {})[rel.identifier] = dict.fromkeys(
                cols, "unknown")
        for col in built.columns.assets[key].columns:
            t0 = time.perf_counter()
            try:
                lineage(col, sql, schema=schema, dialect=asset.dialect)
            except Exception:  # noqa: BLE001 - the reference is timed either way
                failed += 1
            total += time.perf_counter() - t0
            n_cols += 1
    return total, n_cols, failed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=5000)
    ap.add_argument("--sample", type=int, default=24, help="models in the naive per-column reference")
    ap.add_argument("--workers", type=int, default=1, help="process pool size for the main figures (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    root = cached_project(args.models, compile=True, verbose=True)
    print(f"project: {root} (generated/cached in {time.perf_counter() - t0:.1f}s)")

    from sqlassets.lineage.build import build_lineage
    from sqlassets.loaders import load_graph
    from sqlassets.project import load_project

    t0 = time.perf_counter()
    project = load_project(root)
    graph = load_graph(project)
    t_load = time.perf_counter() - t0
    with_sql = sum(1 for a in graph if a.compiled_sql)
    print(f"asset graph: {len(graph)} assets ({with_sql} with compiled SQL) loaded in {t_load:.2f}s")
    cache_dir = project.state_dir / "lineage"

    # -- cold ------------------------------------------------------------------------------------
    colds = []
    for _ in range(args.repeat):
        shutil.rmtree(cache_dir, ignore_errors=True)
        t0 = time.perf_counter()
        built = build_lineage(project, graph, workers=args.workers)
        colds.append(time.perf_counter() - t0)
    cg = built.columns
    st = built.stats
    n_cols = len(cg.nodes)
    shutil.rmtree(cache_dir, ignore_errors=True)
    t0 = time.perf_counter()
    build_lineage(project, graph, workers=2)
    cold_pool = time.perf_counter() - t0
    # leave a cache from a normal run for the warm measurements
    shutil.rmtree(cache_dir, ignore_errors=True)
    build_lineage(project, graph, workers=args.workers)

    # -- warm ------------------------------------------------------------------------------------
    warms = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        warm = build_lineage(project, graph, workers=args.workers)
        warms.append(time.perf_counter() - t0)
    assert warm.stats.computed == 0, warm.stats

    # -- one change --------------------------------------------------------------------------------
    from dataclasses import replace

    from sqlassets.graph import AssetGraph

    stg = next(a for a in graph if a.key.startswith("stg_") and a.compiled_sql)
    edited = replace(stg, compiled_sql=stg.compiled_sql.replace("where _loaded_at is not null",
                                                                "where _loaded_at is not null and 1 = 1"))
    graph2 = AssetGraph(edited if a.key == stg.key else a for a in graph)
    t0 = time.perf_counter()
    changed = build_lineage(project, graph2, workers=args.workers)
    t_change = time.perf_counter() - t0
    build_lineage(project, graph, workers=args.workers)  # restore the cache

    # -- one column's full upstream ------------------------------------------------------------
    marts = [k for k in graph.topo_order if k.startswith(("fct_", "dim_"))]
    candidates = [i for k in marts[-60:] for i in cg.asset_columns.get(k, ())]
    sizes = sorted(((len(cg.reach_ids(i, "upstream")), i) for i in candidates), reverse=True)[:20]
    walk_times = []
    for _, nid in sizes:
        t0 = time.perf_counter()
        reached = cg.walk(nid, "upstream")
        walk_times.append(time.perf_counter() - t0)
    biggest = sizes[0]
    col_name = cg.nodes[biggest[1]]
    t_col = statistics.median(walk_times)

    # -- end to end in a new process -----------------------------------------------------------
    e2e = time_cmd("cli", [str(VENV_BIN / "sqlassets"), "--project", str(root), "lineage", col_name, "--upstream",
                           "--format", "json"], repeat=args.repeat, warmup=1)
    e2e_cols = len(json.loads(e2e.outputs[0])["upstream"])

    # -- naive reference -----------------------------------------------------------------------
    rng = random.Random(7)
    sql_keys = [k for k in graph.topo_order if graph[k].compiled_sql and cg.asset_columns.get(k)]
    by_layer: dict[str, list[str]] = {}
    for k in sql_keys:
        by_layer.setdefault(k.split("_")[0], []).append(k)
    sample: list[str] = []
    while len(sample) < min(args.sample, len(sql_keys)):
        for layer in sorted(by_layer):
            pool = [k for k in by_layer[layer] if k not in sample]
            if pool and len(sample) < args.sample:
                sample.append(rng.choice(pool))
    t_naive, naive_cols, naive_failed = _naive_per_column(graph, built, sample)
    per_col_naive = t_naive / naive_cols
    model_cols = sum(len(cg.asset_columns.get(k, ())) for k in sql_keys)
    naive_extrapolated = per_col_naive * model_cols
    cold = statistics.median(colds)
    warm_s = statistics.median(warms)

    print()
    print(f"lineage: {st.sql_assets} models parsed, {n_cols} columns, {cg.edge_count} edges, "
          f"workers={st.workers}")
    rows = [
        ["cold: whole project (parse+qualify+resolve+column graph)", f"{cold:.2f}s", f"< {TARGETS['cold']:.0f}s",
         f"{cold / st.sql_assets * 1000:.2f} ms/model"],
        ["cold, fork pool of 2 workers", f"{cold_pool:.2f}s", "", f"in-process/pool {ratio(cold, cold_pool)}"],
        ["warm: nothing changed (cache hit for every model)", f"{warm_s:.3f}s", f"< {TARGETS['warm']:.0f}s",
         f"cold/warm {ratio(cold, warm_s)}"],
        ["one staging model edited (same columns)", f"{t_change:.3f}s", "",
         f"recomputed {changed.stats.computed} model(s)"],
        [f"one column's full upstream ({len(reached)} columns)", f"{t_col * 1000:.2f} ms",
         f"< {TARGETS['column'] * 1000:.0f} ms", f"max of 20: {max(walk_times) * 1000:.2f} ms"],
        [f"end to end, new process: lineage {col_name} (warm)", f"{e2e.median:.2f}s", "",
         f"{e2e_cols} upstream columns, {e2e.peak_rss_mb:.0f} MB peak"],
        [f"naive sqlglot.lineage per column ({naive_cols} cols, {len(sample)} models)",
         f"{per_col_naive * 1000:.1f} ms/col", "", f"{naive_failed} raised"],
        [f"naive, extrapolated to all {model_cols} model columns", f"{naive_extrapolated:.0f}s", "",
         f"naive/cold {ratio(naive_extrapolated, cold)}"],
        ["ours per column, cold", f"{cold / model_cols * 1000:.3f} ms/col", "",
         f"naive/ours {ratio(per_col_naive, cold / model_cols)}"],
    ]
    print(table(rows, ["measure", "value", "target", "ratio / note"]))
    print(f"\ncolds: {', '.join(f'{c:.2f}' for c in colds)}s; warms: {', '.join(f'{w:.3f}' for w in warms)}s; "
          f"graph load (not included above): {t_load:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
