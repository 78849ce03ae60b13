"""partition_timezone on TIMESTAMPTZ columns: a partition's window is two instants in its timezone.

A daily America/New_York partition of a TIMESTAMP WITH TIME ZONE column holds New York's day: 05:00Z to
05:00Z in winter, 04:00Z to 04:00Z in summer, 23 hours on the spring-forward day and 25 on the fall-back
day. Real DuckDB file, real `sqlassets materialize` in-process; hourly events so a day's row count is
its length in hours.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
from conftest import invoke

ASSET = """-- materialized: incremental
-- partitioned: daily
-- partition_column: ts
-- partition_start: 2024-03-08
-- partition_end: 2024-11-05
-- partition_timezone: {tz}
select ts, v from raw.events where ts >= :window_start and ts < :window_end
"""


def _project(root: Path, tz: str) -> Path:
    (root / "sql").mkdir(parents=True)
    (root / "sqlassets.yml").write_text("warehouse: {type: duckdb, path: w.duckdb}\n")
    (root / "sql" / "hourly.sql").write_text(ASSET.format(tz=tz))
    con = duckdb.connect(str(root / "w.duckdb"))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE SCHEMA raw")
        # One event per hour (UTC), 2024-03-01 .. 2024-11-10.
        con.execute("CREATE TABLE raw.events AS SELECT TIMESTAMPTZ '2024-03-01 00:00:00+00' + "
                    "INTERVAL (i) HOUR AS ts, i AS v FROM range(24 * 254) t(i)")
    finally:
        con.close()
    return root


def _materialize(root: Path, partitions: str) -> None:
    r = invoke(["--project", str(root), "materialize", "--partitions", partitions])
    assert r.exit_code == 0, r.stdout + r.stderr


def _bounds(root: Path) -> tuple[int, datetime, datetime]:
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        con.execute("SET TimeZone = 'UTC'")
        n, lo, hi = con.execute("select count(*), min(ts), max(ts) from hourly").fetchone()
    finally:
        con.close()
    return n, lo.astimezone(UTC), hi.astimezone(UTC)


def test_new_york_day_is_new_york_instants(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "America/New_York")
    _materialize(root, "2024-03-08")
    n, lo, hi = _bounds(root)
    assert (n, lo, hi) == (24, datetime(2024, 3, 8, 5, tzinfo=UTC), datetime(2024, 3, 9, 4, tzinfo=UTC))


def test_dst_days_are_23_and_25_hours(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "America/New_York")
    _materialize(root, "2024-03-10")  # spring forward: 05:00Z .. 04:00Z next day
    n, lo, hi = _bounds(root)
    assert (n, lo, hi) == (23, datetime(2024, 3, 10, 5, tzinfo=UTC), datetime(2024, 3, 11, 3, tzinfo=UTC))
    root = _project(tmp_path / "q", "America/New_York")
    _materialize(root, "2024-11-03")  # fall back: 04:00Z .. 05:00Z next day
    n, lo, hi = _bounds(root)
    assert (n, lo, hi) == (25, datetime(2024, 11, 3, 4, tzinfo=UTC), datetime(2024, 11, 4, 4, tzinfo=UTC))


def test_utc_partitions_do_not_follow_the_machine_timezone(tmp_path: Path, monkeypatch) -> None:
    """DuckDB's default session timezone is the machine's; a UTC partition must still be UTC's day."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    root = _project(tmp_path / "p", "UTC")
    _materialize(root, "2024-03-08..2024-03-09")
    n, lo, hi = _bounds(root)
    assert (n, lo, hi) == (48, datetime(2024, 3, 8, 0, tzinfo=UTC), datetime(2024, 3, 9, 23, tzinfo=UTC))


def test_other_assets_keep_the_session_timezone(tmp_path: Path) -> None:
    """The window's timezone is set per unit, not left behind for the next (unpartitioned) asset."""
    root = _project(tmp_path / "p", "America/New_York")
    (root / "sql" / "zone.sql").write_text("-- materialized: table\nselect current_setting('TimeZone') as tz\n")
    con = duckdb.connect(":memory:")
    default_tz = con.execute("select current_setting('TimeZone')").fetchone()[0]
    con.close()
    _materialize(root, "2024-03-08")
    r = invoke(["--project", str(root), "materialize", "-s", "zone"])
    assert r.exit_code == 0, r.stderr
    con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
    try:
        assert con.execute("select tz from zone").fetchone()[0] == default_tz
    finally:
        con.close()
