"""Whole-project lineage on the shop fixture: real `dbt parse`, real `dbt compile` (sqlassets.dbt.compile)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlassets.errors import UserError
from sqlassets.lineage.build import build_lineage
from sqlassets.project import load_project


@pytest.fixture(scope="module")
def built(shop_root: Path, shop_graph):
    return build_lineage(load_project(shop_root), shop_graph, use_cache=False)


def _edges(cg, column: str) -> set[str]:
    nid = cg.resolve(column)
    from sqlassets.lineage.edges import EDGE_KINDS

    return {f"{cg.nodes[src]} {EDGE_KINDS[code]}" for src, code in cg.up[nid]}


def test_every_sql_asset_is_parsed(built, shop_graph):
    st = built.stats
    with_sql = [a.key for a in shop_graph if a.kind in ("model", "snapshot", "sql")]
    assert st.sql_assets + len(st.no_sql) == len(with_sql)
    assert st.computed == st.sql_assets and st.from_cache == 0


def test_staging_renames_a_seed_column(built):
    assert _edges(built.columns, "shop.stg_customers.customer_id") == {"raw_customers.id copy"}


def test_ephemeral_model_is_followed_through_its_inlined_cte(built):
    # fct_orders selects op.* from the ephemeral int_order_payments (inlined as __dbt__cte__ by dbt)
    edges = _edges(built.columns, "fct_orders.amount")
    assert "stg_orders.amount copy" in edges
    assert "shop.stg_customers.customer_id filter" in edges  # JOIN ... USING (customer_id)


def test_raw_sql_asset_reads_dbt_models_and_sources(built):
    cg = built.columns
    assert _edges(cg, "ltv_segments.segment") == {"customer_ltv.revenue transform"}
    # a CTE over a dbt source (raw.orders) joined USING a dbt model's key
    assert _edges(cg, "customer_ltv.n_orders") == {"raw.orders.customer_id filter",
                                                   "customer_revenue.customer_id filter"}


def test_transitive_upstream_reaches_the_source(built):
    cg = built.columns
    nid = cg.resolve("ltv_segments.segment")
    reached = {r.column: r for r in cg.walk(nid, "upstream")}
    assert "raw.orders.amount" in reached
    assert reached["raw.orders.amount"].depth == 5
    assert reached["customer_ltv.revenue"].depth == 1
    one_hop = cg.walk(nid, "upstream", depth=1)
    assert {r.depth for r in one_hop} == {1}
    assert len(one_hop) < len(reached)


def test_transitive_downstream(built):
    cg = built.columns
    down = {r.column for r in cg.walk(cg.resolve("raw.orders.amount"), "downstream")}
    assert {"stg_orders.amount", "fct_orders.amount", "customer_revenue.revenue", "ltv_segments.segment"} <= down


def test_undeclared_columns_are_flagged_not_hidden(built):
    cg = built.columns
    # raw.payments has no columns in YAML: stg_payments' `select *` cannot be expanded
    assert "raw.payments" in built.columns.assets["stg_payments"].unresolved["*"]
    info = cg.info[cg.resolve("stg_payments.payment_method")]
    assert info.status == "inferred"
    # fct_orders follows it as a best-effort edge with a note
    nid = cg.resolve("fct_orders.payment_method")
    assert "stg_payments has no known columns" in cg.info[nid].note
    # an external table no loader knows (read by a raw SQL file) behaves the same way
    assert "finance_ext.fx_rates has no known columns" in cg.info[cg.resolve("customer_ltv.rate")].note


def test_table_function_column_is_unresolved_with_reason(built):
    info = built.columns.info[built.columns.resolve("calendar_days.day")]
    assert info.status == "unresolved"
    assert "table function" in info.reason


def test_unknown_asset_and_column_are_user_errors(built):
    cg = built.columns
    with pytest.raises(UserError, match="unknown asset 'fct_order'.*fct_orders"):
        cg.resolve("fct_order.amount")
    with pytest.raises(UserError, match="has no column 'amout'; did you mean amount"):
        cg.resolve("fct_orders.amout")
    with pytest.raises(UserError, match="not ASSET.COLUMN"):
        cg.resolve("fct_orders")


JINJA_MODEL = """\
{% set methods = ['card', 'bank_transfer', 'gift_card'] %}
{{ config(materialized='table') }}
-- a Jinja loop generates one column per payment method
select
    order_id,
    {% for m in methods -%}
    sum(case when payment_method = '{{ m }}' then amount else 0 end) as {{ m }}_amount,
    {% endfor -%}
    sum(amount) as total_amount
from {{ ref('fct_orders') }}
{% if is_incremental() %}where order_id > (select max(order_id) from {{ this }}){% endif %}
group by 1
"""


def test_jinja_heavy_model_is_followed_through_real_dbt_compile(shop_copy: Path) -> None:
    from conftest import load

    (shop_copy / "models" / "marts" / "payment_pivot.sql").write_text(JINJA_MODEL)
    graph = load(shop_copy)  # real dbt parse of the changed project
    assert graph["payment_pivot"].compiled_sql is None or "{%" not in graph["payment_pivot"].compiled_sql
    b = build_lineage(load_project(shop_copy), graph)  # compiles through sqlassets.dbt.compile (real dbt)
    rec = b.columns.assets["payment_pivot"]
    assert rec.columns == ("order_id", "card_amount", "bank_transfer_amount", "gift_card_amount", "total_amount")
    assert _edges(b.columns, "payment_pivot.card_amount") == {
        "fct_orders.payment_method aggregate", "fct_orders.amount aggregate", "fct_orders.order_id filter"}
    assert _edges(b.columns, "payment_pivot.order_id") == {"fct_orders.order_id copy"}
