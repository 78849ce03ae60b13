"""Lineage reads a Snowflake catalog (fakesnow in server mode, a real dbt-snowflake project pointing at it).

A source with no declared columns whose table exists in the warehouse resolves from INFORMATION_SCHEMA
(one query per database, not per table) instead of being inferred; the catalog is snapshotted in the
state dir so warm runs send nothing; `--catalog warehouse` refreshes; an unreachable warehouse leaves
lineage offline in `auto` (quickly, and not retried on every run) and is a one-line error when asked for.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))
from snowflake_support import PYTHON, connect, fakesnow_server, free_port, profile  # noqa: E402, F401

from sqlassets.errors import UserError  # noqa: E402
from sqlassets.lineage import catalog as catalog_mod  # noqa: E402
from sqlassets.lineage.build import build_lineage  # noqa: E402
from sqlassets.loaders import load_graph  # noqa: E402
from sqlassets.project import load_project  # noqa: E402

DB = "SQLA_LINEAGE"
SOURCES = """version: 2
sources:
  - name: crm
    schema: crm
    tables:
      - name: customers   # no columns declared: the warehouse has them
      - name: leads       # not in the warehouse: stays inferred
"""
STG = "select * from {{ source('crm', 'customers') }}\n"
MART = ("select c.customer_id, c.email, l.score from {{ ref('stg_customers') }} c "
        "join {{ source('crm', 'leads') }} l on l.customer_id = c.customer_id\n")


def make(root: Path, port: int) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: sfshop\nversion: '1.0'\nprofile: sfshop\nconfig-version: 2\n")
    (root / "profiles.yml").write_text(profile(port, DB))
    (root / "models" / "sources.yml").write_text(SOURCES)
    (root / "models" / "stg_customers.sql").write_text(STG)
    (root / "models" / "customer_scores.sql").write_text(MART)
    return root


@pytest.fixture(scope="module")
def project(fakesnow_port: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("dbt.adapters.snowflake", reason="dbt-snowflake (the snowflake extra) is not installed")
    conn = connect(fakesnow_port)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {DB}")
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {DB}.crm")
    cur.execute(f"CREATE OR REPLACE TABLE {DB}.crm.customers (customer_id INTEGER, email VARCHAR, country VARCHAR)")
    conn.close()
    return make(tmp_path_factory.mktemp("sfcat") / "sfshop", fakesnow_port)


def build(root: Path, mode: str = "auto"):
    project = load_project(root)
    graph = load_graph(project)
    return build_lineage(project, graph, catalog=mode)


def status(b, column: str) -> str:
    return b.columns.info[b.columns.resolve(column)].status


def test_source_columns_come_from_the_warehouse_then_from_the_snapshot(project: Path) -> None:
    offline = build(project, "offline")
    assert offline.stats.catalog.startswith("offline (--catalog offline)")
    assert "*" in offline.columns.assets["stg_customers"].unresolved  # select * over unknown columns
    assert status(offline, "crm.customers.email") == "inferred"

    first = build(project)  # auto, no snapshot yet: asks the warehouse once
    assert first.stats.catalog.startswith("snowflake catalog from INFORMATION_SCHEMA, fetched now"), first.stats.catalog
    assert "1 query" in first.stats.catalog  # one database: one query, not one per table
    rec = first.columns.assets["stg_customers"]
    assert rec.columns == ("customer_id", "email", "country") and not rec.unresolved
    assert status(first, "crm.customers.email") == "declared"
    assert status(first, "crm.customers.country") == "declared"  # nobody reads it; the catalog knows it
    assert status(first, "crm.leads.score") == "inferred"  # not in the warehouse: still a guess
    up = {r.column for r in first.columns.walk(first.columns.resolve("customer_scores.email"), "upstream")}
    assert "crm.customers.email" in up

    warm = build(project)  # the snapshot: nothing sent
    assert "cached" in warm.stats.catalog and "fetched now" not in warm.stats.catalog
    assert warm.columns.assets["stg_customers"].columns == ("customer_id", "email", "country")


def test_catalog_warehouse_refreshes_the_snapshot(project: Path, fakesnow_port: int) -> None:
    build(project)
    conn = connect(fakesnow_port)
    conn.cursor().execute(f"ALTER TABLE {DB}.crm.customers ADD COLUMN segment VARCHAR")
    conn.close()
    assert "segment" not in build(project).columns.assets["stg_customers"].columns  # auto: the snapshot
    fresh = build(project, "warehouse")
    assert "fetched now" in fresh.stats.catalog
    assert fresh.columns.assets["stg_customers"].columns[-1] == "segment"
    assert "segment" in build(project).columns.assets["stg_customers"].columns  # the refreshed snapshot


def test_unreachable_warehouse_auto_stays_offline_warehouse_mode_fails(project: Path, tmp_path: Path) -> None:
    root = make(tmp_path / "gone", free_port())  # nothing listens there
    b = build(root)
    assert b.stats.catalog.startswith("offline (snowflake warehouse not reachable: 127.0.0.1:"), b.stats.catalog
    assert status(b, "crm.customers.email") == "inferred"
    again = build(root)  # not retried for a while: the warm path sends nothing
    assert again.stats.catalog.startswith("offline (snowflake warehouse unreachable ")
    with pytest.raises(UserError, match="^--catalog warehouse: 127.0.0.1:[0-9]+ is not reachable"):
        build(root, "warehouse")


def test_cli_stats_names_the_catalog_and_rejects_bad_modes(project: Path) -> None:
    run = subprocess.run([PYTHON, "-m", "sqlassets", "--project", str(project), "lineage", "--stats",
                          "--catalog", "warehouse"], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "catalog: snowflake catalog from INFORMATION_SCHEMA, fetched now" in run.stdout
    bad = subprocess.run([PYTHON, "-m", "sqlassets", "--project", str(project), "lineage", "--stats",
                          "--catalog", "live"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "error: unknown --catalog 'live'; use one of auto, warehouse, offline")


def test_reachability_check_is_bounded() -> None:
    with pytest.raises(UserError, match="is not reachable"):
        catalog_mod.reachable("127.0.0.1", free_port(), timeout=1.0)


BQ_ASSET = """-- materialized: table
-- dialect: bigquery
select * from {raw}.customers where country <> 'XX'
"""


def test_bigquery_catalog_through_the_same_adapter_interface(bq_emulator, tmp_path: Path) -> None:
    """BigQuery (the emulator): one INFORMATION_SCHEMA script over the project's datasets fills a
    `select *` over an undeclared table."""
    import uuid

    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    raw = f"raw_{uuid.uuid4().hex[:8]}"
    client = bigquery.Client(project="sqlassets-test", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=bq_emulator.endpoint))
    client.create_dataset(f"sqlassets-test.{raw}")
    try:
        client.query(f"CREATE TABLE `sqlassets-test.{raw}.customers` (customer_id INT64, country STRING, "
                     "signed_up DATE)").result()
        root = tmp_path / "bq"
        (root / "sql").mkdir(parents=True)
        (root / "sqlassets.yml").write_text(
            "sql_paths: [sql]\nwarehouse: {type: bigquery, method: oauth, project: sqlassets-test, "
            f"dataset: mart, location: US, api_endpoint: '{bq_emulator.endpoint}'}}\n")
        (root / "sql" / "active_customers.sql").write_text(BQ_ASSET.format(raw=raw))
        b = build(root)
        assert b.stats.catalog.startswith("bigquery catalog from INFORMATION_SCHEMA, fetched now"), b.stats.catalog
        assert "1 query" in b.stats.catalog
        assert b.columns.assets["active_customers"].columns == ("customer_id", "country", "signed_up")
        assert status(b, f"{raw}.customers.signed_up") == "declared"
    finally:
        client.delete_dataset(f"sqlassets-test.{raw}", delete_contents=True, not_found_ok=True)
