"""Raw SQL loader: headers, dependencies inferred with sqlglot, matching against dbt relations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import load

from sqlassets.graph import AssetGraph
from sqlassets.loaders.raw_sql import parse_header


@pytest.fixture(scope="module")
def sql_graph(sql_only_root: Path) -> AssetGraph:
    return load(sql_only_root)


def test_every_sql_file_is_one_asset_plus_externals(sql_graph: AssetGraph) -> None:
    sql = {a.key: a.path for a in sql_graph if a.kind == "sql"}
    assert sql == {
        "orders_clean": "sql/orders_clean.sql",
        "daily_revenue": "sql/revenue_by_day.sql",  # declared name wins over the file stem
        "order_count": "sql/order_count.sql",
        "fx_snapshot": "sql/fx_snapshot.sql",
        "customer_summary": "sql/marts/customer_summary.sql",  # file stem, in a sub-folder
    }
    externals = {a.key for a in sql_graph if a.kind == "external"}
    assert externals == {"raw.orders", "raw.customers", "raw.payments", "crm.main.customers"}


def test_header_fields(sql_graph: AssetGraph) -> None:
    a = sql_graph["orders_clean"]
    assert a.materialization == "view"
    assert a.owner == "data-eng@example.com"
    assert a.tags == ("staging",)
    assert a.description == "Orders without test accounts."
    d = sql_graph["daily_revenue"]
    assert d.materialization == "incremental"
    assert d.tags == ("finance", "daily")
    assert d.config["partitioned"] == "daily"
    assert d.config["partition_column"] == "order_date"
    assert str(d.config["partition_start"]) == "2024-01-01"
    assert d.config["unique_key"] == "order_date"
    s = sql_graph["customer_summary"]
    assert (s.owner, s.group) == ("analytics@example.com", "finance")
    # No header: a table, keyed by file stem, no owner.
    f = sql_graph["fx_snapshot"]
    assert (f.materialization, f.owner, f.tags) == ("table", None, ())
    assert all(a.dialect == "duckdb" for a in sql_graph if a.kind == "sql")


def test_ctes_are_not_dependencies(sql_graph: AssetGraph) -> None:
    assert set(sql_graph["orders_clean"].deps) == {"raw.orders", "raw.customers"}  # not test_accounts
    assert set(sql_graph["daily_revenue"].deps) == {"orders_clean", "raw.payments"}  # not payments/per_day
    # A CTE named like another asset shadows it: no edge to the orders_clean asset.
    assert sql_graph["order_count"].deps == ("raw.orders",)
    assert set(sql_graph["customer_summary"].deps) == {"daily_revenue", "crm.main.customers"}


def test_table_functions_are_not_dependencies(sql_graph: AssetGraph) -> None:
    assert sql_graph["fx_snapshot"].deps == ()


def test_external_assets_are_observed_and_shared(sql_graph: AssetGraph) -> None:
    ext = sql_graph["raw.orders"]
    assert ext.is_external and ext.materialization == "external" and ext.deps == ()
    assert str(ext.relation) == "raw.orders"
    assert set(sql_graph.children("raw.orders")) == {"orders_clean", "order_count"}
    assert str(sql_graph["crm.main.customers"].relation) == "crm.main.customers"


def test_sql_asset_relations_and_code_versions(sql_graph: AssetGraph) -> None:
    a = sql_graph["daily_revenue"]
    assert a.relation.identifier == "daily_revenue" and a.relation.schema == "main"
    assert a.raw_sql.startswith("-- name: daily_revenue")
    versions = [x.code_version for x in sql_graph if x.kind == "sql"]
    assert all(versions) and len(set(versions)) == len(versions)


def test_code_version_changes_with_the_file(sql_only_copy: Path) -> None:
    before = load(sql_only_copy)["orders_clean"].code_version
    f = sql_only_copy / "sql" / "orders_clean.sql"
    f.write_text(f.read_text().replace("o.amount", "o.amount * 1.0 as amount"))
    assert load(sql_only_copy)["orders_clean"].code_version != before
    assert load(sql_only_copy)["orders_clean"].code_version == load(sql_only_copy)["orders_clean"].code_version


def test_loading_sql_only_writes_nothing(sql_only_copy: Path) -> None:
    from conftest import tree

    snap = tree(sql_only_copy)
    load(sql_only_copy)
    assert tree(sql_only_copy) == snap


# -- SQL assets next to a dbt project (tests/fixtures/shop/sql) ---------------------------------------


def test_sql_reads_dbt_model_source_other_sql_and_unknown_table(shop_graph: AssetGraph) -> None:
    ltv = shop_graph["customer_ltv"]
    # main.customer_revenue -> the dbt model; raw.orders -> the dbt source; finance_ext.fx_rates -> external.
    assert set(ltv.deps) == {"customer_revenue", "raw.orders", "finance_ext.fx_rates"}
    assert shop_graph["raw.orders"].kind == "source"  # matched, not duplicated as an external
    assert shop_graph["finance_ext.fx_rates"].kind == "external"
    assert shop_graph["ltv_segments"].deps == ("customer_ltv",)
    assert ltv.tags == ("finance", "weekly") and ltv.owner == "analytics@example.com"
    assert "ltv_segments" in shop_graph.downstream("customer_revenue")


def test_matching_is_case_insensitive_and_accepts_qualified_names(shop_copy: Path) -> None:
    (shop_copy / "sql" / "mixed_refs.sql").write_text(
        "select o.order_id, c.full_name, s.code\n"
        "from SHOP.MAIN.FCT_ORDERS as o\n"
        "join dim_customers_v2 as c using (customer_id)\n"
        "join main.Country_Codes as s on s.code = 'FR'\n"
    )
    g = load(shop_copy)
    assert set(g["mixed_refs"].deps) == {"fct_orders", "dim_customers.v2", "country_codes"}
    assert not [a for a in g if a.kind == "external" and "fct_orders" in a.key.lower()]


def test_dialect_header_parses_with_that_dialect(sql_only_copy: Path) -> None:
    (sql_only_copy / "sql" / "sf.sql").write_text(
        "-- dialect: snowflake\nselect v:customer.name::string as name from raw.events_json\n"
    )
    g = load(sql_only_copy)
    assert g["sf"].dialect == "snowflake"
    assert g["sf"].deps == ("raw.events_json",)


def test_dbt_models_cannot_depend_on_sql_assets_but_sql_can_chain(shop_graph: AssetGraph) -> None:
    for a in shop_graph:
        if a.unique_id:  # a dbt node
            assert not any(shop_graph[d].kind == "sql" for d in a.deps)
    assert shop_graph.upstream("ltv_segments") >= {"customer_ltv", "customer_revenue", "fct_orders", "raw.orders"}


# -- header parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-- name: a\n-- tags: x, y ,z\nselect 1", {"name": "a", "tags": ["x", "y", "z"]}),
        ("\n\n-- owner: me@example.com\n\nselect 1", {"owner": "me@example.com"}),
        ("-- just a comment\n-- name: b\nselect 1", {"name": "b"}),
        ("select 1 -- name: not_a_header", {}),
        ("-- name: c\n\n-- owner: after_blank_line_is_not_header\nselect 1", {"name": "c"}),
        ("--materialized:view\nselect 1", {"materialized": "view"}),
        ("-- Description: Upper-case key\nselect 1", {"description": "Upper-case key"}),
    ],
)
def test_parse_header(text: str, expected: dict) -> None:
    assert parse_header(text, "x.sql") == expected


# -- the sample project's SQL folder -------------------------------------------------------------------


def test_sample_sql_assets_read_dbt_models_and_each_other(sample_graph: AssetGraph) -> None:
    sql = [a for a in sample_graph if a.kind == "sql"]
    assert len(sql) >= 3
    dep_kinds = {sample_graph[d].kind for a in sql for d in a.deps}
    assert "model" in dep_kinds and "sql" in dep_kinds
    assert not [a.key for a in sample_graph if a.kind == "external"], "sample SQL reads only known tables"


def test_mtime_of_sql_files_does_not_make_the_manifest_stale(shop_copy: Path) -> None:
    """SQL files are not dbt files: editing one must not trigger a (slow) dbt parse."""
    manifest = shop_copy / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    time.sleep(0.01)
    (shop_copy / "sql" / "ltv_segments.sql").touch()
    load(shop_copy)
    assert manifest.stat().st_mtime_ns == before


def test_utf8_bom_does_not_hide_the_header(tmp_path: Path) -> None:
    """Editors on Windows save a BOM; the header's first line must still be read (and the SQL parse)."""
    (tmp_path / "sql").mkdir()
    (tmp_path / "sqlassets.yml").write_text("sql_paths: [sql]\n")
    (tmp_path / "sql" / "bom.sql").write_bytes("-- name: with_bom\n-- materialized: view\nselect 1 as x\n"
                                               .encode("utf-8-sig"))
    graph = load(tmp_path)
    assert graph["with_bom"].materialization == "view"
    assert not graph["with_bom"].raw_sql.startswith("\ufeff")
