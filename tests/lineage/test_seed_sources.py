"""Sources declared over tables the project itself writes (mirrors dbt-labs/jaffle-shop, mattermost).

jaffle-shop loads its raw data with seeds (`seeds/jaffle-data/raw_*.csv`, schema `raw`, enabled by a
var) and reads it through `source('ecom', 'raw_customers')`, which declares no columns. dbt accepts a
seed and a source on one table; the seed's CSV header is the project's own declaration of the table's
columns. mattermost-data-warehouse (transform/snowflake-dbt) declares `source('util', 'dates')` over the
table its own `dates` model builds. Real `dbt parse`, real DuckDB; nothing mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import load, write_project

from sqlassets.errors import ConfigError
from sqlassets.lineage.build import build_lineage
from sqlassets.lineage.stats import collect
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

FILES = {
    "dbt_project.yml": """
name: seedsrc
version: "1.0"
config-version: 2
profile: seedsrc
seeds:
  seedsrc:
    +schema: raw
    loaded:
      raw_customers:
        +column_types: {id: integer}
    unloaded:
      +enabled: "{{ var('load_orders', false) }}"
""",
    "profiles.yml": "seedsrc:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: wh.duckdb, threads: 1}\n",
    # jaffle-shop's own macro: seeds go to the schema they name, models to the target schema
    "macros/generate_schema_name.sql": """
{% macro generate_schema_name(custom_schema_name, node) %}
    {% if node.resource_type == 'seed' %}{{ custom_schema_name | trim }}
    {% elif custom_schema_name is none %}{{ target.schema }}
    {% else %}{{ target.schema }}{% endif %}
{% endmacro %}
""",
    "seeds/loaded/raw_customers.csv": "id,name\n1,Ann\n2,Bob\n",
    "seeds/unloaded/raw_orders.csv": "id,customer,order_total\n1,1,12\n",
    "models/staging/__sources.yml": """
version: 2
sources:
  - name: ecom
    schema: raw
    tables:
      - name: raw_customers
      - name: raw_orders
  - name: util
    schema: main
    tables:
      - name: calendar
""",
    "models/staging/stg_customers.sql": """
with source as (select * from {{ source('ecom', 'raw_customers') }}),
renamed as (select id as customer_id, name as customer_name from source)
select * from renamed
""",
    "models/staging/stg_orders.sql": """
with source as (select * from {{ source('ecom', 'raw_orders') }}),
renamed as (select id as order_id, customer as customer_id, order_total from source)
select * from renamed
""",
    "models/marts/calendar.sql": """
select cast(d as date) as day, dayofweek(d) as dow
from range(date '2024-01-01', date '2024-01-04', interval 1 day) t(d)
""",
    "models/marts/orders_by_day.sql": """
select c.day, count(o.order_id) as orders
from {{ source('util', 'calendar') }} c left join {{ ref('stg_orders') }} o on true
group by 1
""",
}
# raw_orders' seed is disabled unless a var enables it (jaffle-shop: `load_source_data`); without it the
# data arrives some other way (jafgen, a loader)
RAW_ORDERS = "create schema raw; create table raw.raw_orders as select 7 as id, 7 as customer, 70 as order_total;"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("seedsrc"), FILES, RAW_ORDERS)


def test_a_seed_loads_the_source_over_its_table(project: Path) -> None:
    graph = load(project)  # no "same warehouse relation" error: the seed writes, the source reads
    src, off = graph["ecom.raw_customers"], graph["ecom.raw_orders"]
    assert src.deps == ("raw_customers",)
    assert [(c.name, c.type) for c in src.columns] == [("id", "integer"), ("name", None)]
    assert src.config["columns_from"] == "the header of seeds/loaded/raw_customers.csv (seed 'raw_customers')"
    # a disabled seed declares the columns of the table it would load, but builds nothing: no dependency
    assert off.deps == () and [c.name for c in off.columns] == ["id", "customer", "order_total"]
    assert "seed 'raw_orders', disabled" in off.config["columns_from"]
    assert "raw_orders" not in graph
    assert graph.built_parents("stg_orders") == ()
    # SQL naming the table reads the source (which waits for the seed), not the seed
    assert graph.by_relation("raw.raw_customers").key == "ecom.raw_customers"
    assert graph.built_parents("stg_customers") == ("raw_customers",)


def test_a_source_over_a_models_table_reads_that_model(project: Path) -> None:
    graph = load(project)
    src = graph["util.calendar"]
    assert src.deps == ("calendar",) and src.config["written_by"] == "calendar" and src.columns == ()
    assert sorted(graph.built_parents("orders_by_day")) == ["calendar", "stg_orders"]
    cg = build_lineage(load_project(project), graph).columns
    assert [cg.info[i].column for i in cg.asset_columns["util.calendar"]] == ["day", "dow"]  # the model's SQL
    up = [(r.column, r.edge) for r in cg.walk(cg.resolve("orders_by_day.day"), "upstream", filters=False)]
    assert up == [("util.calendar.day", "copy"), ("calendar.day", "copy")]
    assert cg.info[cg.resolve("orders_by_day.day")].status == "resolved"


def test_vars_enable_a_seed_as_dbt_vars_do(project: Path) -> None:
    """`--vars` reaches dbt's parse (a var enables a seed folder); changing them parses again."""
    on = load_graph(load_project(project, dbt_vars='{"load_orders": true}'))
    assert on["ecom.raw_orders"].deps == ("raw_orders",) and on["raw_orders"].kind == "seed"
    assert on.built_parents("stg_orders") == ("raw_orders",)
    off = load(project)  # the vars changed back: the manifest parsed with them is not reused
    assert "raw_orders" not in off and off["ecom.raw_orders"].deps == ()
    (project / "sqlassets.yml").write_text("vars: {load_orders: true}\n")
    try:
        assert "raw_orders" in load(project)  # sqlassets.yml `vars:` works the same
        with pytest.raises(ConfigError, match="--vars must be a mapping"):
            load_project(project, dbt_vars="[1, 2]")
    finally:
        (project / "sqlassets.yml").unlink()


def test_staging_columns_resolve_against_the_seed_header(project: Path) -> None:
    built = build_lineage(load_project(project), load(project))
    cg = built.columns
    status = {cg.nodes[i]: info.status for i, info in enumerate(cg.info)}
    assert {k: v for k, v in status.items() if k.startswith("stg_")} == {
        "stg_customers.customer_id": "resolved", "stg_customers.customer_name": "resolved",
        "stg_orders.order_id": "resolved", "stg_orders.customer_id": "resolved",
        "stg_orders.order_total": "resolved"}
    assert status["ecom.raw_customers.name"] == status["ecom.raw_orders.order_total"] == "declared"
    up = [(r.column, r.edge) for r in cg.walk(cg.resolve("stg_customers.customer_name"), "upstream")]
    assert up == [("ecom.raw_customers.name", "copy"), ("raw_customers.name", "copy")]
    data = collect(built)
    assert data["columns_by_status"]["inferred"] == data["columns_by_status"]["unresolved"] == 0


def test_materialize_loads_the_seed_before_the_models_reading_its_source(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SQLASSETS_DEBUG"}
    out = subprocess.run([sys.executable, "-m", "sqlassets", "--project", str(project), "materialize", "-q",
                          "-j", "2", "--vars", '{"load_orders": true}'], capture_output=True, text=True, timeout=600,
                         env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    con = duckdb.connect(str(project / "wh.duckdb"), read_only=True)
    try:
        rows = con.execute("select customer_id, customer_name from stg_customers order by 1").fetchall()
        orders = con.execute("select order_id, customer_id, order_total from stg_orders").fetchall()
        by_day = con.execute("select count(*) from orders_by_day").fetchone()
    finally:
        con.close()
    assert rows == [(1, "Ann"), (2, "Bob")] and orders == [(1, 1, 12)]  # both seeds loaded first
    assert by_day == (3,)  # the model behind the source was built first
