"""Compiled SQL for dbt models: one in-process `dbt compile` for every model that needs it, then cached.

dbt is never run per partition. Models are compiled once with sentinel values for the window vars
(`window_start`, `window_end`, `partition_key`; see `sqlassets.run.windows`) and `--full-refresh`, so
`is_incremental()` is false and the SQL does not depend on what the warehouse holds. The results are
cached in `<state_dir>/compiled/<hash>.sql`, keyed by everything the compiled text depends on: the
model's raw SQL and config, the relations of its parents, the dbt version, the target, and the files
that are not assets themselves (macros, packages, ephemeral models, dbt_project.yml). A warm cache
costs a stat walk and a few file reads, and does not import dbt.

On DuckDB the compile runs against a scratch database file with the same name as the warehouse (so
relation names match) in the state dir: compiling never opens, locks or waits for the warehouse.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from sqlassets.dbt.files import iter_project_files, stat_digest
from sqlassets.errors import ConfigError, UserError
from sqlassets.run.windows import DBT_VARS

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project

CACHE_DIR = "compiled"
_COMPILE_LOCK = threading.Lock()
COMPILED_KINDS = ("model", "snapshot")


def _dbt_version() -> str:
    try:
        from importlib.metadata import version

        return version("dbt-core")
    except Exception:  # noqa: BLE001 - a missing dist only weakens the cache key
        return "unknown"


def _files_digest(project: Project, graph: AssetGraph) -> str:
    """Stat digest of the dbt files a compiled model may depend on that are not asset files themselves."""
    asset_paths = {str((project.root / a.path).resolve()) for a in graph if a.path}
    return stat_digest(
        p for p in iter_project_files(project, ("macro-paths", "model-paths", "snapshot-paths"))
        if p.endswith((".sql", ".yml", ".yaml", ".py")) and not (p.endswith(".sql") and p in asset_paths)
    )


def cache_key(project: Project, graph: AssetGraph, asset: Asset, files_digest: str, dbt_version: str) -> str:
    h = hashlib.sha256()
    parents = sorted((d, str(graph[d].relation)) for d in asset.deps if d in graph)
    payload = {
        "v": 1, "dbt": dbt_version, "uid": asset.unique_id, "raw": asset.raw_sql, "rel": str(asset.relation),
        "config": asset.config, "parents": parents, "target": project.target, "vars": DBT_VARS,
        "warehouse": [project.warehouse.type, project.warehouse.database, project.warehouse.schema],
        "files": files_digest,
    }
    h.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _selector(project: Project, asset: Asset) -> str:
    """A dbt selector for `asset`'s node.

    `path:` globs from the root project, while a package node's path is relative to its package: select
    those by package and file name instead (an extra node picked up is harmless, results are by unique_id).
    """
    if asset.package and project.name and asset.package != project.name:
        return f"package:{asset.package},file:{PurePosixPath(asset.path or '').name}"
    return f"path:{asset.path}"


def _run_dbt_compile(project: Project, assets: list[Asset]) -> dict[str, str]:
    """One `dbt compile` for `assets`; returns unique_id -> compiled SQL."""
    from sqlassets.dbt import invoke as dbt_invoke

    base = project.state_dir / "compile"
    profiles_dir = dbt_invoke.scratch_profiles(project, base) or project.profiles_dir
    if profiles_dir is None:
        raise ConfigError("no profiles.yml found for dbt compile; add one or pass --profiles-dir")
    selectors = sorted({_selector(project, a) for a in assets if a.path})
    result = dbt_invoke.invoke(
        project, "compile",
        ["--target-path", str(base / "target"), "--vars", json.dumps(DBT_VARS), "--full-refresh",
         "--no-introspect", "--select", *selectors],
        profiles_dir=profiles_dir, log_dir=project.state_dir / "logs", what="dbt compile",
    )
    return dbt_invoke.compiled_code(result)


def compiled_sql(project: Project, graph: AssetGraph, keys: Iterable[str],
                 on_compile: Callable[[int], None] | None = None) -> dict[str, str]:
    """Compiled SQL for `keys` (dbt models/snapshots compiled once, cached; raw SQL assets as written).

    Window vars compile to sentinels (`sqlassets.run.windows.DBT_VARS`); `prepare_select` turns those into
    typed literals per partition. Seeds, sources and externals have no SQL and are left out.
    """
    out: dict[str, str] = {}
    need: dict[str, tuple[Asset, Path]] = {}
    digest: str | None = None
    version = ""
    cache_dir = project.state_dir / CACHE_DIR
    for key in keys:
        asset = graph[key]
        if asset.kind == "sql" or (asset.kind not in COMPILED_KINDS and asset.raw_sql):
            if asset.raw_sql is not None:
                out[key] = asset.raw_sql
            continue
        if asset.kind not in COMPILED_KINDS or asset.materialization == "ephemeral":
            continue
        if digest is None:
            digest = _files_digest(project, graph)
            version = _dbt_version()
        path = cache_dir / f"{cache_key(project, graph, asset, digest, version)}.sql"
        try:
            out[key] = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            need[key] = (asset, path)
    if need:
        if on_compile is not None:
            on_compile(len(need))  # dbt is about to run: say so, it can take a while
        with _COMPILE_LOCK:
            compiled = _run_dbt_compile(project, [a for a, _ in need.values()])
        cache_dir.mkdir(parents=True, exist_ok=True)
        for key, (asset, path) in need.items():
            code = compiled.get(asset.unique_id or "")
            if code is None:
                raise UserError(f"dbt compile returned no SQL for '{key}' ({asset.path}); is it enabled?")
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(code, encoding="utf-8")
            os.replace(tmp, path)
            out[key] = code
    return out
