"""The planner: missing / stale / all, cascading downstream, lookback, errors."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sqlassets.errors import PartitionError
from sqlassets.graph import AssetGraph
from sqlassets.model import Asset, Relation
from sqlassets.run.planner import build_plan
from sqlassets.run.state import StateStore, UnitRecord

NOW = datetime(2024, 3, 1, tzinfo=UTC)


def graph(code: str = "v1", lookback: int | None = None) -> AssetGraph:
    ext = Asset("raw.e", "external", Relation(None, "raw", "e"), "external")
    cfg = {"partitioned": "daily", "partition_column": "day", "partition_start": "2024-01-01",
           "partition_end": "2024-01-11", "materialized": "incremental"}
    if lookback is not None:
        cfg = {"materialized": "incremental", "incremental_strategy": "microbatch", "event_time": "day",
               "batch_size": "day", "begin": "2024-01-01", "lookback": lookback}
    daily = Asset("daily", "sql", Relation(None, "main", "daily"), "incremental", deps=("raw.e",),
                  code_version=code, raw_sql="select 1", config=cfg)
    summary = Asset("summary", "sql", Relation(None, "main", "summary"), "table", deps=("daily",),
                    code_version="s1", raw_sql="select 1", config={"materialized": "table"})
    return AssetGraph([ext, daily, summary])


def mark(st: StateStore, asset: str, keys, status="done", code="v1") -> None:
    run = st.start_run("materialize", command="t", options={})
    t = time.time()
    st.record_units(run, [UnitRecord(asset, k, status, t, t, code_version=code) for k in keys])


def by_key(plan):
    return {a.key: a for a in plan.assets}


def test_missing_is_default_and_cascades(tmp_path: Path) -> None:
    g = graph()
    st = StateStore(tmp_path)
    plan = build_plan(g, g.keys, st, now=NOW)
    assert by_key(plan)["daily"].count == 10 and by_key(plan)["summary"].keys == ("",)
    assert by_key(plan)["raw.e"].skipped
    mark(st, "daily", [f"2024-01-{d:02d}" for d in range(1, 11) if d != 4])
    mark(st, "summary", [""], code="s1")
    plan = build_plan(g, g.keys, st, now=NOW)
    assert by_key(plan)["daily"].keys == ("2024-01-04",)
    assert dict(by_key(plan)["summary"].reasons) == {"upstream rebuilt": 1}
    mark(st, "daily", ["2024-01-04"])
    mark(st, "summary", [""], code="s1")
    assert build_plan(g, g.keys, st, now=NOW).empty


def test_failed_partitions_are_retried_in_missing_mode(tmp_path: Path) -> None:
    g = graph()
    st = StateStore(tmp_path)
    mark(st, "daily", [f"2024-01-{d:02d}" for d in range(1, 11)])
    mark(st, "daily", ["2024-01-07"], status="failed")
    plan = build_plan(g, ["daily"], st, now=NOW)
    assert by_key(plan)["daily"].keys == ("2024-01-07",)
    assert dict(by_key(plan)["daily"].reasons) == {"failed": 1}


def test_stale_code_version_and_upstream_newer(tmp_path: Path) -> None:
    g = graph()
    st = StateStore(tmp_path)
    mark(st, "daily", [f"2024-01-{d:02d}" for d in range(1, 11)])
    mark(st, "summary", [""], code="s1")
    assert build_plan(g, g.keys, st, mode="stale", now=NOW).empty
    g2 = graph(code="v2")
    plan = build_plan(g2, ["daily"], st, mode="stale", now=NOW)
    assert by_key(plan)["daily"].count == 10 and dict(by_key(plan)["daily"].reasons) == {"code changed": 10}
    assert build_plan(g2, ["daily"], st, mode="missing", now=NOW).empty  # --missing ignores staleness
    time.sleep(0.01)
    mark(st, "daily", ["2024-01-03"], code="v1")  # rebuilt upstream after summary
    plan = build_plan(g, ["summary"], st, mode="stale", now=NOW)
    assert dict(by_key(plan)["summary"].reasons) == {"upstream newer": 1}


def test_all_and_ranges(tmp_path: Path) -> None:
    g = graph()
    st = StateStore(tmp_path)
    mark(st, "daily", [f"2024-01-{d:02d}" for d in range(1, 11)])
    plan = build_plan(g, ["daily"], st, mode="all", partitions="2024-01-02..2024-01-04", now=NOW)
    assert by_key(plan)["daily"].keys == ("2024-01-02", "2024-01-03", "2024-01-04")
    with pytest.raises(PartitionError, match="asset 'daily'"):
        build_plan(g, ["daily"], st, partitions="2024-01-02'; drop table daily; --", now=NOW)
    with pytest.raises(PartitionError, match="no selected asset is partitioned"):
        build_plan(g, ["summary"], st, partitions="2024-01-02", now=NOW)


def test_microbatch_lookback_reruns_partitions_before_the_first_missing(tmp_path: Path) -> None:
    g = graph(lookback=2)
    st = StateStore(tmp_path)
    keys = [f"2024-01-{d:02d}" for d in range(1, 32)] + [f"2024-02-{d:02d}" for d in range(1, 29)]
    mark(st, "daily", keys)
    plan = build_plan(g, ["daily"], st, now=NOW)
    assert by_key(plan)["daily"].keys == ("2024-02-27", "2024-02-28", "2024-02-29")
    assert dict(by_key(plan)["daily"].reasons) == {"missing": 1, "lookback": 2}
    # with nothing missing, lookback does not make a no-op run do work
    mark(st, "daily", ["2024-02-29"])
    assert build_plan(g, ["daily"], st, now=NOW).empty


def test_plan_is_frozen(tmp_path: Path) -> None:
    plan = build_plan(graph(), ["daily"], StateStore(tmp_path), now=NOW)
    with pytest.raises(AttributeError):
        plan.mode = "all"  # type: ignore[misc]
    assert replace(plan, mode="all").mode == "all"


def test_a_selection_of_only_unbuilt_assets_says_so_instead_of_all_done(tmp_path: Path) -> None:
    g = graph()
    lines = build_plan(g, ["raw.e"], StateStore(tmp_path), now=NOW).lines(g)
    assert "every selected partition is done" not in "\n".join(lines)
    assert lines[1] == "  nothing to do: sqlassets does not build any selected asset"
    assert lines[2].startswith("  skipped: raw.e (")


def test_resuming_a_backfill_rebuilds_requested_partitions_even_when_done(tmp_path: Path) -> None:
    g = graph()
    st = StateStore(tmp_path)
    mark(st, "daily", ["2024-01-01", "2024-01-02"])
    requested = {"daily": ["2024-01-01", "2024-01-02"]}
    assert build_plan(g, ["daily"], st, requested=requested, now=NOW).empty
    plan = build_plan(g, ["daily"], st, requested=requested, rebuild_requested=True, now=NOW)
    assert by_key(plan)["daily"].keys == ("2024-01-01", "2024-01-02")
    assert by_key(plan)["daily"].reasons == (("not yet rebuilt", 2),)
