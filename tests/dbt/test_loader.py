"""dbt loader on real `dbt parse` output: tests/fixtures/shop, the sample project, a generated project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from conftest import REPO, copy_fixture, load

from sqlassets.dbt.loader import assets_from_manifest, read_manifest
from sqlassets.graph import AssetGraph

DBT_KEYS = {
    "raw_customers", "country_codes",                      # seeds
    "raw.orders", "raw.payments",                          # sources
    "stg_orders", "stg_payments", "shop.stg_customers",    # staging (stg_customers clashes with the package)
    "shared_pkg.stg_customers", "calendar_days",           # package models
    "fct_orders", "customer_revenue", "legacy_customers",  # marts
    "dim_customers.v1", "dim_customers.v2",                # versioned model
    "orders_snapshot",                                     # snapshot
}


def dbt_assets(graph: AssetGraph) -> dict:
    return {a.key: a for a in graph if a.unique_id}


def test_every_enabled_dbt_node_is_an_asset_and_nothing_else(shop_graph: AssetGraph) -> None:
    assert set(dbt_assets(shop_graph)) == DBT_KEYS


@pytest.mark.parametrize(
    ("key", "kind", "materialization", "relation"),
    [
        ("raw.orders", "source", "external", "shop.raw.orders"),
        ("raw_customers", "seed", "seed", "shop.main.raw_customers"),
        ("orders_snapshot", "snapshot", "snapshot", "shop.snapshots.orders_snapshot"),
        ("stg_orders", "model", "view", "shop.main.stg_orders"),
        ("fct_orders", "model", "table", "shop.main.fct_orders"),
        ("calendar_days", "model", "view", "shop.main_shared.calendar_days"),
    ],
)
def test_kind_materialization_relation(shop_graph: AssetGraph, key: str, kind: str, materialization: str,
                                       relation: str) -> None:
    a = shop_graph[key]
    assert (a.kind, a.materialization, str(a.relation)) == (kind, materialization, relation)
    assert a.dialect == "duckdb"


def test_sources_are_external_with_declared_columns(shop_graph: AssetGraph) -> None:
    orders, payments = shop_graph["raw.orders"], shop_graph["raw.payments"]
    assert orders.is_external and payments.is_external
    assert orders.deps == () and payments.deps == ()
    assert [(c.name, c.type) for c in orders.columns] == [
        ("order_id", "bigint"), ("customer_id", "bigint"), ("amount", "decimal(18,2)"),
        ("status", "varchar"), ("updated_at", "timestamp")]
    assert orders.column("ORDER_ID").description == "Order primary key."
    assert payments.columns == ()  # declared without columns
    assert orders.description == "One row per order."
    assert orders.owner == "platform@example.com"  # source-level meta.owner
    assert orders.unique_id == "source.shop.raw.orders"


def test_seed_columns_come_from_the_csv_header(shop_graph: AssetGraph) -> None:
    seed = shop_graph["raw_customers"]
    assert [c.name for c in seed.columns] == ["id", "first_name", "last_name", "email", "signup_date"]
    assert seed.column("id").type == "integer"  # +column_types in dbt_project.yml
    assert seed.column("email").description == "Primary e-mail address."  # from seeds/_seeds.yml
    assert seed.description == "Customers exported from the CRM."
    assert [c.name for c in shop_graph["country_codes"].columns] == ["code", "country_name"]
    assert seed.raw_sql is None and seed.path == "seeds/raw_customers.csv"


def test_snapshot_is_an_asset_downstream_of_its_ref(shop_graph: AssetGraph) -> None:
    snap = shop_graph["orders_snapshot"]
    assert snap.deps == ("stg_orders",)
    assert snap.config.get("strategy") == "timestamp"
    assert "orders_snapshot" in shop_graph.children("stg_orders")


def test_ephemeral_model_is_not_an_asset_and_is_linked_through(shop_graph: AssetGraph) -> None:
    assert "int_order_payments" not in shop_graph
    assert all("int_order_payments" not in a.deps for a in shop_graph)
    # fct_orders refs the ephemeral (-> stg_orders, stg_payments) and stg_customers directly.
    assert set(shop_graph["fct_orders"].deps) == {"stg_orders", "stg_payments", "shop.stg_customers"}
    assert "fct_orders" in shop_graph.children("stg_payments")


def test_versioned_model_keeps_each_version(shop_graph: AssetGraph) -> None:
    v1, v2 = shop_graph["dim_customers.v1"], shop_graph["dim_customers.v2"]
    assert (v1.version, v2.version) == ("1", "2")
    assert (v1.relation.identifier, v2.relation.identifier) == ("dim_customers_v1", "dim_customers_v2")
    assert v1.unique_id == "model.shop.dim_customers.v1"
    assert [c.name for c in v1.columns] == ["customer_id", "first_name", "last_name"]
    assert [c.name for c in v2.columns] == ["customer_id", "full_name", "email"]
    # An unpinned ref resolves to latest_version (2); ref(..., v=1) pins v1.
    assert "dim_customers.v2" in shop_graph["customer_revenue"].deps
    assert shop_graph["legacy_customers"].deps == ("dim_customers.v1",)
    assert "dim_customers" not in shop_graph


def test_disabled_model_is_left_out(shop_graph: AssetGraph) -> None:
    assert "old_report" not in shop_graph
    assert not any(a.path and "old_report" in a.path for a in shop_graph)


def test_name_clash_across_packages_is_package_qualified_only_there(shop_graph: AssetGraph) -> None:
    ours, theirs = shop_graph["shop.stg_customers"], shop_graph["shared_pkg.stg_customers"]
    assert (ours.package, theirs.package) == ("shop", "shared_pkg")
    assert "stg_customers" not in shop_graph
    assert str(theirs.relation) == "shop.main_shared.stg_customers"
    assert ours.deps == ("raw_customers",)
    # No clash: unqualified even though it comes from a package.
    assert shop_graph["calendar_days"].package == "shared_pkg"


def test_tags_meta_owner_group_description_columns(shop_graph: AssetGraph) -> None:
    fct = shop_graph["fct_orders"]
    assert set(fct.tags) == {"finance", "daily"}
    assert fct.group == "finance"
    assert fct.owner == "alice@example.com"  # meta.owner wins over the group's owner
    assert fct.meta.get("owner") == "alice@example.com"
    assert fct.description == "One row per paid order with the customer's e-mail."
    assert [(c.name, c.type, c.description) for c in fct.columns] == [
        ("order_id", "bigint", "Order primary key."),
        ("amount", "decimal(18,2)", "Order amount in EUR."),
        ("email", "varchar", ""),
    ]
    rev = shop_graph["customer_revenue"]
    assert rev.group == "finance" and rev.owner == "finance@example.com"  # the group's owner
    assert shop_graph["stg_orders"].tags == ("staging",)  # folder-level +tags
    assert shop_graph["stg_orders"].column("status").type is None  # declared without data_type


def test_paths_raw_sql_and_code_version(shop_graph: AssetGraph) -> None:
    fct = shop_graph["fct_orders"]
    assert fct.path == "models/marts/fct_orders.sql"
    assert "ref('int_order_payments')" in fct.raw_sql
    assert fct.compiled_sql is None  # `dbt parse` does not compile
    versions = {a.code_version for a in dbt_assets(shop_graph).values() if a.kind != "source"}
    assert all(v and len(v) >= 8 for v in versions)
    assert len(versions) == len([a for a in dbt_assets(shop_graph).values() if a.kind != "source"])


def test_second_load_uses_the_manifest_without_dbt(shop_root: Path) -> None:
    """With a fresh manifest, loading neither re-parses nor even imports dbt (new process to see imports)."""
    manifest = shop_root / "target" / "manifest.json"
    before = manifest.stat().st_mtime_ns
    code = (
        "import sys; from pathlib import Path; from sqlassets.project import load_project; "
        "from sqlassets.loaders import load_graph; "
        f"g = load_graph(load_project(Path({str(shop_root)!r}))); "
        "print(len(g), 'dbt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [str(len(load(shop_root))), "False"]
    assert manifest.stat().st_mtime_ns == before


def test_stale_manifest_is_reparsed_and_code_version_follows_the_sql(shop_copy: Path) -> None:
    before = load(shop_copy)
    manifest = shop_copy / "target" / "manifest.json"
    old_mtime = manifest.stat().st_mtime_ns
    sql = shop_copy / "models" / "marts" / "fct_orders.sql"
    time.sleep(0.01)
    sql.write_text(sql.read_text().replace("c.email", "c.email, c.first_name"))
    after = load(shop_copy)
    assert manifest.stat().st_mtime_ns > old_mtime
    assert "c.first_name" in after["fct_orders"].raw_sql
    assert after["fct_orders"].code_version != before["fct_orders"].code_version
    assert after["stg_orders"].code_version == before["stg_orders"].code_version


def test_compiled_sql_is_read_when_dbt_has_compiled(shop_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After `dbt compile` (no warehouse tables needed on DuckDB), assets carry compiled SQL."""
    from dbt.cli.main import dbtRunner

    # dbt-duckdb opens the profile's relative path (shop.duckdb) from the working directory, as a user
    # running dbt in the project would: run there, not in the repository root.
    monkeypatch.chdir(shop_copy)

    result = dbtRunner().invoke(["compile", "--project-dir", str(shop_copy), "--profiles-dir", str(shop_copy),
                                 "--quiet", "--log-level", "none", "--log-path", str(shop_copy / "logs")])
    assert result.success, result.exception
    g = load(shop_copy)
    compiled = g["fct_orders"].compiled_sql
    assert compiled and "{{" not in compiled
    # The ephemeral parent is inlined as a CTE by dbt.
    assert "__dbt__cte__int_order_payments" in compiled


@pytest.mark.parametrize("version", [10, 11, 12])
def test_manifest_schema_versions_10_to_12_are_read(shop_root: Path, tmp_path: Path, version: int) -> None:
    data = orjson.loads((shop_root / "target" / "manifest.json").read_bytes())
    data["metadata"]["dbt_schema_version"] = f"https://schemas.getdbt.com/dbt/manifest/v{version}.json"
    path = tmp_path / "manifest.json"
    path.write_bytes(orjson.dumps(data))
    assets = assets_from_manifest(read_manifest(path), shop_root)
    assert {a.key for a in assets} == DBT_KEYS


@pytest.mark.parametrize("profile_line", ["profile: bare\n", ""], ids=["profile-key", "no-profile-key"])
def test_zero_config_project_without_profiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              profile_line: str) -> None:
    """Only dbt_project.yml + models: no profiles.yml anywhere (HOME is empty) still loads.

    dbt itself refuses to parse without a profile; sqlassets supplies a DuckDB one in its state dir.
    """
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "bare"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text(f"name: bare\nversion: '1.0'\nconfig-version: 2\n{profile_line}")
    (root / "models" / "a.sql").write_text("select 1 as id\n")
    (root / "models" / "b.sql").write_text("select * from {{ ref('a') }}\n")
    g = load(root)
    assert [a.key for a in g] == ["a", "b"]
    assert g["b"].deps == ("a",)


# -- the sample project ---------------------------------------------------------------------------


def test_sample_project_loads_as_documented(sample_graph: AssetGraph) -> None:
    kinds: dict[str, list[str]] = {}
    for a in sample_graph:
        kinds.setdefault(a.kind, []).append(a.key)
    assert len(kinds.get("seed", [])) >= 3
    assert any(k.startswith("raw.") for k in kinds.get("source", []))
    assert len(kinds.get("sql", [])) >= 3
    marts = [a for a in sample_graph if a.path and a.path.startswith("models/marts/")]
    assert len(marts) >= 2
    fct = sample_graph["fct_daily_customer_events"]
    assert fct.materialization == "incremental"
    assert fct.config.get("incremental_strategy") == "microbatch" or fct.config.get("partitioned")
    staging = [a for a in sample_graph if a.kind == "model" and a.path and a.path.startswith("models/staging/")]
    assert staging and all(a.materialization == "view" for a in staging)


# -- the generated project (the benchmark's shape, small) ------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from gen_project import generate
    finally:
        sys.path.remove(str(REPO / "bench"))
    root = tmp_path_factory.mktemp("gen") / "p120"
    generate(root, n_models=120, seed=3)
    return root


def test_generated_project_loads_every_model_and_source(generated: Path) -> None:
    manifest = json.loads((generated / "target" / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    ephemeral = [n for n in models if n["config"]["materialized"] == "ephemeral"]
    g = load(generated)
    assert len([a for a in g if a.kind == "model"]) == len(models) - len(ephemeral) == 120 - len(ephemeral)
    assert len([a for a in g if a.kind == "source"]) == len(manifest["sources"])
    # every model reads something: the generator never emits a model without refs/sources
    assert all(a.deps for a in g if a.kind == "model")
    marts = [a for a in g if a.key.startswith(("fct_", "dim_"))]
    assert marts and all(a.group and a.owner for a in marts)


def test_generated_project_is_deterministic(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from gen_project import build_models
    finally:
        sys.path.remove(str(REPO / "bench"))
    a = build_models(300, 7)[1]
    b = build_models(300, 7)[1]
    c = build_models(300, 8)[1]
    assert [(m.name, m.sql) for m in a] == [(m.name, m.sql) for m in b]
    assert [(m.name, m.sql) for m in a] != [(m.name, m.sql) for m in c]


def test_copy_fixture_leaves_run_artifacts_behind(tmp_path: Path) -> None:
    root = copy_fixture("shop", tmp_path / "s")
    assert not (root / "target").exists() and (root / "dbt_project.yml").exists()
    assert os.listdir(root / "dbt_packages") == ["shared_pkg"]


def test_dialect_follows_the_project_adapter_not_the_parse_profile(tmp_path: Path) -> None:
    """A Snowflake project parsed without a Snowflake profile still parses its SQL as Snowflake."""
    from sqlassets.dbt.loader import assets_from_manifest, project_dialect
    from sqlassets.project import load_project

    root = tmp_path / "p"
    root.mkdir()
    (root / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nprofile: p\n")
    (root / "sqlassets.yml").write_text("warehouse: {type: snowflake, database: ANALYTICS, schema: DBT}\n")
    manifest = {"metadata": {"adapter_type": "duckdb"}, "nodes": {}, "sources": {}}
    project = load_project(root)
    assert project_dialect(project, manifest) == "snowflake"
    (root / "sqlassets.yml").unlink()
    bare = load_project(root)
    if bare.profiles_dir is None:  # no profile anywhere: the manifest's adapter says
        assert project_dialect(bare, {"metadata": {"adapter_type": "snowflake"}}) == "snowflake"
    node = {"resource_type": "model", "name": "m", "package_name": "p", "raw_code": "select 1",
            "config": {"materialized": "view"}, "database": "d", "schema": "s", "original_file_path": "models/m.sql"}
    got = assets_from_manifest({**manifest, "nodes": {"model.p.m": node}}, root, "snowflake")
    assert got[0].dialect == "snowflake"
