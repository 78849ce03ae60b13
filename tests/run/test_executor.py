"""The executor on a real DuckDB file: order, failure isolation, retries, checks, batching, Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import duckdb
import pytest
from run_support import checksum, make_project, table_rows

from sqlassets.check_results import CheckResult
from sqlassets.loaders import load_graph
from sqlassets.project import load_project
from sqlassets.run.executor import RunOptions, RunRequest, execute_request
from sqlassets.run.state import StateStore


def run(root: Path, **kw):
    opts = RunOptions(**{k: kw.pop(k) for k in list(kw) if k in RunOptions.__dataclass_fields__})
    hook = kw.pop("hook", None)
    before_write = kw.pop("before_write", None)
    project = load_project(root)
    graph = load_graph(project)
    lines: list[str] = []
    plan, summary = execute_request(project, graph, RunRequest(options=opts, **kw), hook=hook, echo=lines.append,
                                    before_write=before_write)
    return plan, summary, lines


def expected_daily(root: Path) -> list[tuple]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return sorted(con.execute(
            "select cast(event_ts as date), customer_id, sum(cast(amount as decimal(12,2))), count(*) "
            "from raw.events group by 1, 2").fetchall(), key=repr)
    finally:
        con.close()


def test_full_run_builds_exactly_the_data(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    plan, summary, lines = run(root)
    assert summary.status == "success" and summary.done == 31 + 1 + 1
    assert lines[0].startswith("Plan (missing): 3 asset(s), 33 unit(s)")
    db = root / "warehouse.duckdb"
    assert table_rows(db, "daily") == expected_daily(root)
    assert table_rows(db, "monthly")[0][2] == 31 * 200
    assert sum(r[2] for r in table_rows(db, "summary")) == 31 * 200
    # nothing missing: a no-op that does not even open the warehouse
    plan, summary, lines = run(root)
    assert plan.empty and summary.run_id is None


def test_concurrency_and_batches_give_identical_tables(tmp_path: Path) -> None:
    ref = make_project(tmp_path / "ref")
    run(ref)
    for name, kw in (("conc", {"concurrency": 4}), ("batch", {"batch_size": 7}), ("both", {"concurrency": 3,
                                                                                          "batch_size": 5})):
        root = make_project(tmp_path / name)
        _, summary, _ = run(root, **kw)
        assert summary.status == "success", summary.failures
        for table in ("daily", "monthly", "summary"):
            assert checksum(root / "warehouse.duckdb", table) == checksum(ref / "warehouse.duckdb", table), (name, table)
    with StateStore(tmp_path / "batch" / ".sqlassets") as st:
        steps = [s for s in st.steps(1) if s["asset"] == "daily"]
        assert len({s["batch"] for s in steps}) == 5  # 31 days in batches of 7: 7+7+7+7+3


def test_a_failing_partition_fails_only_itself_and_its_downstream(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", bad_day=9)  # 2024-01-10 has an amount that does not cast
    _, summary, _ = run(root)
    assert summary.status == "failed" and summary.failed == 1
    assert summary.failures[0][:2] == ("daily", "2024-01-10") and "oops" in summary.failures[0][2]
    assert summary.skipped == 2  # monthly 2024-01 and summary wait on that day
    with StateStore(root / ".sqlassets") as st:
        mats = st.materializations("daily")
        assert sorted(k for k, m in mats.items() if m.done) == [f"2024-01-{d:02d}" for d in range(1, 32) if d != 10]
        assert mats["2024-01-10"].status == "failed"
        assert "monthly" not in st.all_materializations()
    days = {r[0].isoformat() for r in table_rows(root / "warehouse.duckdb", "daily")}
    assert "2024-01-10" not in days and len(days) == 30


def test_transient_errors_are_retried_with_backoff(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False, days=3)
    calls: list[tuple[str, int]] = []

    def flaky(asset, keys, attempt):
        calls.append((keys[0], attempt))
        if keys[0] == "2024-01-02" and attempt < 3:
            raise duckdb.TransactionException("TransactionContext Error: Catalog write-write conflict on alter")

    _, summary, _ = run(root, partitions="2024-01-01..2024-01-03", before_write=flaky, backoff=0.01)
    assert summary.status == "success" and summary.done == 3
    assert [a for k, a in calls if k == "2024-01-02"] == [1, 2, 3]
    with StateStore(root / ".sqlassets") as st:
        assert {s["partition"]: s["attempts"] for s in st.steps(1)}["2024-01-02"] == 3


def test_a_blocking_check_fails_the_partition_and_blocks_downstream(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", summary=False)
    seen: list[tuple[str, str | None, tuple | None]] = []

    def hook(asset, partition, window, adapter):
        seen.append((asset.key, partition, window))
        if asset.key == "daily" and partition == "2024-01-15":
            n = adapter.connection.cursor().execute(
                "select count(*) from daily where day = date '2024-01-15'").fetchone()[0]
            return [CheckResult(asset="daily", check="row_count_between", status="fail", partition=partition,
                                observed=n, expected="< 5", message=f"{n} rows")]
        return [CheckResult(asset=asset.key, check="ok", status="pass", partition=partition)]

    _, summary, _ = run(root, hook=hook)
    assert summary.failed == 1 and summary.skipped == 1  # the day, and the month that reads it
    assert "blocking check failed: row_count_between [2024-01-15] on daily: 10 rows" in summary.failures[0][2]
    assert ("daily", "2024-01-05", ("2024-01-05 00:00:00", "2024-01-06 00:00:00")) in seen
    with StateStore(root / ".sqlassets") as st:
        assert st.materializations("daily")["2024-01-15"].status == "failed"
        stored = st.latest_check_results(["daily"])
        assert any(r.status == "fail" and r.observed == 10 for r in stored)


def test_ctrl_c_stops_cleanly_and_rolls_back(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    started = threading.Event()

    def interrupt(asset, keys, attempt):
        if keys[0] == "2024-01-05":
            started.set()
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does: KeyboardInterrupt in the main thread

    _, summary, _ = run(root, before_write=interrupt)
    assert started.is_set() and summary.status == "interrupted" and summary.exit_code == 130
    with StateStore(root / ".sqlassets") as st:
        done = {k for k, m in st.materializations("daily").items() if m.done}
        assert st.run(summary.run_id)["status"] == "interrupted"
        assert not st._q("SELECT * FROM leases")
    in_table = {r[0].isoformat() for r in table_rows(root / "warehouse.duckdb", "daily")}
    assert done <= in_table and len(done) < 31
    _, summary, _ = run(root)  # the next run finishes the rest
    assert summary.status == "success"
    assert table_rows(root / "warehouse.duckdb", "daily") == expected_daily(root)


def test_resuming_an_interrupted_all_backfill_rebuilds_what_it_did_not_reach(tmp_path: Path) -> None:
    """An `--all` (or `--stale`) backfill asks for partitions that are already done; resume must not skip them."""
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    _, summary, _ = run(root, select=["daily"], partitions="2024-01-01..2024-01-10")
    assert summary.status == "success"

    def interrupt(asset, keys, attempt):
        if keys[0] == "2024-01-05":
            os.kill(os.getpid(), signal.SIGINT)

    _, summary, _ = run(root, select=["daily"], partitions="2024-01-01..2024-01-10", mode="all", backfill=True,
                        before_write=interrupt)
    assert summary.status == "interrupted" and summary.backfill_id == 1
    with StateStore(root / ".sqlassets") as st:
        bf = st.backfill(1)
        prog = st.backfill_progress(bf)
        left = st.backfill_outstanding(bf)["daily"]
    assert prog["done"] < 10 and prog["done"] + prog["missing"] == 10
    assert "2024-01-10" in left and len(left) == prog["missing"]
    plan, summary, lines = run(root, resume=1)
    assert summary.status == "success" and plan.requested() == {"daily": left}
    with StateStore(root / ".sqlassets") as st:
        assert st.backfill_progress(st.backfill(1))["done"] == 10
    plan, summary, _ = run(root, resume=1)
    assert plan.empty


def test_dry_run_writes_no_state(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False)
    plan, summary, lines = run(root, select=["daily"], dry_run=True)
    assert summary is None and plan.total == 31 and lines[0].startswith("Plan (missing)")
    assert not (root / ".sqlassets" / "state.db").exists()


def test_unknown_selection_and_bad_sql_write_nothing(tmp_path: Path) -> None:
    from sqlassets.errors import UserError

    root = make_project(tmp_path / "p", monthly=False, summary=False)
    (root / "sql" / "broken.sql").write_text("-- materialized: table\nselect * from daily where ts >= :nope\n")
    before = sorted(p.name for p in root.iterdir())
    with pytest.raises(UserError, match="unknown placeholder ':nope'"):
        run(root)
    state = StateStore(root / ".sqlassets", readonly=True)
    assert state.runs() == [] and state.all_materializations() == {}
    assert "daily" not in {r[0] for r in duckdb.connect(str(root / "warehouse.duckdb"), read_only=True).execute(
        "select table_name from information_schema.tables").fetchall()}
    assert sorted(p.name for p in root.iterdir() if p.name != ".sqlassets") == [n for n in before if n != ".sqlassets"]
