"""A Snowflake dbt project with no reachable account (tests/fixtures/snow_shop): lineage offline.

Real `dbt parse` and `dbt compile` with dbt-snowflake and a Snowflake profile whose account does not
exist: every model that compiles offline gets lineage in the Snowflake dialect (QUALIFY, LATERAL FLATTEN,
`:` paths, `::` casts, IFF, adapter-dispatched macros), sources without columns are inferred through the
staging CTE pattern, and the model whose macro queries the warehouse while compiling is listed with
that reason; nothing takes the other models down. The profile's password is never written anywhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sqlassets.lineage.build import build_lineage
from sqlassets.lineage.stats import collect
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "snow_shop"
PASSWORD = "hunter2-snow-shop-4711"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("dbt.adapters.snowflake", reason="dbt-snowflake (the snowflake extra) is not installed")
    root = tmp_path_factory.mktemp("snow") / "snow_shop"
    shutil.copytree(FIXTURE, root)
    mp = pytest.MonkeyPatch()
    mp.setenv("SNOW_SHOP_PASSWORD", PASSWORD)
    try:
        project = load_project(root)
        graph = load_graph(project)
        yield root, graph, build_lineage(project, graph)
    finally:
        mp.undo()


def test_dialect_comes_from_the_adapter(built) -> None:
    _root, graph, _b = built
    assert {a.dialect for a in graph} == {"snowflake"}


def test_offline_lineage_for_every_model_that_compiles(built) -> None:
    _root, graph, b = built
    cg = b.columns
    data = collect(b)
    failed = {row["asset"]: row["reason"] for row in data["unresolved_assets"]}
    # star models compile offline from known columns (test below); these two still need the warehouse
    assert sorted(failed) == ["orders_by_status", "orders_raw_star"]
    assert failed["orders_by_status"].startswith("needs a live warehouse to compile")
    # the reason names the macro that queries (the manifest's macro calls)
    assert "(snow_shop.distinct_values)" in failed["orders_by_status"], failed
    models = {a.key for a in graph if a.kind == "model"} - set(failed)
    statuses = [i.status for i in cg.info if i.asset in models]
    ok = sum(s in ("resolved", "inferred") for s in statuses)
    assert statuses and ok / len(statuses) >= 0.85, statuses
    # FLATTEN + `:` path + `::` cast, through the staging CTEs, to the source's inferred VARIANT column
    up = {r.column: r.edge for r in cg.walk(cg.resolve("stg_events.sku"), "upstream")}
    assert up == {"shop.events.payload": "transform"}
    # QUALIFY: the partition / order columns filter the rows
    up = {r.column: r.edge for r in cg.walk(cg.resolve("latest_orders.amount"), "upstream", depth=1)}
    assert up["stg_orders.amount"] == "copy" and up["stg_orders.ordered_at"] == "filter"
    # an adapter-dispatched macro compiled by dbt-snowflake (dateadd) parses as Snowflake SQL
    up = {r.column for r in cg.walk(cg.resolve("stg_orders.due_at"), "upstream")}
    assert up == {"shop.orders.created_at"}
    # auto: the account cannot be reached, so lineage stays offline and says so
    assert b.stats.catalog.startswith("offline (snowflake warehouse not reachable"), b.stats.catalog


def test_star_compiles_offline_from_known_columns(built) -> None:
    """dbt_utils.star-style macros (adapter.get_columns_in_relation) are answered offline from the columns the
    project knows: a model's lineage columns (through an ephemeral model, and a second wave over a model that
    compiled this way itself), a source's declared YAML columns (marked so); an unknown relation still fails."""
    _root, _graph, b = built
    cg = b.columns
    assert cg.assets["order_star_report"].columns == ("order_id", "amount")
    up = {r.column: r.edge for r in cg.walk(cg.resolve("order_star_report.amount"), "upstream", depth=1)}
    assert up == {"stg_orders.amount": "copy"}
    # the ephemeral's star listed stg_orders' columns but due_at (its except=)
    assert cg.assets["order_star_copy"].columns == ("order_id", "amount")
    up = {r.column: r.edge for r in cg.walk(cg.resolve("order_star_copy.order_id"), "upstream", depth=1)}
    assert up == {"order_star_report.order_id": "copy"}
    assert cg.assets["accounts_star"].columns == ("id", "name")
    info = cg.info[cg.resolve("accounts_star.name")]
    assert info.status == "resolved" and "declared columns of shop.accounts" in info.note, info
    failed = {row["asset"]: row["reason"] for row in collect(b)["unresolved_assets"]}
    why = failed["orders_raw_star"]
    assert why.startswith("needs a live warehouse to compile") and "(snow_shop.star_except)" in why, why
    assert "the columns of RAW.SHOP.orders are not known offline" in why, why


def test_models_compiled_from_known_columns_are_cached(built) -> None:
    """A rebuild without the lineage cache finds every offline-with-known-columns compile (both waves) in the
    compile cache: dbt does not run again."""
    root, graph, b = built
    manifest = root / ".sqlassets" / "compile" / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    shutil.rmtree(root / ".sqlassets" / "lineage")
    again = build_lineage(load_project(root), graph)
    assert manifest.stat().st_mtime_ns == before
    assert again.columns.assets["order_star_copy"].columns == b.columns.assets["order_star_copy"].columns


def test_incremental_models_compile_offline(built) -> None:
    """is_incremental() looks its table up before it sees --full-refresh: offline that says "not there"."""
    _root, _graph, b = built
    cg = b.columns
    assert cg.assets["fct_order_events"].columns == ("event_id", "customer_id", "sku", "received_at_date")
    up = {r.column: r.edge for r in cg.walk(cg.resolve("fct_order_events.sku"), "upstream", filters=False)}
    assert up == {"stg_events.sku": "copy", "shop.events.payload": "transform"}


def test_a_column_the_source_yaml_leaves_out_is_inferred(built) -> None:
    """mattermost's Salesforce account: YAML lists some columns, the staging SQL reads one more."""
    _root, _graph, b = built
    cg = b.columns
    smb = cg.info[cg.resolve("stg_accounts.is_smb")]
    assert smb.status == "inferred" and "a table declared without it" in smb.note
    assert cg.info[cg.resolve("shop.accounts.smb_mme__c")].status == "inferred"
    assert cg.info[cg.resolve("shop.accounts.name")].status == "declared"
    assert cg.info[cg.resolve("stg_accounts.account_name")].status == "resolved"


def test_the_password_is_never_written(built) -> None:
    root, _graph, _b = built
    hits = [str(Path(d) / f) for d, _, files in os.walk(root) for f in files
            if PASSWORD.encode() in (Path(d) / f).read_bytes()]
    assert hits == []
