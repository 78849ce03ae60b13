"""The SQLite state store: runs, steps, materializations, backfills, leases, check results."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from sqlassets.check_results import CheckResult
from sqlassets.run.state import LeaseConflict, StateStore, UnitRecord


def rec(asset: str, key: str, status: str = "done", **kw) -> UnitRecord:
    t = time.time()
    return UnitRecord(asset, key, status, t, t + 0.01, **kw)


def test_wal_and_units_round_trip(tmp_path: Path) -> None:
    st = StateStore(tmp_path)
    assert st._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    run = st.start_run("materialize", command="x", options={})
    st.record_units(run, [rec("a", "2024-01-01", rows=5, code_version="v1"),
                          rec("a", "2024-01-02", "failed", error="boom")])
    mats = st.materializations("a")
    assert mats["2024-01-01"].done and mats["2024-01-01"].rows == 5 and mats["2024-01-01"].code_version == "v1"
    assert mats["2024-01-02"].status == "failed" and mats["2024-01-02"].materialized_at is None
    # a later failure keeps the last successful write's time (the data is still there)
    st.record_units(run, [rec("a", "2024-01-01", "failed", error="again")])
    m = st.materializations("a")["2024-01-01"]
    assert m.status == "failed" and m.materialized_at is not None
    st.finish_run(run, "failed", planned=2, done=1, failed=1, skipped=0)
    assert st.run(run)["status"] == "failed"
    assert [s["status"] for s in st.steps(run)] == ["done", "failed", "failed"]
    st.close()


def test_backfill_progress_is_computed_from_materializations(tmp_path: Path) -> None:
    with StateStore(tmp_path) as st:
        bf = st.create_backfill("daily", {"daily": ["2024-01-01", "2024-01-02", "2024-01-03"]}, {"concurrency": 2})
        run = st.start_run("backfill", command="x", options={}, backfill_id=bf)
        st.record_units(run, [rec("daily", "2024-01-01"), rec("daily", "2024-01-02", "failed", error="x")])
        prog = st.backfill_progress(st.backfill(bf))
        assert prog == {"total": 3, "done": 1, "failed": 1, "missing": 1}
        assert st.backfill(bf)["options"] == {"concurrency": 2}


def test_backfill_counts_only_partitions_written_since_it_started(tmp_path: Path) -> None:
    keys = ["2024-01-01", "2024-01-02", "2024-01-03"]
    with StateStore(tmp_path) as st:
        before = st.start_run("materialize", command="x", options={})
        st.record_units(before, [rec("daily", k) for k in keys])
        time.sleep(0.05)
        bf = st.create_backfill("daily", {"daily": keys}, {"mode": "all"})  # e.g. --all over done partitions
        assert st.backfill_progress(st.backfill(bf)) == {"total": 3, "done": 0, "failed": 0, "missing": 3}
        assert st.backfill_outstanding(st.backfill(bf)) == {"daily": keys}
        run = st.start_run("backfill", command="x", options={}, backfill_id=bf)
        st.record_units(run, [rec("daily", "2024-01-01"), rec("daily", "2024-01-02", "failed", error="x")])
        assert st.backfill_progress(st.backfill(bf)) == {"total": 3, "done": 1, "failed": 1, "missing": 1}
        assert st.backfill_outstanding(st.backfill(bf)) == {"daily": ["2024-01-02", "2024-01-03"]}


def test_leases_refuse_a_live_holder_and_take_over_a_dead_one(tmp_path: Path) -> None:
    with StateStore(tmp_path) as st:
        r1 = st.start_run("backfill", command="a", options={})
        st.acquire_leases(["daily"], r1, backfill_id=7)
        r2 = st.start_run("backfill", command="b", options={})
        with pytest.raises(LeaseConflict, match="asset 'daily' is being written by backfill 7"):
            st.acquire_leases(["other", "daily"], r2)
        # all or nothing: 'other' was not taken either
        assert st._q("SELECT count(*) FROM leases WHERE run_id=?", (r2,))[0][0] == 0
        st.finish_run(r1, "success", planned=0, done=0, failed=0, skipped=0)
        st.acquire_leases(["daily"], r2)
        # a holder whose process is gone (kill -9) does not block anyone
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        st._conn.execute("UPDATE leases SET pid=?, run_id=999 WHERE asset='daily'", (dead.pid,))
        r3 = st.start_run("backfill", command="c", options={})
        st.acquire_leases(["daily"], r3)


def test_reap_crashed_marks_dead_runs(tmp_path: Path) -> None:
    with StateStore(tmp_path) as st:
        run = st.start_run("backfill", command="a", options={})
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        st._conn.execute("UPDATE runs SET pid=? WHERE id=?", (dead.pid, run))
        assert st.reap_crashed() == [run]
        assert st.run(run)["status"] == "crashed"


def test_check_results_round_trip(tmp_path: Path) -> None:
    with StateStore(tmp_path) as st:
        r = CheckResult(asset="daily", check="not_null(day)", status="fail", severity="critical",
                        partition="2024-01-01", column="day", observed={"nulls": 3}, expected=0, message="3 nulls")
        st.record_check_results(1, [r])
        st.record_check_results(2, [CheckResult(asset="daily", check="not_null(day)", status="pass",
                                                partition="2024-01-01")])
        latest = st.latest_check_results(["daily"])
        assert len(latest) == 1 and latest[0].status == "pass"
        first = st.latest_check_results(run_id=1)[0]
        assert first.observed == {"nulls": 3} and first.blocking and first.column == "day"


def test_readonly_store_on_missing_db_writes_nothing(tmp_path: Path) -> None:
    st = StateStore(tmp_path / "nope", readonly=True)
    assert st.all_materializations() == {} and not (tmp_path / "nope").exists()
