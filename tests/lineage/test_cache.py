"""The lineage cache: warm runs recompute nothing; a change recomputes only as far as its schema change reaches."""

from __future__ import annotations

from pathlib import Path

import pytest

from sqlassets.lineage.build import build_lineage
from sqlassets.lineage.cache import LineageCache
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

CHAIN = {
    "a": "select 1 as id, 2.5 as amount",
    "b": "select id, amount * 2 as amount2 from a",
    "c": "select id, amount2 from b where amount2 > 0",
    "d": "select id from c",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "chain"
    (root / "sql").mkdir(parents=True)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\n")
    for name, sql in CHAIN.items():
        (root / "sql" / f"{name}.sql").write_text(sql + "\n")
    return root


def build(root: Path):
    project = load_project(root)
    return build_lineage(project, load_graph(project))


def snapshot(b) -> dict:
    return {k: (r.columns, r.edges, r.unresolved) for k, r in b.columns.assets.items()}


def test_warm_run_recomputes_nothing(project: Path) -> None:
    cold = build(project)
    assert (cold.stats.computed, cold.stats.from_cache) == (4, 0)
    assert (project / ".sqlassets" / "lineage" / "cache.marshal").exists()
    warm = build(project)
    assert (warm.stats.computed, warm.stats.from_cache) == (0, 4)
    assert snapshot(warm) == snapshot(cold)
    assert warm.columns.nodes == cold.columns.nodes


def test_same_columns_change_recomputes_only_that_model(project: Path) -> None:
    build(project)
    (project / "sql" / "b.sql").write_text("select id, amount * 3 as amount2 from a\n")
    again = build(project)
    assert again.stats.computed == 1
    assert ("amount2", "a", "amount", "transform") in again.columns.assets["b"].edges


def test_schema_change_recomputes_as_far_as_it_reaches(project: Path) -> None:
    build(project)
    # b gains a column: c is qualified against b's columns, so c is recomputed; c's own output is
    # unchanged, so d is not.
    (project / "sql" / "b.sql").write_text("select id, amount * 2 as amount2, id + 1 as id2 from a\n")
    again = build(project)
    assert again.stats.computed == 2
    assert again.columns.assets["b"].columns == ("id", "amount2", "id2")
    # c now selects * : its columns change, so d is recomputed too
    (project / "sql" / "c.sql").write_text("select * from b\n")
    third = build(project)
    assert third.stats.computed == 2
    assert third.columns.assets["c"].columns == ("id", "amount2", "id2")


def test_unreadable_cache_is_a_cold_start(project: Path) -> None:
    build(project)
    for name in ("cache.marshal", "snapshot.marshal", "graph.marshal"):
        (project / ".sqlassets" / "lineage" / name).write_bytes(b"\x00garbage")
    again = build(project)
    assert again.stats.computed == 4
    assert build(project).stats.computed == 0


def test_no_cache_option_recomputes(project: Path) -> None:
    build(project)
    project_obj = load_project(project)
    b = build_lineage(project_obj, load_graph(project_obj), use_cache=False)
    assert b.stats.computed == 4


def test_cache_is_keyed_by_sql_and_upstream_schema(tmp_path: Path) -> None:
    from sqlassets.lineage.cache import fingerprint

    base = fingerprint("select 1", "duckdb", {"a": "x"})
    assert fingerprint("select 1", "duckdb", {"a": "x"}) == base
    assert fingerprint("select 2", "duckdb", {"a": "x"}) != base
    assert fingerprint("select 1", "snowflake", {"a": "x"}) != base
    assert fingerprint("select 1", "duckdb", {"a": "y"}) != base
    cache = LineageCache.for_state_dir(tmp_path)
    assert cache.get("a", base) is None
