"""Helpers and fixtures for the checks tests (imported by the test modules): real DuckDB files, real GX, real dbt (sample project), no mocks.

`shop_checks` is a tiny raw-SQL project (no dbt: loads in milliseconds) with a daily-partitioned
`daily` table over `raw.events`, a `summary` downstream of it, and GX suites in checks/. Day 2024-01-03
carries a negative amount so a critical `net >= 0` expectation fails on exactly that partition.
`built_sample` is sample_project/ with a month of generated events, materialized for its first week.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import _RUN_ARTIFACTS, SAMPLE_PROJECT, invoke

DAILY = """-- materialized: incremental
-- partitioned: daily
-- partition_column: day
-- partition_start: 2024-01-01
-- partition_end: 2024-01-06
select cast(event_ts as date) as day, customer_id, sum(amount) as net, count(*) as n
from raw.events
where event_ts >= :window_start and event_ts < :window_end
group by 1, 2
"""

SUMMARY = """-- materialized: table
select customer_id, sum(net) as net, sum(n) as n from daily group by 1
"""


def suite(name: str, *expectations: dict) -> dict:
    return {"name": name, "expectations": list(expectations), "meta": {}}


def exp(etype: str, severity: str = "critical", **kwargs: object) -> dict:
    return {"type": etype, "kwargs": kwargs, "meta": {"severity": severity}}


def write_suite(root: Path, asset: str, doc: dict) -> Path:
    path = root / "checks" / f"{asset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path


def make_shop_checks(root: Path, *, bad_day: str | None = "2024-01-03") -> Path:
    """Write the raw-SQL project and its events: 5 days x 40 events, customers 0..9, amounts 1..40."""
    (root / "sql").mkdir(parents=True, exist_ok=True)
    (root / "sqlassets.yml").write_text("warehouse: {type: duckdb, path: warehouse.duckdb}\n")
    (root / "sql" / "daily.sql").write_text(DAILY)
    (root / "sql" / "summary.sql").write_text(SUMMARY)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute("create schema raw")
        con.execute("""create table raw.events as
            select timestamp '2024-01-01' + interval (i * 3 * 60) minute as event_ts,
                   cast(i % 10 as integer) as customer_id,
                   cast(1 + i % 40 as decimal(10, 2)) as amount
            from range(200) t(i)""")
        if bad_day:
            con.execute(f"update raw.events set amount = -500 where cast(event_ts as date) = date '{bad_day}' "
                        "and customer_id = 7")
    finally:
        con.close()
    return root


@pytest.fixture
def shop_checks(tmp_path: Path) -> Path:
    return make_shop_checks(tmp_path / "shop_checks")


@pytest.fixture(scope="session")
def built_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """sample_project/ copied, a month of events generated, first week materialized (checks run as it builds)."""
    if not (SAMPLE_PROJECT / "dbt_project.yml").exists() or not (SAMPLE_PROJECT / "checks").is_dir():
        pytest.skip("sample_project/ is not there yet")
    root = tmp_path_factory.mktemp("sample_checks") / "sample_project"
    shutil.copytree(SAMPLE_PROJECT, root, ignore=shutil.ignore_patterns(*_RUN_ARTIFACTS, "data"))
    subprocess.run([sys.executable, str(root / "generate_data.py"), "--path", str(root / "data" / "warehouse.duckdb"),
                    "--end", "2024-01-31"], check=True, capture_output=True)
    res = invoke(["--project", str(root), "materialize", "--partitions", "2024-01-01..2024-01-07"])
    assert res.exit_code == 0, res.stdout + res.stderr
    return root
