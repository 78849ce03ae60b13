"""Partition definitions: keys, ranges, validation, config shapes and mapping across edges."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sqlassets.errors import PartitionError
from sqlassets.model import Asset, Relation
from sqlassets.run.partitions import (
    StaticPartitionsDef,
    TimePartitionsDef,
    compress_keys,
    contiguous_batches,
    make_time_def,
    map_partitions,
    partitions_def,
    partitions_def_from_config,
    select_keys,
)

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def daily(**kw) -> TimePartitionsDef:
    return make_time_def("daily", "2024-01-01", **kw)


@pytest.mark.parametrize("grain,start,key,window", [
    ("hourly", "2024-01-05", "2024-01-05T03", ("2024-01-05 03:00:00", "2024-01-05 04:00:00")),
    ("daily", "2024-01-01", "2024-02-29", ("2024-02-29 00:00:00", "2024-03-01 00:00:00")),
    ("weekly", "2024-01-01", "2024-01-08", ("2024-01-08 00:00:00", "2024-01-15 00:00:00")),
    ("monthly", "2024-01-01", "2024-12", ("2024-12-01 00:00:00", "2025-01-01 00:00:00")),
    ("yearly", "2020-01-01", "2024", ("2024-01-01 00:00:00", "2025-01-01 00:00:00")),
])
def test_keys_print_and_parse_as_typed(grain, start, key, window) -> None:
    pdef = make_time_def(grain, start, column="c")
    assert pdef.parse_key(key) == key
    assert key in pdef.keys(NOW)
    assert pdef.window(key).iso() == window


def test_hourly_accepts_common_spellings() -> None:
    pdef = make_time_def("hourly", "2024-01-01", column="c")
    assert pdef.parse_key("2024-01-05 03:00") == "2024-01-05T03"
    assert pdef.parse_key("2024-01-05T03:00:00") == "2024-01-05T03"


def test_ranges_include_both_ends_and_respect_end() -> None:
    pdef = daily(end="2024-02-01")
    assert pdef.keys(NOW)[-1] == "2024-01-31" and len(pdef.keys(NOW)) == 31
    assert select_keys(pdef, "2024-01-30..2024-01-31", now=NOW) == ["2024-01-30", "2024-01-31"]
    assert select_keys(pdef, "2024-01-05", now=NOW) == ["2024-01-05"]
    assert select_keys(pdef, None, now=NOW) == pdef.keys(NOW)


def test_only_complete_partitions_exist() -> None:
    pdef = daily()
    now = datetime(2024, 1, 3, 10, tzinfo=UTC)
    assert pdef.keys(now) == ["2024-01-01", "2024-01-02"]


def test_cross_grain_range_selects_overlapping_partitions() -> None:
    monthly = make_time_def("monthly", "2024-01-01", column="m")
    assert select_keys(monthly, "2024-01-15..2024-03-02", now=NOW) == ["2024-01", "2024-02", "2024-03"]
    assert len(select_keys(daily(), "2024-02", now=NOW)) == 29


@pytest.mark.parametrize("bad", [
    "2024-01-01'; DROP TABLE daily; --", "2024-01-01' OR '1'='1", "2024/01/01", "2024-13-01", "2024-02-30",
    "", "   ", "2024-01-05..", "..2024-01-05", "2024-01-05..2024-01-01", "2023-12-31..2024-01-02",
    "2024-01-01..2024-01-02..2024-01-03", "2024-01-01\n; select 1", "2099-01-01", "yesterday",
])
def test_bad_keys_and_ranges_raise_partition_error(bad: str) -> None:
    with pytest.raises(PartitionError) as info:
        select_keys(daily(end="2024-03-01"), bad, now=NOW)
    assert "\n" not in str(info.value)


def test_single_partition_refuses_a_range() -> None:
    with pytest.raises(PartitionError, match="one key"):
        select_keys(daily(), "2024-01-01..2024-01-02", single=True, now=NOW)


def test_weekly_keys_must_be_mondays() -> None:
    weekly = make_time_def("weekly", "2024-01-01", column="w")
    with pytest.raises(PartitionError, match="Monday"):
        weekly.parse_key("2024-01-03")


def test_static_partitions() -> None:
    pdef = StaticPartitionsDef(("eu", "us", "apac"), "region")
    assert pdef.keys() == ["eu", "us", "apac"]
    assert select_keys(pdef, "eu..us") == ["eu", "us"]
    with pytest.raises(PartitionError, match="unknown partition"):
        select_keys(pdef, "eu'; drop table x; --")
    with pytest.raises(PartitionError):
        StaticPartitionsDef(("ok", "bad'quote"), "region")


@pytest.mark.parametrize("spec,error", [
    ({"type": "fortnightly", "start": "2024-01-01", "column": "d"}, "unknown partition type"),
    ({"type": "daily", "column": "d"}, "need a start date"),
    ({"type": "daily", "start": "soon", "column": "d"}, "bad partition start"),
    ({"type": "daily", "start": "2024-01-01", "end": "2023-01-01", "column": "d"}, "not after start"),
    ({"type": "daily", "start": "2024-01-01", "column": "d; drop"}, "not a plain column name"),
    ({"type": "daily", "start": "2024-01-01", "column": "d", "timezone": "Mars/Olympus"}, "unknown timezone"),
    ({"type": "static", "column": "d"}, "values"),
    ({"type": "daily", "start": "2024-01-01", "column": "d", "grain": "x"}, "unknown key"),
])
def test_bad_specs(spec, error) -> None:
    with pytest.raises(PartitionError, match=error):
        partitions_def_from_config({"meta": {"sqlassets": {"partitions": spec}}}, where="models/x.sql")


def test_config_shapes() -> None:
    meta = partitions_def_from_config({"meta": {"sqlassets": {"partitions": {
        "type": "monthly", "column": "order_month", "start": "2023-01-01", "timezone": "Europe/Paris"}}}})
    assert isinstance(meta, TimePartitionsDef) and meta.grain == "monthly" and meta.timezone == "Europe/Paris"
    mb = partitions_def_from_config({"materialized": "incremental", "incremental_strategy": "microbatch",
                                     "event_time": "event_date", "batch_size": "day", "begin": "2024-01-01",
                                     "lookback": 2})
    assert isinstance(mb, TimePartitionsDef) and mb.column == "event_date" and mb.lookback == 2
    header = partitions_def_from_config({"partitioned": "hourly", "partition_column": "ts",
                                         "partition_start": "2024-01-01", "partition_end": "2024-01-02"})
    assert isinstance(header, TimePartitionsDef) and len(header.keys(NOW)) == 24
    static = partitions_def_from_config({"partitioned": "static", "partition_column": "region",
                                         "partition_values": ["eu", "us"]})
    assert isinstance(static, StaticPartitionsDef) and static.keys() == ["eu", "us"]
    assert partitions_def_from_config({"materialized": "table"}) is None


def test_views_cannot_be_partitioned() -> None:
    asset = Asset("v", "sql", Relation(None, "main", "v"), "view",
                  config={"partitioned": "daily", "partition_column": "d", "partition_start": "2024-01-01"})
    with pytest.raises(PartitionError, match="cannot be partitioned"):
        partitions_def(asset)


def test_mapping_identity_coarser_finer_and_all() -> None:
    d = daily(column="d")
    m = make_time_def("monthly", "2024-01-01", column="m")
    assert map_partitions(d, ["2024-01-05"], d, NOW) == ["2024-01-05"]
    # a month reads its days; a day reads its month
    feb = map_partitions(m, ["2024-02"], d, NOW)
    assert feb[0] == "2024-02-01" and feb[-1] == "2024-02-29" and len(feb) == 29
    assert map_partitions(d, ["2024-02-05", "2024-02-20"], m, NOW) == ["2024-02"]
    # unpartitioned downstream reads every upstream partition; partitioned downstream of a table reads it
    assert map_partitions(None, [], d, NOW) == d.keys(NOW)
    assert map_partitions(d, ["2024-01-01"], None, NOW) == [""]
    s = StaticPartitionsDef(("eu", "us"), "r")
    assert map_partitions(s, ["eu"], s) == ["eu"]
    assert map_partitions(d, ["2024-01-01"], s) == ["eu", "us"]


def test_mapping_across_timezones() -> None:
    utc = daily(column="d")
    paris = make_time_def("daily", "2024-01-01", column="d", timezone="Europe/Paris")
    # Paris day 2024-01-02 = [2024-01-01T23:00Z, 2024-01-02T23:00Z) overlaps two UTC days
    assert map_partitions(paris, ["2024-01-02"], utc, NOW) == ["2024-01-01", "2024-01-02"]


def test_batches_split_on_gaps_and_size() -> None:
    d = daily(column="d")
    keys = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05", "2024-01-06"]
    assert contiguous_batches(d, keys, 2) == [("2024-01-01", "2024-01-02"), ("2024-01-03",),
                                              ("2024-01-05", "2024-01-06")]
    assert contiguous_batches(d, keys, 1) == [(k,) for k in keys]
    assert compress_keys(d, keys) == "2024-01-01..2024-01-03, 2024-01-05..2024-01-06"
