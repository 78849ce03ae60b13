"""The optional fork pool (`workers > 1`) gives exactly the in-process result."""

from __future__ import annotations

from pathlib import Path

from sqlassets.lineage.build import _POOL_MIN_TASKS, build_lineage
from sqlassets.loaders import load_graph
from sqlassets.project import load_project


def test_pool_matches_in_process(tmp_path: Path) -> None:
    root = tmp_path / "wide"
    (root / "sql").mkdir(parents=True)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\n")
    (root / "sql" / "base.sql").write_text("select 1 as id, 2.0 as amount, 'x' as kind\n")
    n = _POOL_MIN_TASKS + 5
    for i in range(n):
        (root / "sql" / f"m{i:03d}.sql").write_text(
            f"select id, amount * {i} as amount_{i}, kind from base where kind <> 'skip{i}'\n")
    (root / "sql" / "top.sql").write_text(
        "select m000.id, " + ", ".join(f"m{i:03d}.amount_{i}" for i in range(0, n, 7))
        + " from m000 " + " ".join(f"join m{i:03d} using (id)" for i in range(7, n, 7)) + "\n")
    project = load_project(root)
    graph = load_graph(project)
    inline = build_lineage(project, graph, use_cache=False, workers=1)
    pooled = build_lineage(project, graph, use_cache=False, workers=2)
    assert pooled.stats.workers == 2 and inline.stats.workers == 1
    assert pooled.stats.computed == inline.stats.computed == n + 2
    for key, rec in inline.columns.assets.items():
        assert pooled.columns.assets[key].to_plain() == rec.to_plain(), key
    assert pooled.columns.nodes == inline.columns.nodes
    assert pooled.columns.up == inline.columns.up
