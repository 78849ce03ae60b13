"""The statement cache: a warm run replays the remembered statements without sqlglot and writes exactly
what the normal path writes; anything that changes what the statements would be takes the normal path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from conftest import write_project
from run_support import checksum, make_project, run_cli
from sqlglot import exp

from sqlassets.run.windows import QUOTE_STYLE, Template, literal_sql

CACHE = Path(".sqlassets") / "statements"
# Runs the CLI in a real process and reports what it used: whether sqlglot was imported, and how many
# units the replayed statements wrote (CachedMaterializer.write, wrapped to count calls through).
WRAPPER = """
import sys, runpy
from sqlassets.run import statement_cache as sc
replayed = []
write = sc.CachedMaterializer.write
def counting(self, session, keys):
    if self._delegate is None:
        replayed.append(keys)
    return write(self, session, keys)
sc.CachedMaterializer.write = counting
sys.argv = ['sqlassets'] + sys.argv[1:]
try:
    runpy.run_module('sqlassets', run_name='__main__')
finally:
    print('SQLGLOT_IMPORTED' if 'sqlglot' in sys.modules else 'NO_SQLGLOT', 'REPLAYED', len(replayed))
"""


def _run(root: Path, *args: str) -> str:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", WRAPPER, "--project", str(root), *args], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout.splitlines()[-1]


def _drop(root: Path, table: str) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute(f"drop table if exists main.{table}")
    con.close()
    for f in (root / ".sqlassets").glob("state.db*"):
        f.unlink()


def test_warm_run_replays_without_sqlglot_and_writes_the_same_rows(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    assert _run(root, "materialize", "--partitions", "2024-01-01..2024-01-10").endswith("REPLAYED 0")
    entries = list((root / CACHE).glob("*.json"))
    assert len(entries) == 1 and oct(entries[0].stat().st_mode & 0o777) == "0o600"
    cold = checksum(root / "warehouse.duckdb", "daily")
    # Table exists: more partitions through the remembered DELETE+INSERT.
    assert _run(root, "materialize", "--partitions", "2024-01-11..2024-01-31").endswith("REPLAYED 21")
    # Table missing: created from the remembered CTAS, then the remembered inserts.
    _drop(root, "daily")
    assert _run(root, "materialize", "--partitions", "2024-01-01..2024-01-10").endswith("REPLAYED 10")
    assert checksum(root / "warehouse.duckdb", "daily") == cold
    reference = make_project(tmp_path / "ref", monthly=False, summary=False)
    shutil.rmtree(reference / ".sqlassets", ignore_errors=True)
    assert run_cli(reference, "materialize", "--partitions", "2024-01-01..2024-01-31").returncode == 0
    assert _run(root, "materialize", "--partitions", "2024-01-11..2024-01-31").endswith("REPLAYED 21")
    assert checksum(root / "warehouse.duckdb", "daily") == checksum(reference / "warehouse.duckdb", "daily")


def test_changed_sql_or_drifted_table_takes_the_normal_path(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    assert run_cli(root, "materialize", "--partitions", "2024-01-01..2024-01-05").returncode == 0
    # The table changed under us (a column added by hand): the entry no longer fits; drift is handled.
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("alter table main.daily add column note varchar")
    con.close()
    assert _run(root, "materialize", "--partitions", "2024-01-06..2024-01-07").endswith("REPLAYED 0")
    # ... and was rebuilt for the table as it is now: the next run replays again.
    assert _run(root, "materialize", "--partitions", "2024-01-08..2024-01-08").endswith("REPLAYED 1")
    # New SQL (a new output column): a new entry, built the normal way, the column added by drift.
    sql = root / "sql" / "daily.sql"
    sql.write_text(sql.read_text().replace("count(*) as n", "count(*) as n, max(amount) as top"))
    assert _run(root, "materialize", "--partitions", "2024-01-09..2024-01-10").endswith("REPLAYED 0")
    assert len(list((root / CACHE).glob("*.json"))) == 2  # the drifted entry was rebuilt in place
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    cols = [r[0] for r in con.execute("describe main.daily").fetchall()]
    top = con.execute("select count(top) from main.daily where day = date '2024-01-09'").fetchone()[0]
    con.close()
    assert cols == ["day", "customer_id", "net", "n", "note", "top"] and top > 0


def test_full_refresh_never_replays(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    assert run_cli(root, "materialize", "--partitions", "2024-01-01..2024-01-03").returncode == 0
    assert _run(root, "materialize", "--full-refresh").endswith("REPLAYED 0")


def test_a_corrupt_entry_is_ignored(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    assert run_cli(root, "materialize", "--partitions", "2024-01-01..2024-01-03").returncode == 0
    for f in (root / CACHE).glob("*.json"):
        f.write_text("{not json")
    assert _run(root, "materialize", "--partitions", "2024-01-04..2024-01-05").endswith("REPLAYED 0")
    assert all(json.loads(f.read_text())["strategy"] == "partition_replace" for f in (root / CACHE).glob("*.json"))


DBT_FILES = {
    "dbt_project.yml": "name: mb\nversion: '1.0'\nprofile: mb\n",
    "profiles.yml": "mb:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
                          "      - name: events\n        config:\n          event_time: event_ts\n",
    "models/daily.sql": "{{ config(materialized='incremental', incremental_strategy='microbatch', "
                        "event_time='day', batch_size='day', begin='2024-01-01') }}\n"
                        "select cast(event_ts as date) as day, count(*) as n from {{ source('raw', 'events') }} "
                        "group by 1\n",
}


def test_dbt_microbatch_warm_run_never_imports_sqlglot(tmp_path: Path) -> None:
    root = write_project(tmp_path / "mb", DBT_FILES, "create schema raw; create table raw.events as select "
                         "timestamp '2024-01-01' + to_minutes(i * 7) as event_ts from range(3000) t(i)")
    assert _run(root, "materialize", "--partitions", "2024-01-01..2024-01-05").endswith("REPLAYED 0")
    first = checksum(root / "wh.duckdb", "daily")
    assert _run(root, "materialize", "--all", "--partitions", "2024-01-01..2024-01-05") == "NO_SQLGLOT REPLAYED 5"
    assert checksum(root / "wh.duckdb", "daily") == first


@pytest.mark.parametrize("dialect", sorted(QUOTE_STYLE))
def test_literal_quoting_table_matches_sqlglot(dialect: str) -> None:
    for value in ["plain", "it's", "back\\slash", "\\'", "2024-01-01 00:00:00", "x' or 1=1 --", "ünï ✓", ""]:
        assert literal_sql(value, dialect) == exp.Literal.string(value).sql(dialect)


def test_template_state_round_trip_renders_the_same() -> None:
    from sqlassets.run.partitions import make_time_def

    pdef = make_time_def("daily", "2024-01-01")
    sql = ("SELECT 'it''s __sqlassets_window_start__' AS s FROM t WHERE d >= CAST('__sqlassets_window_start__' AS "
           "TIMESTAMP) AND d < CAST('__sqlassets_window_end__' AS TIMESTAMP)")
    tpl = Template(sql, "duckdb")
    again = Template.restore(json.loads(json.dumps(tpl.state())))
    assert again.render(pdef, ["2024-01-02"]) == tpl.render(pdef, ["2024-01-02"])
    assert "'it''s __sqlassets_window_start__'" in again.render(pdef, ["2024-01-02"])
