"""The whole-project lineage snapshot: a warm run reads one file; any change gives what a cold run gives.

Real dbt parses and compiles of a small dbt project, a real DuckDB warehouse file; each case edits the
project the way a user would and compares the warm result (snapshot + per-asset caches) with a cold build
(`use_cache=False`: every model compiled and resolved again) of the same files.
"""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest
from conftest import copy_parsed, write_project

import sqlassets.lineage.build as build_mod
from sqlassets.lineage.build import build_lineage
from sqlassets.lineage.cache import LineageCache
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

PROJECT = {
    "dbt_project.yml": "name: snap\nversion: '1.0'\nprofile: snap\nmodels:\n  snap:\n    +materialized: view\n",
    "profiles.yml": "snap:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n"
                    "      threads: 1\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
                          "      - name: orders\n      - name: customers\n",
    "macros/money.sql": "{% macro money(col) %}round({{ col }} / 100.0, 2){% endmacro %}\n",
    # the staging pattern: a select * passthrough of a source without declared columns
    "models/stg_orders.sql": "with source as (select * from {{ source('raw', 'orders') }})\nselect * from source\n",
    "models/stg_customers.sql": "select id as customer_id, name from {{ source('raw', 'customers') }}\n",
    "models/orders_by_status.sql": "select status, count(*) as n from {{ ref('stg_orders') }} group by 1\n",
    "models/revenue.sql": ("select o.customer_id, c.name, {{ money('sum(o.amount)') }} as revenue\n"
                           "from {{ ref('stg_orders') }} o join {{ ref('stg_customers') }} c using (customer_id)\n"
                           "group by 1, 2\n"),
    "models/top.sql": "select customer_id, revenue from {{ ref('revenue') }} order by revenue desc limit 10\n",
}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Parsed and built once (cold: one dbt compile); each test edits its own copy."""
    root = write_project(tmp_path_factory.mktemp("snap") / "snap", PROJECT)
    project = load_project(root)
    build_lineage(project, load_graph(project))
    return root


@pytest.fixture
def root(parsed: Path, tmp_path: Path) -> Path:
    return copy_parsed(parsed, tmp_path / "snap")


def result(built) -> dict:
    """Everything a lineage build answers with: records, column graph, stats (not how it was had)."""
    cg, st = built.columns, built.stats
    return {
        "records": {k: r.to_plain() for k, r in sorted(cg.assets.items())},
        "nodes": list(cg.nodes),
        "status": list(cg.status),
        "reasons": dict(cg.reasons),
        "notes": dict(cg.notes),
        "up": [sorted(u) for u in cg.up],
        "down": [sorted(d) for d in cg.down],
        "edges": cg.edge_count,
        "stats": (st.assets, st.sql_assets, st.no_sql, st.catalog),
    }


def warm(root: Path):
    project = load_project(root)
    return build_lineage(project, load_graph(project))


def cold(root: Path):
    project = load_project(root)
    return build_lineage(project, load_graph(project), use_cache=False)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    time.sleep(0.01)  # a new mtime even on coarse clocks: the manifest must look stale
    path.write_text(text.replace(old, new))


def test_warm_run_reads_the_snapshot_and_nothing_else(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = warm(root)
    assert (root / ".sqlassets" / "lineage" / "snapshot.marshal").exists()

    def no_compile(*a, **k):
        raise AssertionError("a warm run with nothing changed must not collect or compile SQL")

    monkeypatch.setattr(build_mod, "collect_sql", no_compile)
    project = load_project(root)
    cache = LineageCache.for_state_dir(project.state_dir)
    again = build_lineage(project, load_graph(project), cache=cache)
    assert cache._loaded is None  # the per-asset cache was not even read
    assert (again.stats.computed, again.stats.from_cache) == (0, again.stats.sql_assets)
    assert result(again) == result(first)
    # inferred through the passthrough: stg_orders and the source get the columns downstream SQL reads
    assert "stg_orders.status" in again.columns.index and "raw.orders.amount" in again.columns.index


def test_editing_one_model_gives_the_cold_result(root: Path) -> None:
    warm(root)
    # a downstream model reads one more column through the passthrough: inferred columns upstream change
    edit(root / "models" / "orders_by_status.sql", "count(*) as n", "count(*) as n, max(placed_at) as last_at")
    after = warm(root)
    assert after.stats.computed == 1  # only the edited model is resolved again
    assert "raw.orders.placed_at" in after.columns.index
    assert result(after) == result(cold(root))
    # a renamed output column reaches downstream: revenue's columns change, top is resolved again
    edit(root / "models" / "revenue.sql", "as revenue\n", "as revenue_usd\n")
    edit(root / "models" / "top.sql", "customer_id, revenue from", "customer_id, revenue_usd from")
    after = warm(root)
    assert after.stats.computed == 2
    assert result(after) == result(cold(root))
    assert result(warm(root)) == result(after) and warm(root).stats.computed == 0


def test_editing_a_macro_gives_the_cold_result(root: Path) -> None:
    warm(root)
    edit(root / "macros" / "money.sql", "round({{ col }} / 100.0, 2)", "{{ col }} * 0.01 + 0 * o.order_id")
    after = warm(root)
    edges = {(e[1], e[2]) for e in after.columns.assets["revenue"].edges}
    assert ("stg_orders", "order_id") in edges  # recompiled: the macro's new column reference is there
    assert result(after) == result(cold(root))


def test_a_changed_warehouse_catalog_gives_the_cold_result(root: Path) -> None:
    warm(root)
    con = duckdb.connect(str(root / "wh.duckdb"))
    con.execute("create schema raw; create table raw.orders (id int, customer_id int, status text, amount int, "
                "placed_at date); create table raw.customers (id int, name text)")
    con.close()
    after = warm(root)
    assert "catalog read from wh.duckdb" in after.stats.catalog
    assert "raw.orders.id" in after.columns.index  # the catalog's columns, not only those SQL reads
    assert result(after) == result(cold(root))
    again = warm(root)
    assert again.stats.computed == 0 and result(again) == result(after)
    con = duckdb.connect(str(root / "wh.duckdb"))
    con.execute("alter table raw.orders add column channel text")
    con.close()
    after = warm(root)
    assert "raw.orders.channel" in after.columns.index
    assert result(after) == result(cold(root))


def test_no_cache_neither_reads_nor_writes_the_snapshot(root: Path) -> None:
    path = root / ".sqlassets" / "lineage" / "snapshot.marshal"
    path.unlink()
    cold(root)
    assert not path.exists()


def test_raw_sql_project_warehouse_change_gives_the_cold_result(tmp_path: Path) -> None:
    """No dbt at all: the warehouse catalog is the snapshot's only input besides the SQL files."""
    root = write_project(tmp_path / "wh", {
        "sqlassets.yml": "sql_paths: [sql]\nwarehouse: {type: duckdb, path: wh.duckdb}\n",
        "sql/events_clean.sql": "select * from raw.events where kind <> 'test'\n",
    }, "create schema raw; create table raw.events (id integer, kind varchar)")
    first = warm(root)
    assert first.columns.assets["events_clean"].columns == ("id", "kind")
    assert warm(root).stats.computed == 0
    con = duckdb.connect(str(root / "wh.duckdb"))
    con.execute("alter table raw.events add column amount double")
    con.close()
    after = warm(root)
    assert after.columns.assets["events_clean"].columns == ("id", "kind", "amount")
    assert result(after) == result(cold(root))
    # a busy warehouse (a writer holds it): not read, and the unread state is not stamped as the catalog
    writer = duckdb.connect(str(root / "wh.duckdb"))
    try:
        writer.execute("alter table raw.events add column channel varchar")
        busy = warm(root)
    finally:
        writer.close()
    assert busy.stats.catalog.startswith("offline (catalog not read")
    after = warm(root)
    assert after.columns.assets["events_clean"].columns == ("id", "kind", "amount", "channel")
