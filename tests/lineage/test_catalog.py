"""The warehouse catalog fills in columns nobody declared; an absent or busy warehouse is never an error."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from sqlassets.lineage.build import build_lineage
from sqlassets.loaders import load_graph
from sqlassets.project import load_project


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "wh"
    (root / "sql").mkdir(parents=True)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nwarehouse: {type: duckdb, path: wh.duckdb}\n")
    (root / "sql" / "events_clean.sql").write_text("select * from raw.events where kind <> 'test'\n")
    return root


def build(root: Path):
    project = load_project(root)
    return build_lineage(project, load_graph(project), use_cache=False)


def test_without_warehouse_star_is_unresolved(project: Path) -> None:
    b = build(project)
    assert "does not exist yet" in b.stats.catalog
    assert "raw.events" in b.columns.assets["events_clean"].unresolved["*"]


def test_catalog_columns_expand_the_star(project: Path) -> None:
    con = duckdb.connect(str(project / "wh.duckdb"))
    con.execute("create schema raw")
    con.execute("create table raw.events (id integer, kind varchar, amount double)")
    con.close()
    b = build(project)
    assert b.stats.catalog.startswith("duckdb catalog read")
    rec = b.columns.assets["events_clean"]
    assert rec.columns == ("id", "kind", "amount")
    assert not rec.unresolved
    assert ("amount", "raw.events", "amount", "copy") in rec.edges
    assert ("amount", "raw.events", "kind", "filter") in rec.edges
    assert b.columns.info[b.columns.resolve("raw.events.amount")].status == "declared"


def test_busy_warehouse_is_skipped(project: Path) -> None:
    path = project / "wh.duckdb"
    writer = duckdb.connect(str(path))
    writer.execute("create schema raw")
    writer.execute("create table raw.events (id integer, kind varchar)")
    try:
        # The writer holds the file; a read-only open in this process is refused by DuckDB.
        b = build(project)
    finally:
        writer.close()
    assert b.stats.catalog.startswith("offline (catalog not read")
    assert "*" in b.columns.assets["events_clean"].unresolved
