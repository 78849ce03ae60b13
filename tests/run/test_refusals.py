"""A refused run writes nothing, and the smaller data-safety fixes of issue 8 (item 10).

Real DuckDB files and real state databases. The "other run" holding a lease is this test process: it
starts a run and takes the lease through the real StateStore, so the holder is alive for as long as
the test wants, without timing a second subprocess.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
from conftest import invoke
from run_support import make_project, project_store

from sqlassets.run.state import StateStore


def _rows(db: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _cli(root: Path, *args: str):
    return invoke(["--project", str(root), *args])


def _hold(root: Path, asset: str, backfill_id: int | None = None) -> tuple[StateStore, int]:
    state = project_store(root)
    run_id = state.start_run("backfill" if backfill_id else "materialize", command="held by the test",
                             options={}, backfill_id=backfill_id)
    state.acquire_leases([asset], run_id, backfill_id=backfill_id)
    return state, run_id


def test_backfill_refused_by_a_lease_is_not_recorded(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    state, run_id = _hold(root, "daily")
    try:
        db = root / ".sqlassets" / "state.db"
        runs_before = _rows(db, "select * from runs")
        r = _cli(root, "backfill", "--partitions", "2024-01-01..2024-01-05")
        assert r.exit_code == 2, r.stdout + r.stderr
        assert "being written by run" in r.stderr
        assert _rows(db, "select * from backfills") == []
        assert _rows(db, "select * from runs") == runs_before
        assert _rows(db, "select count(*) from logs")[0][0] == 0
        assert _rows(db, "select run_id from leases") == [(run_id,)]
    finally:
        state.close()


def test_refused_resume_leaves_the_running_backfill_alone(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    state = project_store(root)
    bf = state.create_backfill("daily", {"daily": ["2024-01-01", "2024-01-02"]}, {})
    state.close()
    state, run_id = _hold(root, "daily", backfill_id=bf)
    try:
        db = root / ".sqlassets" / "state.db"
        before = _rows(db, "select status, last_run_id, updated_at from backfills")
        runs_before = _rows(db, "select * from runs")
        r = _cli(root, "backfill", "resume", str(bf))
        assert r.exit_code == 2, r.stdout + r.stderr
        assert f"backfill {bf} is still running" in r.stderr
        assert _rows(db, "select status, last_run_id, updated_at from backfills") == before
        assert _rows(db, "select * from runs") == runs_before
    finally:
        state.close()


def test_refused_materialize_is_not_recorded(tmp_path: Path) -> None:
    """A lease held on one asset of the selection: no run row, no log, the other assets untouched."""
    root = make_project(tmp_path / "p")
    state, run_id = _hold(root, "monthly")
    try:
        r = _cli(root, "materialize", "--partitions", "2024-01-01..2024-01-03")
        assert r.exit_code == 2, r.stdout + r.stderr
        db = root / ".sqlassets" / "state.db"
        assert [r[0] for r in _rows(db, "select id from runs")] == [run_id]
        assert _rows(db, "select count(*) from steps")[0][0] == 0
    finally:
        state.close()


def test_time_range_skips_static_partitioned_assets(tmp_path: Path) -> None:
    """`--partitions 2024-01-01..` applies to the time-partitioned assets; static ones sit it out."""
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    (root / "sql" / "regions.sql").write_text(
        "-- materialized: incremental\n-- partitioned: static\n-- partition_column: region\n"
        "-- partition_values: eu, us\nselect region, 1 as n from (select :partition_key) t(region)\n")
    r = _cli(root, "materialize", "--partitions", "2024-01-30..2024-01-31")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "regions" in r.stdout and "does not name its partitions" in r.stdout
    r = _cli(root, "materialize", "--partitions", "eu")
    assert r.exit_code == 0, r.stdout + r.stderr
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select region from regions").fetchall() == [("eu",)]
        assert con.execute("select count(distinct day) from daily").fetchone()[0] == 2  # 01-30, 01-31
    finally:
        con.close()
    r = _cli(root, "materialize", "-s", "regions", "--partitions", "2024-01-01..2024-01-02")
    assert r.exit_code == 2 and "regions" in r.stderr  # nothing else to apply it to: still an error


def test_literal_containing_the_window_sentinel_is_kept(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    (root / "sql" / "noted.sql").write_text(
        "-- materialized: incremental\n-- partitioned: daily\n-- partition_column: day\n"
        "-- partition_start: 2024-01-01\n"
        "select day, '''__sqlassets_window_start__''' as note, 'x __sqlassets_window_end__' as note2\n"
        "from daily where day >= :window_start and day < :window_end\n")
    r = _cli(root, "materialize", "--partitions", "2024-01-02")
    assert r.exit_code == 0, r.stdout + r.stderr
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        assert set(con.execute("select note, note2 from noted").fetchall()) == {
            ("'__sqlassets_window_start__'", "x __sqlassets_window_end__")}
    finally:
        con.close()


def test_missing_unique_key_column_creates_no_table(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    (root / "sql" / "keyed.sql").write_text(
        "-- materialized: incremental\n-- unique_key: idd\nselect 1 as id, 2 as v\n")
    for _ in range(2):  # the same clear error every time, not a different one about a leftover table
        r = _cli(root, "materialize", "-s", "keyed")
        assert r.exit_code == 1
        assert "unique_key column(s) idd are not in its SELECT" in r.stderr
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from information_schema.tables where table_name='keyed'"
                           ).fetchone()[0] == 0
    finally:
        con.close()


def test_state_dir_inside_sql_paths_is_not_scanned(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    (root / "sqlassets.yml").write_text("warehouse: {type: duckdb, path: warehouse.duckdb}\n"
                                        "sql_paths: [sql]\nstate_dir: sql/.state\n")
    cache = root / "sql" / ".state" / "compile"
    cache.mkdir(parents=True)
    (cache / "daily.sql").write_text("select 1 as x\n")  # what a compile cache holds
    r = _cli(root, "list")
    assert r.exit_code == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["raw.events", "daily"] or \
        sorted(line.split()[0] for line in r.stdout.splitlines()[1:]) == ["daily", "raw.events"]


def test_corrupt_duckdb_file_is_one_line(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    assert _cli(root, "materialize", "--partitions", "2024-01-01").exit_code == 0
    db = root / "warehouse.duckdb"
    data = bytearray(db.read_bytes())
    for i in range(0, len(data), 997):  # flip bytes everywhere: checksums fail on open
        data[i] ^= 0x5A
    db.write_bytes(bytes(data))
    r = _cli(root, "materialize", "--partitions", "2024-01-02")
    assert r.exit_code == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open DuckDB warehouse"), r.stderr
    assert "warehouse.duckdb" in lines[0] and "backup" in lines[0]
