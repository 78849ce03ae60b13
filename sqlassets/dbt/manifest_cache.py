"""The assets of an unchanged manifest, kept in the state dir so a warm command does not re-read it.

On a 5,000-model project `target/manifest.json` is ~20 MB: parsing it (orjson, 0.16 s) and turning it
into assets (0.18 s) was half of a warm `lineage` run, for the same assets every time. The assets are a
pure function of the manifest file, the project root, the dialect the loader picked, the seeds' CSV
headers and the loader's own code; the cache is keyed by exactly those (files by inode, mtime and size,
as dbt rewrites the manifest whole), and anything else is a miss that reads the manifest as before.

Format: `marshal` of builtins, one tuple per asset (several times faster to load than JSON); written
atomically; an unreadable or foreign file is a miss, never an error.

The CLI defers the write (`defer_writes`) until the command has succeeded: a command refused for bad
input writes nothing, not even a cache. Other callers (the Python API) write at once.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.private_files import save_cache

if TYPE_CHECKING:
    from sqlassets.model import Asset
    from sqlassets.project import Project

_FORMAT = 1
_FILE = "manifest_assets.marshal"
#: writes waiting for the command to succeed (None: write at once)
_deferred: dict[Path, bytes] | None = None


def defer_writes() -> None:
    """From now on, keep writes until `flush` (the CLI: written only if the command succeeds)."""
    global _deferred
    _deferred = {}


def flush() -> None:
    """Write what `defer_writes` kept, and write at once from now on."""
    global _deferred
    pending, _deferred = _deferred or {}, None
    for path, data in pending.items():
        save_cache(path, data)


def discard() -> None:
    """Drop what `defer_writes` kept (the command failed), and write at once from now on."""
    global _deferred
    _deferred = None


def _stat(path: str | Path) -> str:
    try:
        st = os.stat(path)
    except OSError:
        return "-"
    return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"


def _code_stamp() -> str:
    """The loader and the model it builds: editing either must not serve assets built by the old code."""
    here = Path(__file__).resolve().parent
    return "|".join(_stat(p) for p in (here / "loader.py", here / "manifest_cache.py", here.parent / "model.py"))


def key(project: Project, manifest: Path, dialect_inputs: tuple) -> tuple:
    """The cache key of `manifest`'s assets: take it *before* reading the manifest, so a manifest rewritten
    meanwhile can only make the stored key stale (a miss), never pair new stats with old assets."""
    return (_FORMAT, _code_stamp(), str(project.root), str(manifest), _stat(manifest), dialect_inputs)


def _to_row(a: Asset) -> tuple:
    rel = a.relation
    return (a.key, a.kind, (rel.database, rel.schema, rel.identifier) if rel is not None else None,
            a.materialization, a.deps, a.description, tuple((c.name, c.type, c.description) for c in a.columns),
            a.tags, a.group, a.owner, a.path, a.raw_sql, a.compiled_sql, a.code_version, a.dialect, a.unique_id,
            a.package, a.version, a.meta, a.config)


def _from_row(r: tuple) -> Asset:
    from sqlassets.model import Asset, Column, Relation

    (key, kind, rel, materialization, deps, description, columns, tags, group, owner, path, raw_sql, compiled_sql,
     code_version, dialect, unique_id, package, version, meta, config) = r
    return Asset(key, kind, Relation(*rel) if rel is not None else None, materialization, deps, description,
                 tuple(Column(*c) for c in columns), tags, group, owner, path, raw_sql, compiled_sql, code_version,
                 dialect, unique_id, package, version, meta, config)


def load(project: Project, wanted: tuple) -> list[Asset] | None:
    """The assets stored under `wanted` (see `key`) with every seed CSV unchanged, or None."""
    try:
        data: Any = marshal.loads((project.state_dir / _FILE).read_bytes())
        stored, seeds, rows = data
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if stored != wanted:
        return None
    if any(_stat(path) != stamp for path, stamp in seeds):
        return None  # a seed's CSV header may have changed: its columns come from there
    try:
        return [_from_row(r) for r in rows]
    except (TypeError, ValueError):
        return None


def save(project: Project, stored: tuple, assets: list[Asset], seed_files: list[str]) -> None:
    """Store `assets` under `stored` (see `key`); a state dir we cannot write only costs the next run."""
    path = project.state_dir / _FILE
    try:
        data = marshal.dumps((stored, [(p, _stat(p)) for p in seed_files], [_to_row(a) for a in assets]))
    except ValueError:  # a value marshal cannot hold (not from JSON): no cache for this manifest
        return
    if _deferred is not None:
        _deferred[path] = data
        return
    save_cache(path, data)


