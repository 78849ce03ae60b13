"""Backfill speed: 366 daily partitions over 3.66M synthetic events into a per-day per-customer aggregate.

The aggregate is a dbt microbatch model (`event_time`, `batch_size: day`, `begin`). In one run we time,
each as a whole process (interpreter start, imports, graph load, planning, state writes, the work):

  A  `sqlassets materialize` of all 366 partitions, one statement each     vs  B  a plain Python loop issuing
     the same DELETE+INSERT per day through one duckdb connection             (target A/B <= 1.2)
  C  `sqlassets materialize --batch-size 31` and `--batch-size 366`      vs  D  one set-based INSERT for the
                                                                                year (target C/D <= 1.5)
  E  dbt's own microbatch `dbt run --event-time-start/--event-time-end` on the same model (side by side)
  F  a re-run of A with nothing missing (target: well under a second)

The compiled-SQL cache, the statement cache (`sqlassets.run.statement_cache`: a warm run replays the
asset's remembered statements without importing sqlglot) and the dbt manifest are warmed first, as a
user's second run and every run after finds them.
A-D and F run round-robin (one of each per round, `--repeat` rounds) and each prints its median, so a
burst of load on a shared machine cannot land on one side of a ratio only.
Usage: python bench/bench_backfill.py [--events 3660000] [--repeat 3] [--skip-dbt]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import textwrap
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CHILD_ENV, VENV_BIN, WORK, run_once  # noqa: E402

PROJECT = WORK / "backfill_project"
DB = PROJECT / "wh.duckdb"
MODEL = "daily_customer_amounts"
YEAR = ("2024-01-01", "2025-01-01")
DAYS = 366
CUSTOMERS = 5000

FILES = {
    "dbt_project.yml": "name: bench\nversion: '1.0'\nprofile: bench\nmodels:\n  bench:\n    +materialized: view\n",
    "profiles.yml": "bench:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n"
                    "      threads: 1\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
                          "      - name: events\n        config:\n          event_time: event_ts\n",
    f"models/{MODEL}.sql": textwrap.dedent("""\
        {{ config(materialized='incremental', incremental_strategy='microbatch', event_time='day',
                  batch_size='day', begin='2024-01-01') }}
        select cast(event_ts as date) as day, customer_id,
               sum(case when kind = 'refund' then -amount else amount end) as net_amount, count(*) as events
        from {{ source('raw', 'events') }}
        group by 1, 2
        """),
}

LOOP = textwrap.dedent("""\
    import datetime as dt, duckdb, sys
    con = duckdb.connect(sys.argv[1])
    agg = ("select cast(event_ts as date) as day, customer_id, sum(case when kind = 'refund' then -amount "
           "else amount end) as net_amount, count(*) as events from raw.events "
           "where event_ts >= ? and event_ts < ? group by 1, 2")
    day = dt.datetime(2024, 1, 1)
    first = True
    for _ in range(366):
        nxt = day + dt.timedelta(days=1)
        if first:
            con.execute("create table main.{model} as " + agg, [day, nxt])
            first = False
        else:
            con.execute("begin transaction")
            con.execute("delete from main.{model} where day >= ? and day < ?", [day, nxt])
            con.execute("insert into main.{model} " + agg, [day, nxt])
            con.execute("commit")
        day = nxt
    con.close()
    """).replace("{model}", MODEL)

SET_BASED = textwrap.dedent("""\
    import duckdb, sys
    con = duckdb.connect(sys.argv[1])
    con.execute("create table main.{model} as select cast(event_ts as date) as day, customer_id, "
                "sum(case when kind = 'refund' then -amount else amount end) as net_amount, count(*) as events "
                "from raw.events where event_ts >= timestamp '2024-01-01' and event_ts < timestamp '2025-01-01' "
                "group by 1, 2")
    con.close()
    """).replace("{model}", MODEL)


def setup(events: int) -> None:
    if PROJECT.exists():
        shutil.rmtree(PROJECT)
    for rel, text in FILES.items():
        (PROJECT / rel).parent.mkdir(parents=True, exist_ok=True)
        (PROJECT / rel).write_text(text)
    (PROJECT / "loop.py").write_text(LOOP)
    (PROJECT / "set_based.py").write_text(SET_BASED)
    con = duckdb.connect(str(DB))
    step = 366 * 86400 / events
    con.execute("create schema raw")
    con.execute(f"""create table raw.events as
        select (i * 7919) % {CUSTOMERS} as customer_id,
               cast(((i * 31) % 20000) / 100.0 as decimal(10, 2)) as amount,
               timestamp '2024-01-01' + to_microseconds(cast(i * {step} * 1000000 as bigint)) as event_ts,
               case when i % 10 = 0 then 'refund' else 'purchase' end as kind
        from range({events}) t(i) order by event_ts""")
    con.close()


def reset(state: bool = True) -> None:
    con = duckdb.connect(str(DB))
    con.execute(f"drop table if exists main.{MODEL}")
    con.execute("checkpoint")
    con.close()
    if state:
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            (PROJECT / ".sqlassets" / name).unlink(missing_ok=True)


def digest() -> tuple:
    con = duckdb.connect(str(DB), read_only=True)
    try:
        return con.execute(f"select count(*), sum(net_amount), sum(events), count(distinct day) from {MODEL}").fetchone()
    finally:
        con.close()


def sqlassets(*args: str) -> list[str]:
    return [str(VENV_BIN / "python"), "-m", "sqlassets", "--project", str(PROJECT), *args]




def interleaved(cases: list[tuple[str, list[str], object]], repeat: int) -> dict[str, tuple[float, tuple]]:
    """Run every case once per round, round after round, so background load hits them all alike.

    Each case is (label, command, before) where `before` resets what the case needs (or None). Returns
    label -> (median wall seconds, the table digest after the case's last run).
    """
    walls: dict[str, list[float]] = {label: [] for label, _, _ in cases}
    digests: dict[str, tuple] = {}
    for _ in range(repeat):
        for label, cmd, before in cases:
            if before:
                before()
            wall, _, _ = run_once(cmd, cwd=PROJECT, env=CHILD_ENV)
            walls[label].append(wall)
            digests[label] = digest()
    out = {}
    for label, _, _ in cases:
        runs = sorted(walls[label])
        median = statistics.median(runs)
        print(f"  {label:<58} {median:7.2f} s   (runs: {', '.join(f'{r:.2f}' for r in runs)})", flush=True)
        out[label] = (median, digests[label])
    return out


def timed(label: str, cmd: list[str], repeat: int, before=None) -> tuple[float, tuple]:
    return interleaved([(label, cmd, before)], repeat)[label]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=3_660_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-dbt", action="store_true")
    args = ap.parse_args()
    print(f"setting up {args.events:,} events over 2024 in {PROJECT} ...", flush=True)
    setup(args.events)
    year = f"{YEAR[0]}..2024-12-31"
    # Warm-up: dbt parse (manifest) and the compiled-SQL cache, as any second run finds them.
    run_once(sqlassets("materialize", "--select", MODEL, "--partition", "2024-01-01"), cwd=PROJECT, env=CHILD_ENV)
    reset()
    py = str(VENV_BIN / "python")
    print(f"\n366 daily partitions of {MODEL} (whole processes, median of {args.repeat}; the cases run "
          "round-robin, one of each per round, so machine load hits them alike):")
    a_cmd = sqlassets("materialize", "--select", MODEL, "--partitions", year)
    labels = {
        "A": "A  sqlassets materialize (one statement per partition)",
        "F": "F  sqlassets materialize again (nothing missing)",
        "B": "B  Python loop: DELETE+INSERT per day, one duckdb connection",
        "C": "C  sqlassets materialize --batch-size 31",
        "C'": "C' sqlassets materialize --batch-size 366",
        "D": "D  one set-based INSERT for the year",
    }
    res = interleaved([
        (labels["A"], a_cmd, reset),
        (labels["F"], a_cmd, None),  # right after A: everything is done
        (labels["B"], [py, str(PROJECT / "loop.py"), str(DB)], lambda: reset(False)),
        (labels["C"], sqlassets("materialize", "--select", MODEL, "--partitions", year, "--batch-size", "31"), reset),
        (labels["C'"], sqlassets("materialize", "--select", MODEL, "--partitions", year, "--batch-size", "366"),
         reset),
        (labels["D"], [py, str(PROJECT / "set_based.py"), str(DB)], lambda: reset(False)),
    ], args.repeat)
    a, da = res[labels["A"]]
    f, _ = res[labels["F"]]
    b, db_ = res[labels["B"]]
    c31, d31 = res[labels["C"]]
    c366, d366 = res[labels["C'"]]
    d, dd = res[labels["D"]]
    e = None
    if not args.skip_dbt:
        e, de = timed("E  dbt run (microbatch, --event-time-start/--event-time-end)",
                      [str(VENV_BIN / "dbt"), "run", "--select", MODEL, "--project-dir", str(PROJECT),
                       "--profiles-dir", str(PROJECT), "--event-time-start", YEAR[0], "--event-time-end", YEAR[1],
                       "--quiet"], 1, lambda: reset(False))
        if de[:3] != dd[:3]:
            print(f"  warning: dbt result {de} differs from the set-based result {dd}")
    same = {da[:3], db_[:3], d31[:3], d366[:3], dd[:3]}
    print(f"\nresult: {dd[0]:,} rows over {dd[3]} days; every method wrote the same rows: {len(same) == 1}")
    print("\nratios (lower is better):")
    print(f"  A / B   sqlassets per-partition vs raw loop      {a / b:5.2f}x   (target <= 1.2)")
    print(f"  C / D   sqlassets --batch-size 31 vs one INSERT   {c31 / d:5.2f}x   (target <= 1.5)")
    print(f"  C'/ D   sqlassets --batch-size 366 vs one INSERT  {c366 / d:5.2f}x   (target <= 1.5)")
    if e is not None:
        print(f"  E / A   dbt microbatch vs sqlassets               {e / a:5.2f}x   (sqlassets is {e / a:.1f}x faster)")
    print(f"  F       no-op re-run                              {f:5.2f} s  (target: well under 1 s)")
    return 0 if len(same) == 1 else 1


if __name__ == "__main__":
    sys.exit(main())
