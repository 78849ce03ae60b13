"""Two assets naming one warehouse relation are a load error, compared as that warehouse compares names.

(End-to-end cases — a raw SQL file on a dbt source's table, `Daily` next to `daily` — are in the
bad-input corpus; these pin the per-warehouse identifier rules.)
"""

from __future__ import annotations

import pytest

from sqlassets.errors import GraphError
from sqlassets.graph import AssetGraph
from sqlassets.model import Asset, Relation


def _asset(key: str, rel: tuple[str | None, str | None, str], *, dialect: str = "duckdb", kind: str = "sql",
           materialization: str = "table", config: dict | None = None) -> Asset:
    return Asset(key=key, kind=kind, relation=Relation(*rel), materialization=materialization,
                 path=f"sql/{key}.sql", dialect=dialect, config=config or {})


@pytest.mark.parametrize("dialect", ["duckdb", "snowflake", "postgres", "redshift", "some_new_engine"])
def test_case_insensitive_warehouses_clash_on_case(dialect: str) -> None:
    with pytest.raises(GraphError, match=r"sql/Daily\.sql.*sql/daily\.sql|sql/daily\.sql.*sql/Daily\.sql"):
        AssetGraph([_asset("Daily", ("db", "main", "Daily"), dialect=dialect),
                    _asset("daily", ("db", "main", "daily"), dialect=dialect)])


def test_bigquery_tables_are_case_sensitive() -> None:
    AssetGraph([_asset("Daily", ("proj", "ds", "Daily"), dialect="bigquery"),
                _asset("daily", ("proj", "ds", "daily"), dialect="bigquery")])
    with pytest.raises(GraphError):  # project ids are lower case: PROJ is proj
        AssetGraph([_asset("a", ("PROJ", "ds", "t"), dialect="bigquery"),
                    _asset("b", ("proj", "ds", "t"), dialect="bigquery")])


def test_quoted_snowflake_source_keeps_its_case() -> None:
    quoted = {"quoting": {"identifier": True}}
    AssetGraph([_asset("raw.Events", ("DB", "RAW", "Events"), dialect="snowflake", kind="source",
                       materialization="external", config=quoted),
                _asset("events", ("DB", "RAW", "EVENTS"), dialect="snowflake")])
    with pytest.raises(GraphError, match="raw.events"):
        AssetGraph([_asset("raw.events", ("DB", "RAW", "events"), dialect="snowflake", kind="source",
                           materialization="external"),
                    _asset("events", ("DB", "RAW", "EVENTS"), dialect="snowflake")])


def test_missing_database_matches_any_and_other_schemas_do_not_clash() -> None:
    with pytest.raises(GraphError, match="raw.orders"):
        AssetGraph([_asset("raw.orders", ("shop", "raw", "orders"), kind="source", materialization="external"),
                    _asset("orders", (None, "raw", "orders"))])
    AssetGraph([_asset("a", ("shop", "raw", "orders")), _asset("b", ("shop", "main", "orders"))])
    AssetGraph([_asset("a", ("one", "main", "t")), _asset("b", ("two", "main", "t"))])


def test_ephemeral_models_own_no_relation() -> None:
    AssetGraph([_asset("a", (None, "main", "t"), materialization="ephemeral"), _asset("b", (None, "main", "t"))])


def test_two_sources_over_one_table_are_no_clash_and_a_model_reads_its_own() -> None:
    """mattermost's snowflake-dbt declares raw.portal_prod.identifies twice (two source groups): dbt accepts
    it, nothing writes it; a model's reference resolves to the source it depends on."""
    from sqlassets.lineage.build import build_lineage
    from sqlassets.model import Column

    rel = ("RAW", "PORTAL_PROD", "IDENTIFIES")
    graph = AssetGraph([
        Asset("portal_prod.identifies", "source", Relation(*rel), "external", dialect="snowflake",
              columns=(Column("ID"), Column("USER_ID"))),
        Asset("raw.identifies", "source", Relation(*rel), "external", dialect="snowflake"),
        Asset("m", "model", Relation("ANALYTICS", "DBT", "M"), "view", deps=("portal_prod.identifies",),
              dialect="snowflake", compiled_sql="select id, user_id as uid from RAW.PORTAL_PROD.IDENTIFIES"),
    ])
    cg = build_lineage(None, graph, use_cache=False).columns
    assert [r.column for r in cg.walk(cg.resolve("m.uid"), "upstream")] == ["portal_prod.identifies.user_id"]
    assert cg.info[cg.resolve("m.uid")].status == "resolved"
    with pytest.raises(GraphError):  # a table two assets *write* still clashes
        AssetGraph([_asset("a", rel, dialect="snowflake"), _asset("b", rel, dialect="snowflake")])
