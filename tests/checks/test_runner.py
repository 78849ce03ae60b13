"""Checks inside a run: a failing critical check keeps its partition from being recorded done and its
downstream from being built; warnings are reported only. Real executor, real DuckDB, real GX."""

from __future__ import annotations

from pathlib import Path

import duckdb
from checks_support import exp, make_shop_checks, suite, write_suite
from conftest import invoke

from sqlassets.project import load_project
from sqlassets.run.state import StateStore


def _suite_net_nonnegative(root: Path, severity: str) -> None:
    write_suite(root, "daily", suite(
        "daily",
        exp("expect_column_values_to_be_between", severity, column="net", min_value=0),
        exp("expect_column_values_to_not_be_null", "critical", column="customer_id"),
    ))


def test_critical_failure_blocks_partition_and_downstream(tmp_path: Path):
    root = make_shop_checks(tmp_path / "p")
    _suite_net_nonnegative(root, "critical")
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 1, res.stdout + res.stderr
    out = res.stdout + res.stderr
    assert "blocking check failed" in out and "2024-01-03" in out and "expected net values >= 0" in out
    project = load_project(root)
    with StateStore(project.state_dir) as st:
        mats = st.materializations("daily")
        assert {k for k, m in mats.items() if m.done} == {"2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"}
        assert not mats["2024-01-03"].done
        assert not any(m.done for m in st.materializations("summary").values())
        checks = st.latest_check_results(["daily"])
    failed = [c for c in checks if c.status == "fail"]
    assert [(c.partition, c.observed) for c in failed] == [("2024-01-03", 1)]
    assert failed[0].blocking and failed[0].column == "net"
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
    finally:
        con.close()
    assert "summary" not in tables  # downstream of the blocked partition was never built
    runs = invoke(["--project", str(root), "runs", "1"])
    assert "check fail" in runs.stdout and "2024-01-03" in runs.stdout
    status = invoke(["--project", str(root), "status"])
    assert "checks:" in status.stdout and "1 fail" in status.stdout


def test_warning_failure_is_reported_not_blocking(tmp_path: Path):
    root = make_shop_checks(tmp_path / "p")
    _suite_net_nonnegative(root, "warning")
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 0, res.stdout + res.stderr
    project = load_project(root)
    with StateStore(project.state_dir) as st:
        assert all(m.done for m in st.materializations("daily").values())
        assert any(m.done for m in st.materializations("summary").values())
        warned = [c for c in st.latest_check_results(["daily"]) if c.status == "fail"]
    assert [(c.partition, c.severity, c.blocking) for c in warned] == [("2024-01-03", "warning", False)]


def test_only_the_partitions_rows_are_checked(tmp_path: Path):
    root = make_shop_checks(tmp_path / "p")
    write_suite(root, "daily", suite("daily", exp("expect_table_row_count_to_equal", "critical", value=8)))
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 0, res.stdout + res.stderr  # each day holds 8 customer rows; the table 40
    check = invoke(["--project", str(root), "check", "--partitions", "2024-01-02..2024-01-03"])
    assert check.exit_code == 0, check.stdout
    whole = invoke(["--project", str(root), "check"])
    assert whole.exit_code == 1 and "observed 40" in whole.stdout


def test_a_batch_is_checked_once_over_its_window_and_passes_or_fails_whole(tmp_path: Path):
    root = make_shop_checks(tmp_path / "p")
    _suite_net_nonnegative(root, "critical")
    res = invoke(["--project", str(root), "materialize", "--select", "daily", "--batch-size", "2"])
    assert res.exit_code == 1, res.stdout + res.stderr
    project = load_project(root)
    with StateStore(project.state_dir) as st:
        mats = st.materializations("daily")
        # batches [01, 02] [03, 04] [05]: the bad day 03 blocks its whole batch, written in one transaction
        assert {k for k, m in mats.items() if m.done} == {"2024-01-01", "2024-01-02", "2024-01-05"}
        checks = st.latest_check_results(["daily"])
    by_scope = {c.partition for c in checks}
    assert by_scope == {"2024-01-01..2024-01-02", "2024-01-03..2024-01-04", "2024-01-05"}
    failed = [c for c in checks if c.status == "fail"]
    assert [(c.partition, c.observed) for c in failed] == [("2024-01-03..2024-01-04", 1)]
