"""`materialize`, `backfill` (resume, list), `status`, `runs` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke, tree
from run_support import make_project, run_cli


def cli(root: Path, *args: str):
    return invoke(["--project", str(root), *args])


def test_materialize_dry_run_status_and_runs(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    r = cli(root, "materialize", "--select", "daily", "--partitions", "2024-01-01..2024-01-05", "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert "daily  partition_replace     5  2024-01-01..2024-01-05  [5 missing]" in r.stdout
    assert not (root / ".sqlassets" / "state.db").exists() or cli(root, "runs").stdout.startswith("no runs")
    r = cli(root, "materialize", "--select", "daily", "--partitions", "2024-01-01..2024-01-05")
    assert r.exit_code == 0, r.stderr
    assert "run 1 success" in r.stdout and "5 done" in r.stdout
    r = cli(root, "status")
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if ln.startswith("daily"))
    assert lines[i].split()[1:7] == ["partial", "31", "5", "0", "26", "0"]
    # Partitions as date ranges (first/last done, gaps), not a bar.
    assert lines[i + 1].split() == ["done", "2024-01-01..2024-01-05"]
    assert lines[i + 2].split() == ["missing", "2024-01-06..2024-01-31"]
    data = json.loads(cli(root, "status", "--output", "json", "--select", "daily").stdout)
    assert data[0]["counts"] == {"done": 5, "failed": 0, "missing": 26, "stale": 0}
    assert data[0]["missing"] == "2024-01-06..2024-01-31"
    assert data[0]["ranges"] == {"done": "2024-01-01..2024-01-05", "missing": "2024-01-06..2024-01-31"}
    r = cli(root, "runs")
    assert "materialize" in r.stdout and "success" in r.stdout
    r = cli(root, "runs", "1", "--steps")
    assert "daily: 5 done" in r.stdout and "[2024-01-03]" in r.stdout


def test_backfill_list_and_resume(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", bad_day=2, monthly=False, summary=False)
    r = cli(root, "backfill", "--select", "daily", "--partitions", "2024-01-01..2024-01-10")
    assert r.exit_code == 1
    assert "backfill 1: 10 partition(s)" in r.stdout and "failed daily [2024-01-03]" in r.stderr
    assert "sqlassets backfill resume 1" in r.stderr
    r = cli(root, "backfill", "list")
    assert r.stdout.splitlines()[1].split()[:6] == ["1", r.stdout.splitlines()[1].split()[1],
                                                     r.stdout.splitlines()[1].split()[2], "failed", "9/10", "1"]
    from run_support import fix_bad_data

    fix_bad_data(root)
    r = cli(root, "backfill", "resume", "1")
    assert r.exit_code == 0, r.stderr
    assert "daily  partition_replace     1  2024-01-03  [1 failed]" in r.stdout
    assert " 10/10" in cli(root, "backfill", "list").stdout
    r = cli(root, "backfill", "resume", "1")
    assert "nothing to do" in r.stdout and r.exit_code == 0
    r = cli(root, "backfill", "resume", "42")
    assert r.exit_code == 2 and "no backfill 42" in r.stderr


def test_a_failed_materialize_names_the_command_to_re_run(tmp_path: Path, monkeypatch) -> None:
    root = make_project(tmp_path / "p", bad_day=2, monthly=False, summary=False)
    argv = ["sqlassets", "--project", str(root), "materialize", "-s", "daily", "--partitions", "2024-01-01..2024-01-05"]
    monkeypatch.setattr("sys.argv", argv)
    r = cli(root, *argv[3:])
    assert r.exit_code == 1
    assert "the same command" not in r.stderr
    assert f"re-run with `sqlassets --project {root} materialize -s daily --partitions 2024-01-01..2024-01-05`" \
        in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--partitions", "2024-01-01'; DROP TABLE raw.events; --"], "bad"),
    (["--partitions", "2024-01-05..2024-01-01"], "backwards"),
    (["--partitions", "2023-12-01..2024-01-02"], "outside"),
    (["--partition", "2024-02-30"], "not a real date"),
    (["--partition", "2024-01-01..2024-01-02"], "one key"),
    (["--partitions", "2024-01-01", "--partition", "2024-01-02"], "not both"),
    (["--select", "summary", "--partitions", "2024-01-01"], "no selected asset is partitioned"),
    (["--select", "nope"], "nope"),
    (["--concurrency", "0"], "0"),
    (["--full-refresh", "--partitions", "2024-01-01..2024-01-02"], "cannot take --partitions"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, args, message) -> None:
    root = make_project(tmp_path / "p")
    before = tree(root)
    for cmd in (["materialize"], ["backfill"]):
        r = cli(root, *cmd, *args)
        assert r.exit_code == 2, (cmd, args, r.stdout, r.stderr)
        assert message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
        assert "Traceback" not in r.stderr
    after = tree(root)
    assert {k: v for k, v in after.items() if not k.startswith(".sqlassets")} == before
    # a state dir may be created, but it records no run, backfill or partition
    if (root / ".sqlassets" / "state.db").exists():
        import sqlite3

        con = sqlite3.connect(root / ".sqlassets" / "state.db")
        assert con.execute("select count(*) from runs").fetchone()[0] == 0
        assert con.execute("select count(*) from backfills").fetchone()[0] == 0
        assert con.execute("select count(*) from materializations").fetchone()[0] == 0


def test_real_process_exit_codes(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", monthly=False, summary=False, days=3)
    r = run_cli(root, "materialize", "--partitions", "2024-01-01..2024-01-03")
    assert r.returncode == 0 and "run 1 success" in r.stdout
    assert "[3/3] 100%  3 done" in r.stderr and "last: daily [2024-01-03]" in r.stderr  # plain lines, no TTY
    r = run_cli(root, "materialize", "--partition", "x' or 1=1 --")
    assert r.returncode == 2 and r.stderr.startswith("error: asset 'daily': bad")


def test_history_views_on_a_fresh_project_write_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    before = tree(root)
    for args in (["backfill", "list"], ["runs"], ["status"]):
        r = cli(root, *args)
        assert r.exit_code == 0, (args, r.stderr)
    assert tree(root) == before
    assert not (root / ".sqlassets" / "state.db").exists()


def test_runs_groups_one_check_outcome_across_partitions(tmp_path: Path) -> None:
    from sqlassets.check_results import CheckResult
    from sqlassets.run.state import StateStore

    root = make_project(tmp_path / "p")
    assert cli(root, "materialize", "--select", "daily", "--partitions", "2024-01-01..2024-01-03").exit_code == 0
    skipped = [CheckResult(asset="daily", check="relationships_daily_x", status="skipped", partition=day,
                           message="reads other, which is not built yet")
               for day in ("2024-01-01", "2024-01-02", "2024-01-03")]
    failed = CheckResult(asset="daily", check="not_null_daily_y", status="fail", partition="2024-01-02",
                         message="observed 2 failing rows")
    with StateStore(root / ".sqlassets") as st:
        st.record_check_results(1, [*skipped, failed])
    out = cli(root, "runs", "1").stdout
    assert ("check skipped critical daily [2024-01-01..2024-01-03: 3 partitions] relationships_daily_x: "
            "reads other, which is not built yet") in out
    assert "check fail    critical daily [2024-01-02] not_null_daily_y: observed 2 failing rows" in out
    assert out.count("relationships_daily_x") == 1
