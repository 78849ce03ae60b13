"""Assets of an unchanged manifest come from the state dir; any change to what they derive from re-reads it.

Real `dbt parse` of a small project with a seed; the cached assets must equal the ones read from the
manifest field by field (meta and config included, which Asset equality leaves out).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

import orjson
import pytest
from conftest import copy_parsed, write_project

import sqlassets.dbt.loader as loader
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

PROJECT = {
    "dbt_project.yml": "name: mc\nversion: '1.0'\nprofile: mc\nmodels:\n  mc:\n    +materialized: view\n"
                       "    +meta: {owner: data-team}\n",
    "profiles.yml": "mc:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n"
                    "      threads: 1\n",
    "seeds/regions.csv": "region_id,name\n1,north\n2,south\n",
    "models/schema.yml": "version: 2\nmodels:\n  - name: by_region\n    description: orders per region\n"
                         "    columns:\n      - name: region_id\n        description: the region\n",
    "models/by_region.sql": "{{ config(tags=['daily']) }}\nselect region_id, name from {{ ref('regions') }}\n",
}


@pytest.fixture(scope="module")
def parsed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("mc") / "mc", PROJECT)
    load_graph(load_project(root))
    return root


@pytest.fixture
def root(parsed: Path, tmp_path: Path) -> Path:
    return copy_parsed(parsed, tmp_path / "mc")


def fields(graph) -> list[tuple]:
    return [tuple(getattr(a, f.name) for f in dataclasses.fields(a)) for a in graph]


def from_manifest(root: Path) -> list[tuple]:
    project = load_project(root)
    manifest = loader.read_manifest(loader.manifest_path(project))
    assets = loader.assets_from_manifest(manifest, project.root, loader.project_dialect(project, manifest))
    return sorted(tuple(getattr(a, f.name) for f in dataclasses.fields(a)) for a in assets)


def test_unchanged_manifest_is_not_read_again(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    load_graph(load_project(root))  # a copy elsewhere is another project (its root): read once here
    assert (root / ".sqlassets" / "manifest_assets.marshal").exists()

    def no_read(path):
        raise AssertionError(f"{path} read although unchanged")

    with monkeypatch.context() as m:
        m.setattr(loader, "read_manifest", no_read)
        cached = load_graph(load_project(root))
    assert sorted(fields(cached)) == from_manifest(root)
    region = cached["by_region"]
    assert region.meta == {"owner": "data-team"} and region.config["tags"] == ["daily"]
    assert [c.name for c in cached["regions"].columns] == ["region_id", "name"]


def test_a_rewritten_manifest_is_read(root: Path) -> None:
    """The user runs `dbt compile` themselves: the manifest now carries compiled code, and it is used."""
    path = root / "target" / "manifest.json"
    manifest = orjson.loads(path.read_bytes())
    manifest["nodes"]["model.mc.by_region"]["compiled_code"] = "select 1 as region_id, 'x' as name"
    time.sleep(0.01)
    path.write_bytes(orjson.dumps(manifest))
    graph = load_graph(load_project(root))
    assert graph["by_region"].compiled_sql == "select 1 as region_id, 'x' as name"
    assert sorted(fields(graph)) == from_manifest(root)


def test_edited_project_files_are_parsed_and_cached_again(root: Path) -> None:
    time.sleep(0.01)
    (root / "seeds" / "regions.csv").write_text("region_id,name,country\n1,north,NO\n")
    (root / "models" / "by_region.sql").write_text("select region_id, country from {{ ref('regions') }}\n")
    graph = load_graph(load_project(root))
    assert [c.name for c in graph["regions"].columns] == ["region_id", "name", "country"]
    assert "country" in graph["by_region"].raw_sql
    again = load_graph(load_project(root))
    assert sorted(fields(again)) == sorted(fields(graph)) == from_manifest(root)


def test_a_seed_header_changed_behind_a_fresh_manifest_is_read_again(tmp_path: Path) -> None:
    """Seeds' columns come from their CSV header, which the manifest does not hold. (Its own project: the
    manifest names the seed by the root dbt parsed it in, so a copy would read the original's CSV.)"""
    root = write_project(tmp_path / "mc", PROJECT)
    load_graph(load_project(root))
    manifest = root / "target" / "manifest.json"
    seed = root / "seeds" / "regions.csv"
    seed.write_text("region_id,label\n1,north\n")
    st = manifest.stat()
    os.utime(seed, ns=(st.st_atime_ns, st.st_mtime_ns - 1_000_000))  # still older than the manifest
    graph = load_graph(load_project(root))
    assert [c.name for c in graph["regions"].columns] == ["region_id", "label"]


def test_a_corrupt_cache_is_a_miss(root: Path) -> None:
    load_graph(load_project(root))
    (root / ".sqlassets" / "manifest_assets.marshal").write_bytes(b"\x00not marshal")
    assert sorted(fields(load_graph(load_project(root)))) == from_manifest(root)
