"""Helpers for the materialize/backfill tests: a small raw-SQL project on a real DuckDB file.

The project has no dbt (so it loads in milliseconds): `raw.events` is an external table we generate,
`daily` is a daily-partitioned incremental aggregate of it (placeholders :window_start/:window_end),
`monthly` rolls `daily` up per month, and `summary` is an unpartitioned table over `daily`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import duckdb

PYTHON = sys.executable

DAILY = """-- materialized: incremental
-- partitioned: daily
-- partition_column: day
-- partition_start: {start}
-- partition_end: {end}
select cast(event_ts as date) as day, customer_id, sum(cast(amount as decimal(12, 2))) as net, count(*) as n
from raw.events
where event_ts >= :window_start and event_ts < :window_end{slow}
group by 1, 2
"""
# Burns ~30 ms of CPU per partition so a backfill lasts long enough to be killed at random points.
SLOW = "\n  and (select sum(hash(i)) from range(4000000) t(i)) is not null"

MONTHLY = """-- materialized: incremental
-- partitioned: monthly
-- partition_column: month
-- partition_start: {start}
-- partition_end: {end}
select cast(date_trunc('month', day) as date) as month, sum(net) as net, sum(n) as n
from daily
where day >= :window_start and day < :window_end
group by 1
"""

SUMMARY = """-- materialized: table
select customer_id, sum(net) as net, sum(n) as n from daily group by 1
"""


def make_project(root: Path, *, start: str = "2024-01-01", end: str = "2024-02-01", days: int = 31,
                 rows_per_day: int = 200, customers: int = 10, monthly: bool = True, summary: bool = True,
                 bad_day: int | None = None, slow: bool = False) -> Path:
    """Write the project and generate raw.events; `bad_day` puts an uncastable amount on that day."""
    (root / "sql").mkdir(parents=True, exist_ok=True)
    (root / "sqlassets.yml").write_text("warehouse: {type: duckdb, path: warehouse.duckdb}\n")
    (root / "sql" / "daily.sql").write_text(DAILY.format(start=start, end=end, slow=SLOW if slow else ""))
    if monthly:
        (root / "sql" / "monthly.sql").write_text(MONTHLY.format(start=start, end=end))
    if summary:
        (root / "sql" / "summary.sql").write_text(SUMMARY)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.execute(
            f"""CREATE OR REPLACE TABLE raw.events AS
            SELECT TIMESTAMP '{start}' + INTERVAL (i * (86400 // {rows_per_day})) SECOND AS event_ts,
                   i % {customers} AS customer_id,
                   CAST(((i * 37) % 1000) / 10.0 AS VARCHAR) AS amount
            FROM range({days * rows_per_day}) t(i)""")
        if bad_day is not None:
            con.execute(f"UPDATE raw.events SET amount = 'oops' WHERE event_ts >= TIMESTAMP '{start}' + "
                        f"INTERVAL ({bad_day}) DAY AND event_ts < TIMESTAMP '{start}' + INTERVAL ({bad_day + 1}) DAY "
                        "AND customer_id = 3")
    finally:
        con.close()
    return root


def fix_bad_data(root: Path) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute("UPDATE raw.events SET amount = '1.5' WHERE amount = 'oops'")
    finally:
        con.close()


def table_rows(db: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        con.close()


def checksum(db: Path, table: str) -> str:
    """Row-level checksum: every row, order-independent."""
    h = hashlib.sha256()
    for row in table_rows(db, table):
        h.update(repr(row).encode())
    return h.hexdigest()


def run_cli(root: Path, *args: str, timeout: float = 120, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The real `sqlassets` entry point in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([PYTHON, "-m", "sqlassets", "--project", str(root), *args], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def popen_cli(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([PYTHON, "-m", "sqlassets", "--project", str(root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def project_store(root: Path, **kw: object):  # noqa: ANN201 - a StateStore (imported lazily)
    """The project's state store as another process of the same target sees it (scoped to its target)."""
    from sqlassets.project import load_project
    from sqlassets.run.state import StateStore
    from sqlassets.run.state.config import target_key

    return StateStore(root / ".sqlassets", target=target_key(load_project(root)), **kw)
