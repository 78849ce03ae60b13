"""Schedules, "upstream changed" sensors and freshness on a real DuckDB project, with a jumping clock."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import invoke
from run_support import make_project

from sqlassets.integrations.automation import (
    FakeClock,
    Freshness,
    Scheduler,
    judge,
    load_automation,
    parse_duration,
)
from sqlassets.loaders import load_graph
from sqlassets.project import load_project
from sqlassets.run.state import StateStore

AUTOMATION = """
schedules:
  - name: nightly
    cron: "0 3 * * *"
    select: "daily+"
    partition_offset: {offset}
sensors:
  - name: follow
    when: upstream_changed
    select: summary
    interval: 30m
freshness:
  daily: {{warn_after: 26h, error_after: 50h}}
  summary: {{warn_after: 1h}}
"""


def _project(tmp_path: Path, offset: int = 0) -> Path:
    root = make_project(tmp_path / "p", days=10, end="2024-01-11", monthly=False)
    with (root / "sqlassets.yml").open("a") as f:
        f.write(AUTOMATION.format(offset=offset))
    return root


def _scheduler(root: Path, start: datetime) -> tuple[Scheduler, list[str]]:
    project = load_project(root)
    graph = load_graph(project)
    lines: list[str] = []
    return Scheduler(project, graph, load_automation(project, graph), clock=FakeClock(start), echo=lines.append), lines


def _done(root: Path, asset: str) -> list[str]:
    with StateStore(root / ".sqlassets") as st:
        return sorted(k for k, m in st.all_materializations([asset]).get(asset, {}).items() if m.done)


def test_cron_ticks_run_the_latest_complete_partition_minus_the_offset(tmp_path: Path) -> None:
    root = _project(tmp_path, offset=1)
    sched, lines = _scheduler(root, datetime(2024, 1, 5, 2, 45, tzinfo=UTC))
    outcomes = sched.run(max_ticks=3)
    ticks = [(o.name, o.tick.isoformat(), o.targets.get("daily")) for o in outcomes]
    # the sensor evaluates at start (nothing stale yet), then 03:00 on Jan 5: latest complete day is Jan 4,
    # offset 1 -> Jan 3; the summary (unpartitioned, downstream) is built in the same run
    assert ticks[0][0] == "follow" and outcomes[0].status == "nothing"
    assert ticks[1] == ("nightly", "2024-01-05T03:00:00+00:00", ["2024-01-03"])
    assert outcomes[1].status == "success" and outcomes[1].targets["summary"] == [""]
    # 30 minutes later the sensor looks again: nothing upstream changed since
    assert ticks[2][0] == "follow" and outcomes[2].status == "nothing"
    assert _done(root, "daily") == ["2024-01-03"] and _done(root, "summary") == [""]
    with StateStore(root / ".sqlassets") as st:
        assert st.runs()[0]["command"] == "sqlassets schedule nightly"


def test_upstream_changed_sensor_rebuilds_only_what_went_stale(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert invoke(["--project", str(root), "materialize", "--partitions", "2024-01-01..2024-01-03"]).exit_code == 0
    time.sleep(0.01)
    # a CLI run rebuilds one upstream partition: summary (which reads all of daily) is now stale
    res = invoke(["--project", str(root), "materialize", "-s", "daily", "--partition", "2024-01-02", "--all"])
    assert res.exit_code == 0, res.stderr
    sched, lines = _scheduler(root, datetime(2024, 1, 4, 12, tzinfo=UTC))
    out = sched.run(once=True)
    follow = [o for o in out if o.name == "follow"]
    assert [(o.status, o.targets) for o in follow] == [("success", {"summary": [""]})]
    assert not [o for o in out if o.name == "nightly"]  # 12:00 is not a tick of "0 3 * * *"
    again = sched.run(once=True)
    assert [o.status for o in again if o.name == "follow"][-1] == "nothing"


def test_schedule_cli_once_and_list_and_bad_config(tmp_path: Path) -> None:
    root = _project(tmp_path)
    res = invoke(["--project", str(root), "schedule", "--list"])
    assert res.exit_code == 0
    assert "schedule nightly" in res.stdout and "cron '0 3 * * *'" in res.stdout
    assert "sensor   follow" in res.stdout and "freshness daily" in res.stdout
    res = invoke(["--project", str(root), "schedule", "--once", "--now", "2024-01-08T03:00"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "schedule nightly @ 2024-01-08 03:00 UTC: daily[2024-01-07], summary" in res.stdout
    assert _done(root, "daily") == ["2024-01-07"]
    # a manual trigger of one schedule by name, whatever the time
    res = invoke(["--project", str(root), "schedule", "--once", "--name", "nightly", "--now", "2024-01-09T17:20"])
    assert res.exit_code == 0 and _done(root, "daily") == ["2024-01-07", "2024-01-08"]
    settings = root / "sqlassets.yml"
    settings.write_text(settings.read_text().replace(
        "schedules:\n", "schedules:\n  - name: broken\n    cron: \"61 * * * *\"\n    select: daily\n"))
    res = invoke(["--project", str(root), "schedule", "--list"])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1
    assert "schedule 'broken'" in res.stderr and "not a valid cron" in res.stderr and "sqlassets.yml" in res.stderr


def test_status_shows_freshness(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert invoke(["--project", str(root), "materialize", "--partitions", "2024-01-01..2024-01-10"]).exit_code == 0
    res = invoke(["--project", str(root), "status", "-o", "json"])
    rows = {r["asset"]: r for r in json.loads(res.stdout)}
    # daily's newest partition ended 2024-01-11: far older than 50h -> error; summary was just built
    assert rows["daily"]["freshness"]["status"] == "error"
    assert rows["daily"]["freshness"]["lag_seconds"] > 50 * 3600
    assert rows["summary"]["freshness"]["status"] == "pass"
    text = invoke(["--project", str(root), "status"]).stdout
    assert "freshness: error (" in text and "freshness: fresh (" in text


def test_freshness_judgement_and_durations() -> None:
    limits = Freshness("a", warn_after=parse_duration("26h", "w", "x"), error_after=parse_duration(
        {"count": 2, "period": "day"}, "e", "x"), source="test")
    assert (limits.warn_after, limits.error_after) == (26 * 3600, 2 * 86400)
    assert judge(limits, 3600).status == "pass"
    assert judge(limits, 27 * 3600).status == "warn"
    assert judge(limits, 3 * 86400).status == "error"
    assert judge(limits, None).status == "error"
    from sqlassets.errors import ConfigError

    with pytest.raises(ConfigError, match="duration like"):
        parse_duration("soon", "warn_after", "sqlassets.yml")


def test_a_failing_tick_does_not_stop_the_scheduler(tmp_path: Path) -> None:
    root = _project(tmp_path)
    calls: list[dict] = []

    def flaky_run(project, graph, req, **kw):  # the executor itself is tested elsewhere; this is the loop
        calls.append(dict(req.requested))
        if len(calls) == 1:
            raise OSError("warehouse unreachable")
        from sqlassets.run.executor import execute_request

        return execute_request(project, graph, req, **kw)

    project = load_project(root)
    graph = load_graph(project)
    lines: list[str] = []
    sched = Scheduler(project, graph, load_automation(project, graph), clock=FakeClock(
        datetime(2024, 1, 5, 2, 59, tzinfo=UTC)), echo=lines.append, run=flaky_run)
    out = sched.run(max_ticks=3, only="nightly")
    assert [o.status for o in out] == ["failed", "success", "success"]
    assert any("warehouse unreachable; the next tick tries again" in line for line in lines)
    assert [c["daily"] for c in calls] == [["2024-01-04"], ["2024-01-05"], ["2024-01-06"]]
