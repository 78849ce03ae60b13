"""Round trips on a cloud warehouse: a 366-day microbatch backfill, sqlassets vs dbt-snowflake.

Both tools run the same dbt-snowflake project (a daily `microbatch` model over a raw source) against
a real `fakesnow -s` server behind a proxy that adds a fixed latency to every HTTP request (150 ms by
default, a cloud round trip) and counts the query requests each tool sends. Printed per tool: query
requests in total and per partition, statements per partition (dbt: counted from its debug log, the
statements it logs per batch) and wall time. Three runs:

- sqlassets, units sent as Snowflake Scripting blocks (what it does on a real account: one request
  per partition). fakesnow cannot parse scripting, so the proxy runs the block's statements on the
  server side, behind the one client round trip, as Snowflake does;
- sqlassets on plain fakesnow (no scripting): BEGIN / DELETE / INSERT / COMMIT, four requests;
- dbt-snowflake 1.11 `dbt run --event-time-start/--event-time-end` (its microbatch path). fakesnow
  rejects temporary views in a database, so the proxy sends dbt's `create or replace temporary view`
  as a plain view: the same requests, just runnable.

Figures are printed, never asserted.

    python bench/bench_warehouse.py [--days 366] [--latency 0.15] [--threads 4] [--no-dbt]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests" / "adapters"))

from snowflake_support import (  # noqa: E402
    _BLOCK,
    PYTHON,
    SnowflakeProxy,
    have_fakesnow,
    load_events,
    make_project,
    profile,
    start_fakesnow,
)

WORK = BENCH / "_work" / "warehouse"
PROBE = "EXECUTE IMMEDIATE $$ BEGIN RETURN 1; END; $$"


def run(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return wall, r.stdout


def sqlassets_run(name: str, upstream: int, days: int, latency: float, threads: int, scripting: bool
                  ) -> dict[str, float]:
    db = f"BENCH_{name.upper()}"
    root = make_project(WORK / name, upstream, db, threads=threads)
    load_events(upstream, db, days=days)
    proxy = SnowflakeProxy(upstream, latency=latency, scripting=scripting,
                           rewrite={PROBE: "SELECT 1"} if scripting else None)
    try:
        (root / "profiles.yml").write_text(profile(proxy.port, db, threads=threads))
        end = _day(days)
        # Compile once (cached in the state dir), as a deployed project would have: the timed run
        # then pays what every backfill pays, start-up included.
        run([PYTHON, "-m", "sqlassets", "--project", str(root), "backfill", "--select", "events_daily",
             "--partitions", f"2024-01-01..{end}", "--dry-run"], ROOT)
        proxy.reset()
        wall, _out = run([PYTHON, "-m", "sqlassets", "--project", str(root), "backfill", "--select",
                          "events_daily", "--partitions", f"2024-01-01..{end}", "-j", str(threads)], ROOT)
        return {"queries": proxy.queries, "wall": wall, "requests": proxy.requests,
                "statements": _statements(proxy.texts), "steady_queries": _steady(proxy.texts)}
    finally:
        proxy.close()


def _statements(texts: list[str]) -> int:
    """Statements carried: a scripting block counts its DML statements, anything else one."""
    n = 0
    for t in texts:
        m = _BLOCK.match(t)
        n += len([x for x in m.group(1).split(";\n") if x.strip()]) if m else 1
    return n


def _steady(texts: list[str]) -> int:
    """Requests after the first partition's (setup, then CREATE TABLE AS for the first day)."""
    first = next((i for i, t in enumerate(texts) if t.lstrip().upper().startswith("CREATE TABLE")), -1)
    later = texts[first + 1:]
    return len([t for t in later if not t.lstrip().upper().startswith("SELECT COLUMN_NAME")])


def dbt_run(upstream: int, days: int, latency: float, threads: int) -> dict[str, float]:
    db = "BENCH_DBT"
    root = make_project(WORK / "dbt", upstream, db, threads=threads)
    load_events(upstream, db, days=days)
    proxy = SnowflakeProxy(upstream, latency=latency,
                           rewrite={"create or replace  temporary view": "create or replace view",
                                    "create or replace temporary view": "create or replace view"})
    try:
        (root / "profiles.yml").write_text(profile(proxy.port, db, threads=threads))
        dbt = str(Path(sys.executable).parent / "dbt")
        logs = root / "logs"
        common = ["--profiles-dir", str(root), "--project-dir", str(root), "--log-path", str(logs),
                  "--log-level-file", "debug", "--no-send-anonymous-usage-stats", "--no-version-check"]
        run([dbt, "parse", *common], root)  # parse once, like the compile sqlassets caches
        proxy.reset()
        if logs.exists():
            shutil.rmtree(logs)
        wall, _ = run([dbt, "run", *common, "--select", "events_daily", "--event-time-start", "2024-01-01",
                       "--event-time-end", _day(days + 1)], root)
        log = (logs / "dbt.log").read_text(encoding="utf-8", errors="replace")
        logged = len(re.findall(r"\]: On model\.sfshop\.events_daily: (?!Close)", log))
        return {"queries": proxy.queries, "wall": wall, "requests": proxy.requests, "statements": logged}
    finally:
        proxy.close()


def _day(n: int) -> str:
    import datetime as dt

    return (dt.date(2024, 1, 1) + dt.timedelta(days=n - 1)).isoformat()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=366)
    ap.add_argument("--latency", type=float, default=0.15)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--no-dbt", action="store_true")
    a = ap.parse_args()
    if not have_fakesnow():
        print("skipped: fakesnow[server] is not installed (pip install -e '.[dev]')")
        return 0
    if WORK.exists():
        shutil.rmtree(WORK)
    WORK.mkdir(parents=True)
    server, port = start_fakesnow(WORK / "fakesnow.log")
    try:
        print(f"{a.days} daily partitions, {a.latency * 1000:.0f} ms per request, threads {a.threads}, "
              "fakesnow 0.12.1 server")
        results = {"sqlassets (scripting)": sqlassets_run("block", port, a.days, a.latency, a.threads, True),
                   "sqlassets (no scripting)": sqlassets_run("stmt", port, a.days, a.latency, a.threads, False)}
        if not a.no_dbt:
            results["dbt-snowflake microbatch"] = dbt_run(port, a.days, a.latency, a.threads)
        print(f"{'':28} {'queries':>8} {'per partition':>14} {'statements/p':>13} {'wall s':>8}")
        for name, r in results.items():
            print(f"{name:28} {r['queries']:8.0f} {r['queries'] / a.days:14.2f} "
                  f"{r['statements'] / a.days:13.2f} {r['wall']:8.1f}")
        block = results["sqlassets (scripting)"]
        plain = results["sqlassets (no scripting)"]
        print(f"steady state (after the first partition, which creates the table): sqlassets "
              f"{block['steady_queries'] / max(1, a.days - 1):.2f} request(s) per partition with scripting, "
              f"{plain['steady_queries'] / max(1, a.days - 1):.2f} without")
        if "dbt-snowflake microbatch" in results:
            d = results["dbt-snowflake microbatch"]
            print(f"dbt-snowflake / sqlassets: {d['queries'] / block['queries']:.1f}x the requests and "
                  f"{d['wall'] / block['wall']:.1f}x the wall time (with scripting); "
                  f"{d['queries'] / plain['queries']:.1f}x / {d['wall'] / plain['wall']:.1f}x without")
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
