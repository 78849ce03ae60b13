"""Reliability, end to end with real processes: kill -9 and resume, concurrent backfills, failures.

Each scenario runs the real `python -m sqlassets` in subprocesses against a real DuckDB file and state DB.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import duckdb
from run_support import checksum, fix_bad_data, make_project, popen_cli, run_cli

SEED = 20240101
START, END, DAYS = "2024-01-01", "2024-04-30", 120


def expected_per_day(db: Path) -> dict[str, int]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return {d.isoformat(): n for d, n in con.execute(
            "select cast(event_ts as date), count(distinct customer_id) from raw.events group by 1").fetchall()}
    finally:
        con.close()


def done_partitions(root: Path, asset: str) -> set[str]:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return set()
    con = sqlite3.connect(db)
    try:
        return {r[0] for r in con.execute(
            "select partition from materializations where asset=? and status='done'", (asset,))}
    except sqlite3.OperationalError:  # created, schema not yet written
        return set()
    finally:
        con.close()


def has_backfill(root: Path) -> bool:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return False
    con = sqlite3.connect(db)
    try:
        return con.execute("select count(*) from backfills").fetchone()[0] > 0
    except sqlite3.OperationalError:
        return False
    finally:
        con.close()


def assert_done_means_written(root: Path, expected: dict[str, int]) -> None:
    """Every partition the state calls done is in the table, complete."""
    done = done_partitions(root, "daily")
    if not done:
        return
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        rows = dict(con.execute("select cast(day as varchar), count(*) from daily group by 1").fetchall())
        months = {r[0] for r in con.execute("select strftime(month, '%Y-%m') from monthly").fetchall()} \
            if done_partitions(root, "monthly") else set()
    finally:
        con.close()
    for day in done:
        assert rows.get(day, 0) == expected.get(day, 0), f"{day} recorded done but holds {rows.get(day)} rows"
    assert done_partitions(root, "monthly") <= months


def test_kill_9_at_random_points_then_resume_matches_a_clean_run(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    ref = make_project(tmp_path / "ref", start=START, end=END, days=DAYS, rows_per_day=3000, customers=500,
                       slow=True)
    started = time.monotonic()
    r = run_cli(ref, "backfill", "--partitions", f"{START}..2024-04-29")
    assert r.returncode == 0, r.stderr
    total = time.monotonic() - started
    started = time.monotonic()
    r = run_cli(ref, "backfill", "--partitions", f"{START}..2024-04-29", "--dry-run")
    startup = time.monotonic() - started
    # What a clean run costs here (start-up, then the work per partition) scales the kill delays.
    work = max(0.2, total - startup)
    root = make_project(tmp_path / "p", start=START, end=END, days=DAYS, rows_per_day=3000, customers=500,
                       slow=True)
    expected = expected_per_day(root / "warehouse.duckdb")
    kills = 0
    args = ["backfill", "--partitions", f"{START}..2024-04-29"]
    progress: list[int] = []
    per_unit = work / DAYS
    while kills < 10:
        before = len(done_partitions(root, "daily"))
        proc = popen_cli(root, *args)
        # Random points, paced by the progress this run makes rather than by the clock alone, so a kill
        # lands where it was meant to on an idle laptop and on a loaded CI runner alike: in start-up (a
        # seeded fraction of a clean start-up), or once a seeded number of new partitions is recorded,
        # plus a seeded fraction of one partition's time (mid-statement, between commit and state write).
        ahead = rng.choice((0, 1, 2, 3, 4, 6))
        if ahead == 0:
            time.sleep(rng.uniform(0.3, 1.0) * startup)
        else:
            deadline = time.monotonic() + 120
            while (len(done_partitions(root, "daily")) < before + ahead and proc.poll() is None
                   and time.monotonic() < deadline):
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, per_unit))
        finished = proc.poll() is not None
        if not finished:
            proc.kill()  # SIGKILL
            kills += 1
        out, err = proc.communicate()
        assert_done_means_written(root, expected)
        progress.append(len(done_partitions(root, "daily")))
        if finished:
            assert proc.returncode == 0, err
            break
        if has_backfill(root):
            args = ["backfill", "resume", "1"]
    r = run_cli(root, "backfill", "resume", "1")
    assert r.returncode == 0, r.stderr
    r = run_cli(root, "runs")
    assert "crashed" in r.stdout
    for table in ("daily", "monthly", "summary"):
        assert checksum(root / "warehouse.duckdb", table) == checksum(ref / "warehouse.duckdb", table), table
    assert len(done_partitions(root, "daily")) == DAYS  # 2024-01-01..2024-04-29 (a leap year)
    assert kills >= 10, f"only {kills} kills landed mid-run (progress {progress})"
    advanced = sum(1 for a, b in zip([0, *progress], progress, strict=False) if b > a)
    assert advanced >= 5 and progress[-1] < DAYS, f"too few kills landed mid-backfill (progress {progress})"


def test_two_concurrent_backfills_on_one_asset(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", start=START, end=END, days=DAYS, rows_per_day=3000, customers=500,
                        monthly=False, summary=False, slow=True)
    first = popen_cli(root, "backfill", "--select", "daily", "--partitions", f"{START}..2024-04-29")
    try:
        db = root / ".sqlassets" / "state.db"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if db.exists():
                try:
                    con = sqlite3.connect(db)
                    held = con.execute("select count(*) from leases").fetchone()[0]
                    con.close()
                    if held:
                        break
                except sqlite3.OperationalError:
                    pass
            time.sleep(0.02)
        second = run_cli(root, "backfill", "--select", "daily", "--partitions", f"{START}..2024-04-29")
        assert first.poll() is None, "the first backfill finished before the second started; make it longer"
        assert second.returncode == 2, second.stdout + second.stderr
        assert "error: asset 'daily' is being written by backfill 1" in second.stderr
        assert "--wait" in second.stderr
        waiting = run_cli(root, "backfill", "--select", "daily", "--partitions", f"{START}..2024-04-29", "--wait")
        assert waiting.returncode == 0, waiting.stderr
        assert "waiting" in waiting.stdout and "after waiting: 0 unit(s) still to run" in waiting.stdout
    finally:
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    dup = con.execute("select count(*) from (select day, customer_id from daily group by 1, 2 having count(*) > 1)")
    assert dup.fetchone()[0] == 0
    con.close()


def test_one_failing_partition_then_resume_retries_only_it(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", bad_day=4)
    r = run_cli(root, "backfill", "--partitions", "2024-01-01..2024-01-31")
    assert r.returncode == 1
    assert "failed daily [2024-01-05]" in r.stderr
    assert done_partitions(root, "daily") == {f"2024-01-{d:02d}" for d in range(1, 32)} - {"2024-01-05"}
    fix_bad_data(root)
    r = run_cli(root, "backfill", "resume", "1")
    assert r.returncode == 0, r.stderr
    con = sqlite3.connect(root / ".sqlassets" / "state.db")
    steps = con.execute("select asset, partition from steps where run_id=2 order by id").fetchall()
    assert steps == [("daily", "2024-01-05"), ("monthly", "2024-01"), ("summary", "")]
