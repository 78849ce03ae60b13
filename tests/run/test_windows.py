"""Windows into SQL: placeholders, dbt sentinels, microbatch upstream filtering, typed literals."""

from __future__ import annotations

import duckdb
import pytest

from sqlassets.errors import UserError
from sqlassets.graph import AssetGraph
from sqlassets.model import Asset, Relation
from sqlassets.run.partitions import StaticPartitionsDef, make_time_def
from sqlassets.run.windows import SENTINEL_START, Template, literal_sql, prepare_select

DAILY = make_time_def("daily", "2024-01-01", column="day")


def sql_asset(key: str, sql: str, **config) -> Asset:
    return Asset(key, "sql", Relation("wh", "main", key), config.pop("materialized", "incremental"),
                 raw_sql=sql, config=config)


def render(asset: Asset, pdef, keys, graph=None) -> str:
    prepared = prepare_select(asset, asset.raw_sql or "", graph, pdef=pdef)
    return Template(prepared.expression.sql("duckdb"), "duckdb").render(pdef, keys)


def test_placeholders_become_typed_timestamp_literals() -> None:
    a = sql_asset("d", "select * from raw.e where ts >= :window_start and ts < :window_end")
    sql = render(a, DAILY, ["2024-01-05"])
    assert "ts >= CAST('2024-01-05 00:00:00' AS TIMESTAMP)" in sql
    assert "ts < CAST('2024-01-06 00:00:00' AS TIMESTAMP)" in sql
    # the same template renders a batch of contiguous partitions as one window
    assert "CAST('2024-01-08 00:00:00' AS TIMESTAMP)" in render(a, DAILY, ["2024-01-05", "2024-01-06", "2024-01-07"])


def test_rendered_sql_runs_on_duckdb() -> None:
    a = sql_asset("d", "select count(*) as n from range(10) t(i) where timestamp '2024-01-05 12:00' "
                       ">= :window_start and timestamp '2024-01-05 12:00' < :window_end")
    con = duckdb.connect()
    assert con.execute(render(a, DAILY, ["2024-01-05"])).fetchone() == (10,)
    assert con.execute(render(a, DAILY, ["2024-01-06"])).fetchone() == (0,)


def test_partition_key_placeholder_for_static_partitions() -> None:
    pdef = StaticPartitionsDef(("eu", "us"), "region")
    a = sql_asset("r", "select * from raw.sales where region = :partition_key")
    assert "region = 'us'" in render(a, pdef, ["us"])


def test_unknown_placeholder_and_unpartitioned_use_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown placeholder ':start'"):
        prepare_select(sql_asset("d", "select * from t where ts >= :start"), "select * from t where ts >= :start",
                       pdef=DAILY)
    a = sql_asset("d", "select * from t where ts >= :window_start", materialized="table")
    with pytest.raises(UserError, match="not partitioned"):
        prepare_select(a, a.raw_sql, pdef=None)
    with pytest.raises(UserError, match="exactly one SELECT"):
        prepare_select(sql_asset("x", "delete from t"), "delete from t", pdef=None)
    with pytest.raises(UserError, match="cannot parse"):
        prepare_select(sql_asset("x", "select from where ("), "select from where (", pdef=None)


def test_dbt_sentinels_in_compiled_sql() -> None:
    compiled = (f"select * from \"wh\".\"main\".\"orders\" where order_date >= '{SENTINEL_START}' "
                "and order_date < '__sqlassets_window_end__'")
    a = Asset("m", "model", Relation("wh", "main", "m"), "incremental", raw_sql="...", config={})
    prepared = prepare_select(a, compiled, pdef=DAILY)
    assert prepared.uses_window
    sql = Template(prepared.expression.sql("duckdb"), "duckdb").render(DAILY, ["2024-03-01"])
    assert "order_date >= CAST('2024-03-01 00:00:00' AS TIMESTAMP)" in sql
    assert "__sqlassets" not in sql


def test_microbatch_filters_upstream_that_declares_event_time() -> None:
    events = Asset("stg_events", "model", Relation("wh", "main", "stg_events"), "view",
                   config={"event_time": "event_ts"})
    customers = Asset("stg_customers", "model", Relation("wh", "main", "stg_customers"), "view")
    fct = Asset("fct", "model", Relation("wh", "main", "fct"), "incremental", deps=("stg_events", "stg_customers"),
                config={"materialized": "incremental", "incremental_strategy": "microbatch",
                        "event_time": "event_date", "batch_size": "day", "begin": "2024-01-01"})
    graph = AssetGraph([events, customers, fct])
    compiled = ('select e.* from "wh"."main"."stg_events" as e join "wh"."main"."stg_customers" c '
                "on e.customer_id = c.customer_id")
    prepared = prepare_select(fct, compiled, graph, pdef=DAILY)
    sql = Template(prepared.expression.sql("duckdb"), "duckdb").render(DAILY, ["2024-01-02"])
    assert ('(SELECT * FROM "wh"."main"."stg_events" WHERE event_ts >= CAST(\'2024-01-02 00:00:00\' AS TIMESTAMP) '
            "AND event_ts < CAST('2024-01-03 00:00:00' AS TIMESTAMP)) AS e") in sql
    assert '"wh"."main"."stg_customers" AS c' in sql  # no event_time: not filtered


def test_ephemeral_sql_assets_are_inlined() -> None:
    eph = sql_asset("recent", "select * from raw.e where ts >= :window_start", materialized="ephemeral")
    down = Asset("d", "sql", Relation("wh", "main", "d"), "incremental", deps=("recent",),
                 raw_sql="select count(*) from recent")
    graph = AssetGraph([eph, down])
    sql = render(down, DAILY, ["2024-01-02"], graph)
    assert "FROM (SELECT * FROM raw.e WHERE ts >= CAST('2024-01-02 00:00:00' AS TIMESTAMP)) AS recent" in sql


def test_literals_are_escaped_by_sqlglot() -> None:
    assert literal_sql("it's", "duckdb") == "'it''s'"
