"""The whole-project lineage snapshot: one file that a warm run reads instead of redoing anything.

A warm `lineage` run used to compute a compile key and read a compiled-SQL file per model, fingerprint
every model against its upstream schemas, load the per-asset cache and then the column graph: ~0.6 s on
5,000 models for a result that had not changed. The finished result (every asset's record, the column
graph, the build stats) is a pure function of:

- every asset as the graph holds it (key, kind, relation, deps, declared columns, raw and manifest SQL,
  dialect, config: what the compile key and lineage read);
- what the dbt compile of the models depends on beyond the assets (`compile.compile_inputs`: macros and
  packages, dbt version, target, the catalog introspecting macros see);
- the warehouse catalog lineage falls back on (digested, stat-cached: DuckDB is opened only when the
  file changed);
- the code that derives it (resolver and graph versions, the lineage modules' files).

Those are digested into one signature; a snapshot stored under the same signature is the answer.
Anything else (one model edited, a macro changed, the warehouse rebuilt with other columns) is a miss,
and the per-asset caches below recompute exactly what the change reaches: the edited model, and its
children as far as its output columns changed; the column graph (inferred columns carried upstream,
their marks downstream) is rebuilt from all records. A snapshot is only a shortcut to that result.
"""

from __future__ import annotations

import hashlib
import json
import marshal
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.private_files import save_cache

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project

_FORMAT = 1
_FILE = "snapshot.marshal"
_CATALOG_STAMP = "catalog.json"


def _code_digest() -> str:
    """The lineage modules, the compile module and the installed sqlglot, by stat: editing or upgrading the
    code that derives the result (without bumping a version) must not serve an old result. sqlglot is found
    without importing it (a warm run does not need it)."""
    from importlib.util import find_spec

    here = Path(__file__).resolve().parent
    files = sorted(here.glob("*.py")) + [here.parent / "dbt" / f for f in ("compile.py", "invoke.py", "macros.py")]
    spec = find_spec("sqlglot")
    if spec is not None and spec.origin:
        files.append(Path(spec.origin).with_name("_version.py"))
    h = hashlib.blake2b(digest_size=16)
    for path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        h.update(f"{path}:{st.st_mtime_ns}:{st.st_size}\n".encode())
    return h.hexdigest()


def _asset_row(asset: Any) -> tuple:
    rel = asset.relation
    return (
        asset.key, asset.kind, (rel.database, rel.schema, rel.identifier) if rel is not None else None,
        asset.materialization, asset.deps, tuple((c.name, c.type) for c in asset.columns), asset.path,
        asset.raw_sql, asset.compiled_sql, asset.dialect, asset.unique_id, asset.package, asset.version,
        asset.config,
    )


def _dump(value: Any) -> bytes:
    """Canonical bytes (orjson, sorted keys): unlike marshal, they do not depend on object identity or
    string interning, so the same project digests the same in every process."""
    import orjson

    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr)


def signature(project: Project, graph: AssetGraph, catalog_token: str) -> str:
    """Digest of everything the project's lineage result depends on (see the module doc)."""
    from sqlassets.lineage.build import _GRAPH_VERSION
    from sqlassets.lineage.cache import RESOLVER_VERSION

    compile_inputs: tuple = ()
    if project.has_dbt:
        from sqlassets.dbt.compile import compile_inputs as dbt_inputs

        compile_inputs = dbt_inputs(project, graph)
    head = (_FORMAT, RESOLVER_VERSION, _GRAPH_VERSION, _code_digest(), str(project.root), compile_inputs,
            catalog_token)
    return hashlib.blake2b(_dump([head, [_asset_row(a) for a in graph]]), digest_size=16).hexdigest()


# -- the warehouse catalog lineage falls back on, digested without opening DuckDB when unchanged --

def _warehouse_stat(path: Path) -> str:
    parts = []
    for p in (path, path.with_name(path.name + ".wal")):
        try:
            st = os.stat(p)
        except OSError:
            parts.append("-")
            continue
        parts.append(f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}")
    return "|".join(parts)


def catalog_token(project: Project, state_dir: Path) -> tuple[str, tuple | None]:
    """(digest of what `schema.read_catalog` would read, the catalog it read if it had to read it).

    DuckDB files are stat-stamped: unchanged (inode, mtime, size of the file and its WAL), the digest
    recorded last time stands and DuckDB is not even imported. Changed, the catalog is read once here
    and handed to the build, so the digest and the result come from the same read.
    """
    from sqlassets.lineage.schema import catalog_rows

    wh = project.warehouse
    if wh.type != "duckdb" or wh.path is None:
        return f"none:{wh.type}", None
    path = Path(wh.path)
    stat = _warehouse_stat(path)
    stamp_path = state_dir / _CATALOG_STAMP
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        if stamp.get("path") == str(path) and stamp.get("stat") == stat:
            return str(stamp["digest"]), None
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    read = catalog_rows(project)
    digest = hashlib.blake2b(_dump(read), digest_size=16).hexdigest()
    if read[0] is not None or not path.exists():  # unreadable now (locked by a writer): do not stamp
        save_cache(stamp_path, json.dumps({"path": str(path), "stat": stat, "digest": digest}))
    return digest, read


# -- the stored result ---------------------------------------------------------------------------

def load(state_dir: Path, sig: str) -> tuple | None:
    """The stored (stats, records, column graph) for `sig`, or None."""
    try:
        data = marshal.loads((state_dir / _FILE).read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if isinstance(data, tuple) and len(data) == 3 and data[:2] == (_FORMAT, sig):
        return data[2]
    return None


def save(state_dir: Path, sig: str, payload: tuple) -> None:
    """Store the result atomically; a read-only state dir only costs the next run its shortcut."""
    path = state_dir / _FILE
    try:
        data = marshal.dumps((_FORMAT, sig, payload))
    except ValueError:
        return
    save_cache(path, data)
