"""What `materialize` shows about checks while it builds: WARN/FAIL lines inline, a checks summary line,
and run times that are wall-clock (the runs table agrees with what the user waited for)."""

from __future__ import annotations

import time
from pathlib import Path

from checks_support import exp, make_shop_checks, suite, write_suite
from conftest import invoke


def test_materialize_prints_check_results_inline_and_a_summary(tmp_path: Path) -> None:
    root = make_shop_checks(tmp_path / "p", bad_day="2024-01-03")
    write_suite(root, "daily", suite(
        "daily",
        exp("expect_column_values_to_not_be_null", "critical", column="customer_id"),
        exp("expect_column_values_to_be_between", "warning", column="n", min_value=5),
        exp("expect_column_values_to_be_between", "critical", column="net", min_value=0),
    ))
    t0 = time.time()
    res = invoke(["--project", str(root), "materialize", "-s", "daily"])
    wall = time.time() - t0
    assert res.exit_code == 1, res.stdout + res.stderr
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("WARN")]
    assert warn and "on daily [2024-01-0" in warn[0]
    assert any(ln.startswith("FAIL") and "daily [2024-01-03]" in ln for ln in res.stderr.splitlines())
    summary = next(ln for ln in res.stdout.splitlines() if ln.startswith("checks: "))
    assert "passed" in summary and "warned" in summary and "1 failed" in summary
    # The run's recorded duration is the command's wall time, not only the writing phase.
    runs = invoke(["--project", str(root), "runs", "-o", "json"])
    import json

    run = json.loads(runs.stdout)[0]
    recorded = run["finished_at"] - run["started_at"]
    assert recorded <= wall and recorded >= 0.5 * wall, (recorded, wall)


def test_quiet_materialize_prints_only_problems_and_the_summary(tmp_path: Path) -> None:
    root = make_shop_checks(tmp_path / "p", bad_day=None)
    res = invoke(["--project", str(root), "materialize", "-q"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stderr == ""
    assert [ln.split()[0] for ln in res.stdout.splitlines()] == ["run"]
