"""dbt-compatible selection, table-driven over a hand-built graph, plus a few cases on a real parsed project.

The hand-built graph (keys, kinds, paths) mirrors what the loaders produce; it keeps the table fast.

    raw.orders -> stg_orders -> int_orders -> fct_orders -> revenue_report -> fx_report
    stripe.payments -> stg_payments -> int_orders                 ext.fx -> fx_report
    raw.customers -> stg_customers -> fct_orders, dim_customers
    country_codes (seed) -> fct_orders          stg_orders -> orders_snapshot
"""

from __future__ import annotations

import pytest

from sqlassets.errors import SelectionError
from sqlassets.graph import AssetGraph
from sqlassets.model import Asset, Relation
from sqlassets.selection import select_keys


def _a(key: str, kind: str, deps: tuple[str, ...] = (), *, path: str | None = None, tags: tuple[str, ...] = (),
       group: str | None = None, source: str | None = None, mat: str | None = None) -> Asset:
    ident = key.rsplit(".", 1)[-1]
    schema = key.split(".")[0] if "." in key else "main"
    return Asset(
        key=key, kind=kind, relation=Relation("db", schema, ident),
        materialization=mat or {"source": "external", "external": "external", "seed": "seed",
                                "snapshot": "snapshot", "sql": "table"}.get(kind, "view"),
        deps=deps, tags=tags, group=group, path=path,
        config={"source_name": source} if source else {},
    )


GRAPH = AssetGraph([
    _a("raw.orders", "source", path="models/_sources.yml", source="raw"),
    _a("raw.customers", "source", path="models/_sources.yml", source="raw"),
    _a("stripe.payments", "source", path="models/_sources.yml", source="stripe"),
    _a("ext.fx", "external"),
    _a("country_codes", "seed", path="seeds/country_codes.csv"),
    _a("stg_orders", "model", ("raw.orders",), path="models/staging/stg_orders.sql", tags=("staging",)),
    _a("stg_customers", "model", ("raw.customers",), path="models/staging/stg_customers.sql", tags=("staging",)),
    _a("stg_payments", "model", ("stripe.payments",), path="models/staging/stg_payments.sql", tags=("staging",)),
    _a("int_orders", "model", ("stg_orders", "stg_payments"), path="models/intermediate/int_orders.sql",
       mat="ephemeral"),
    _a("fct_orders", "model", ("int_orders", "stg_customers", "country_codes"), path="models/marts/fct_orders.sql",
       tags=("finance", "daily"), group="finance", mat="table"),
    _a("dim_customers", "model", ("stg_customers",), path="models/marts/dim_customers.sql", group="marketing",
       mat="table"),
    _a("orders_snapshot", "snapshot", ("stg_orders",), path="snapshots/orders_snapshot.sql"),
    _a("revenue_report", "sql", ("fct_orders",), path="sql/revenue_report.sql", tags=("finance",)),
    _a("fx_report", "sql", ("revenue_report", "ext.fx"), path="sql/reports/fx_report.sql"),
])

ALL = set(GRAPH.keys)
UP_FCT = {"int_orders", "stg_orders", "stg_payments", "stg_customers", "country_codes", "raw.orders",
          "stripe.payments", "raw.customers"}

CASES: list[tuple[str, object, object, set[str]]] = [
    # (id, --select, --exclude, expected keys)
    ("name", "fct_orders", None, {"fct_orders"}),
    ("plus-name", "+fct_orders", None, {"fct_orders"} | UP_FCT),
    ("name-plus", "fct_orders+", None, {"fct_orders", "revenue_report", "fx_report"}),
    ("both-plus", "+int_orders+", None, {"int_orders", "stg_orders", "stg_payments", "raw.orders", "stripe.payments",
                                         "fct_orders", "revenue_report", "fx_report"}),
    ("1-plus-name", "1+fct_orders", None, {"fct_orders", "int_orders", "stg_customers", "country_codes"}),
    ("2-plus-name", "2+fct_orders", None, {"fct_orders", "int_orders", "stg_customers", "country_codes",
                                           "stg_orders", "stg_payments", "raw.customers"}),
    ("name-plus-1", "fct_orders+1", None, {"fct_orders", "revenue_report"}),
    ("name-plus-2", "stg_orders+2", None, {"stg_orders", "int_orders", "orders_snapshot", "fct_orders"}),
    ("at-name", "@stg_customers", None,
     {"stg_customers", "dim_customers", "fct_orders", "revenue_report", "fx_report", "ext.fx"} | UP_FCT),
    # dbt: @ = the node, its descendants, and the ancestors of all of those (the node's own too)
    ("at-leaf", "@fx_report", None, {"fx_report", "revenue_report", "fct_orders", "ext.fx"} | UP_FCT),
    ("tag", "tag:finance", None, {"fct_orders", "revenue_report"}),
    ("tag-plus", "tag:staging+1", None, {"stg_orders", "stg_customers", "stg_payments", "int_orders",
                                         "fct_orders", "dim_customers", "orders_snapshot"}),
    ("tag-none", "tag:nope", None, set()),
    ("path-folder", "path:models/marts", None, {"fct_orders", "dim_customers"}),
    ("path-folder-slash", "path:models/marts/", None, {"fct_orders", "dim_customers"}),
    ("path-file", "path:models/marts/fct_orders.sql", None, {"fct_orders"}),
    ("path-sql-folder", "path:sql", None, {"revenue_report", "fx_report"}),
    ("bare-path", "models/staging", None, {"stg_orders", "stg_customers", "stg_payments"}),
    # dbt's default fqn method: a bare folder name selects the nodes under it (not raw SQL folders)
    ("fqn-folder", "marts", None, {"fct_orders", "dim_customers"}),
    ("fqn-folder-plus", "staging+1", None, {"stg_orders", "stg_customers", "stg_payments", "int_orders",
                                            "fct_orders", "dim_customers", "orders_snapshot"}),
    ("fqn-dotted", "marts.fct_orders", None, {"fct_orders"}),
    ("fqn-method", "fqn:staging", None, {"stg_orders", "stg_customers", "stg_payments"}),
    ("path-not-prefix-of-name", "path:models/mart", None, set()),
    ("group", "group:finance", None, {"fct_orders"}),
    ("kind-model", "kind:model", None, {"stg_orders", "stg_customers", "stg_payments", "int_orders", "fct_orders",
                                        "dim_customers"}),
    ("kind-seed", "kind:seed", None, {"country_codes"}),
    ("kind-snapshot", "kind:snapshot", None, {"orders_snapshot"}),
    ("kind-source", "kind:source", None, {"raw.orders", "raw.customers", "stripe.payments"}),
    ("kind-sql", "kind:sql", None, {"revenue_report", "fx_report"}),
    ("kind-external", "kind:external", None, {"ext.fx"}),
    ("source", "source:raw", None, {"raw.orders", "raw.customers"}),
    ("source-table", "source:raw.orders", None, {"raw.orders"}),
    ("source-plus", "source:stripe+", None, {"stripe.payments", "stg_payments", "int_orders", "fct_orders",
                                             "revenue_report", "fx_report"}),
    ("wildcard", "stg_*", None, {"stg_orders", "stg_customers", "stg_payments"}),
    ("wildcard-none", "nothing_*", None, set()),
    ("wildcard-plus", "+stg_*", None, {"stg_orders", "stg_customers", "stg_payments", "raw.orders",
                                       "raw.customers", "stripe.payments"}),
    ("star", "*", None, ALL),
    ("union-space", "stg_orders dim_customers", None, {"stg_orders", "dim_customers"}),
    ("union-list", ["stg_orders", "dim_customers kind:seed"], None, {"stg_orders", "dim_customers",
                                                                     "country_codes"}),
    ("intersection", "tag:finance,kind:sql", None, {"revenue_report"}),
    ("intersection-graph", "+fct_orders,kind:source", None, {"raw.orders", "raw.customers", "stripe.payments"}),
    ("intersection-3", "+fct_orders,tag:staging,stg_c*", None, {"stg_customers"}),
    ("union-of-intersections", "tag:finance,kind:model kind:seed", None, {"fct_orders", "country_codes"}),
    ("exclude", "+fct_orders", "kind:source", {"fct_orders"} | UP_FCT - {"raw.orders", "raw.customers",
                                                                         "stripe.payments"}),
    ("exclude-only", None, "tag:finance kind:source ext.fx", ALL - {"fct_orders", "revenue_report", "raw.orders",
                                                                     "raw.customers", "stripe.payments", "ext.fx"}),
    ("exclude-graph-op", "stg_orders+", "fct_orders+", {"stg_orders", "int_orders", "orders_snapshot"}),
    ("exclude-all", "tag:finance", "tag:finance", set()),
    ("nothing-selects-all", None, None, ALL),
    ("materialized", "config.materialized:table", None, {"fct_orders", "dim_customers", "revenue_report",
                                                         "fx_report"}),
]


@pytest.mark.parametrize(("select", "exclude", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_selection(select: object, exclude: object, expected: set[str]) -> None:
    got = select_keys(GRAPH, select, exclude)
    assert set(got) == expected
    assert got == GRAPH.sort(got), "selection comes back in topological order"
    assert len(got) == len(set(got))


BAD = [
    ("unknown-method", "foo:bar", "foo"),
    ("unknown-kind", "kind:table", "table"),
    ("trailing-plus-only", "3+", "3+"),
    ("double-plus", "++x", "++x"),
    ("lonely-plus", "+", "+"),
    ("at-with-plus", "@fct_orders+", "@fct_orders+"),
    ("empty-intersection", "fct_orders,", "fct_orders,"),
    ("unknown-name", "fct_ordrs", "fct_ordrs"),
    ("raw-sql-folder-is-not-a-dbt-fqn", "reports", "reports"),
    ("empty-method-value", "tag:", "tag:"),
    ("plus-on-both-sides-at", "+@x", "+@x"),
]


@pytest.mark.parametrize(("select", "mentions"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_selectors_raise_one_line_errors(select: str, mentions: str) -> None:
    with pytest.raises(SelectionError) as info:
        select_keys(GRAPH, select)
    msg = str(info.value)
    assert "\n" not in msg and mentions in msg


def test_bad_selector_in_exclude_is_an_error_too() -> None:
    with pytest.raises(SelectionError):
        select_keys(GRAPH, None, "nonexistent_model")


# -- on a real parsed project ---------------------------------------------------------------------------


def test_versioned_model_name_selects_every_version(shop_graph: AssetGraph) -> None:
    assert set(select_keys(shop_graph, "dim_customers")) == {"dim_customers.v1", "dim_customers.v2"}
    assert select_keys(shop_graph, "dim_customers.v1") == ["dim_customers.v1"]


def test_plain_name_selects_both_package_qualified_models(shop_graph: AssetGraph) -> None:
    """dbt selects by node name in every package; our keys are qualified only because of the clash."""
    assert set(select_keys(shop_graph, "stg_customers")) == {"shop.stg_customers", "shared_pkg.stg_customers"}
    assert select_keys(shop_graph, "shared_pkg.stg_customers") == ["shared_pkg.stg_customers"]


def test_real_project_graph_operators(shop_graph: AssetGraph) -> None:
    assert set(select_keys(shop_graph, "+customer_revenue")) == {
        "customer_revenue", "dim_customers.v2", "fct_orders", "shop.stg_customers", "raw_customers",
        "stg_orders", "stg_payments", "raw.orders", "raw.payments"}
    assert set(select_keys(shop_graph, "path:models/marts", "kind:snapshot")) == {
        "fct_orders", "customer_revenue", "legacy_customers", "dim_customers.v1", "dim_customers.v2"}
    assert set(select_keys(shop_graph, "source:raw+1")) == {"raw.orders", "raw.payments", "stg_orders", "stg_payments",
                                                      "customer_ltv"}
    assert set(select_keys(shop_graph, "group:finance,kind:model")) == {"fct_orders", "customer_revenue"}
    assert set(select_keys(shop_graph, "kind:sql")) == {"customer_ltv", "ltv_segments"}
    assert set(select_keys(shop_graph, "package:shared_pkg")) == {"shared_pkg.stg_customers", "calendar_days"}
