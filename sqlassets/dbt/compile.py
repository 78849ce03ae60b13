"""Compiled SQL for dbt models, got the way dbt gets it, once, then cached per model.

Where a model's compiled SQL comes from, in order:
1. the user's own compiled manifest (`target/manifest.json` after `dbt compile|run|build`), when the
   loader found it fresh (to run a model, only if its SQL does not depend on what sqlassets compiles
   differently: `is_incremental()`, the window vars);
2. the compile cache, `<state_dir>/compiled/<key>.sql` (or `<key>.err`: a model that failed to compile
   is not retried until one of its inputs changes, or `--no-cache`);
3. one in-process `dbt compile` for everything still missing. A few models are selected by path; past
   `_SELECT_ALL_FROM` models (or a tenth of the project) the whole project's models and snapshots are
   compiled in one selection (a selector per model costs dbt a pass over the project each: quadratic),
   and every result is cached.

The key of a model covers everything its compiled text depends on: its raw SQL and config, the relations
of its parents, the dbt version, the target, the files that are not assets themselves (macros, packages,
ephemeral models, dbt_project.yml) and, for a model that calls macros that may query the warehouse
(`dbt_utils.star`, `get_column_values`, ...), the warehouse catalog.

dbt is never run per partition: window vars compile to sentinels (`sqlassets.run.windows.DBT_VARS`) and
`--full-refresh` keeps `is_incremental()` false. Each model stands on its own: one that fails (a macro
needs a live warehouse, a Jinja error) is reported with dbt's reason and takes no other model down.

Introspection (macros that query the warehouse while compiling) runs where it is safe: on DuckDB always,
against a scratch database in the state dir that holds an empty copy of the warehouse's catalog (the
warehouse itself is never opened for writing or locked); elsewhere only when the warehouse answers on
the network, else with `--no-introspect`, and the models that needed it say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from sqlassets.dbt.files import iter_project_files, stat_digest
from sqlassets.errors import ConfigError, UserError
from sqlassets.graph import lookup_relation
from sqlassets.private_files import write_private
from sqlassets.run.windows import DBT_VARS

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project

CACHE_DIR = "compiled"
COMPILE_DIR = "compile"
COMPILED_KINDS = ("model", "snapshot")
#: compile the whole project instead of one selector per model from this many models, or a tenth of the
#: project: each `path:` selector costs dbt a pass over every node (~65 ms on 5,000 models, measured as
#: 370 s for 5,000 selectors), about what compiling ten models costs
_SELECT_ALL_FROM = 40
_KEY_VERSION = 3  # 3: offline compiles answer existence checks (is_incremental models compile)
# Jinja calls that never query the warehouse; any other macro call may (dbt_utils.star, run_query, ...).
_PURE_CALLS = frozenset({
    "ref", "source", "config", "var", "env_var", "is_incremental", "this", "return", "log", "print",
    "target", "adapter.quote", "dbt.type_string", "dbt.type_int", "dbt.type_timestamp", "dbt.type_numeric",
    "dbt.current_timestamp", "dbt.safe_cast", "dbt.concat", "dbt.date_trunc", "dbt.dateadd", "dbt.datediff",
    "dbt.split_part", "dbt.hash", "dbt.cast_bool_to_text", "dbt.any_value", "dbt.listagg", "dbt.last_day",
    "dbt.escape_single_quotes", "dbt.string_literal", "dbt.type_float", "dbt.type_bigint", "range", "modules",
})
# the first call in each Jinja block: `{{ dbt_utils.star(ref('x')) }}`, `{% set r = run_query(...) %}`
_BLOCK_CALL = re.compile(r"\{[{%][-+]?[^}]*?\b([A-Za-z_][\w.]*)\s*\(")
_INCREMENTAL_DEPENDENT = ("is_incremental", *DBT_VARS)


@dataclass
class CompileResult:
    """Compiled SQL per asset key, and a one-line reason per asset that could not be compiled."""

    sql: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: how each key's SQL was had: manifest | cache | compiled | raw
    origin: dict[str, str] = field(default_factory=dict)


def _dbt_version() -> str:
    """dbt-core's version, from its one-line `dbt.__version__` module (5 ms; importlib.metadata scans every
    installed distribution: 75 ms, a tenth of a warm lineage run). Nothing else of dbt is imported."""
    try:
        from dbt.__version__ import version

        return str(version)
    except Exception:  # noqa: BLE001 - an unusual install: ask the package metadata
        pass
    try:
        from importlib.metadata import version as dist_version

        return dist_version("dbt-core")
    except Exception:  # noqa: BLE001 - a missing dist only weakens the cache key
        return "unknown"


def _files_digest(project: Project, graph: AssetGraph) -> str:
    """Stat digest of the dbt files a compiled model may depend on that are not asset files themselves."""
    root = str(project.root)
    asset_paths = {os.path.join(root, a.path) for a in graph if a.path}
    return stat_digest(
        p for p in iter_project_files(project, ("macro-paths", "model-paths", "snapshot-paths"))
        if p.endswith((".sql", ".yml", ".yaml", ".py")) and not (p.endswith(".sql") and p in asset_paths)
    )


def may_introspect(raw_sql: str | None) -> bool:
    """Does the model call a macro that could query the warehouse while compiling? (a cheap, safe guess)"""
    if not raw_sql or "{" not in raw_sql:
        return False
    return any(name not in _PURE_CALLS and not name.startswith(("config.", "this.", "target."))
               for name in _BLOCK_CALL.findall(raw_sql))


def cache_key(project: Project, graph: AssetGraph, asset: Asset, files_digest: str, dbt_version: str,
              catalog: str = "", relations: dict[str, str] | None = None) -> str:
    """The compile cache key of one model (orjson, relations rendered once: a warm 5,000-model run stays fast)."""
    import orjson

    if relations is None:
        relations = {d: str(graph[d].relation) for d in asset.deps if d in graph}
    parents = sorted((d, relations[d]) for d in asset.deps if d in relations)
    payload = (
        _KEY_VERSION, dbt_version, asset.unique_id, asset.raw_sql, str(asset.relation), asset.config, parents,
        project.target, DBT_VARS, project.dbt_vars, (project.warehouse.type, project.warehouse.database, project.warehouse.schema),
        files_digest, catalog if may_introspect(asset.raw_sql) else "",
    )
    data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def compile_inputs(project: Project, graph: AssetGraph) -> tuple:
    """What every model's compile key holds beyond the assets themselves (see `cache_key`): a project whose
    assets and these are unchanged compiles to the same SQL (the lineage snapshot is keyed by them)."""
    wh = project.warehouse
    return (_KEY_VERSION, _dbt_version(), _files_digest(project, graph), catalog_fingerprint(project),
            project.target, DBT_VARS, project.dbt_vars, (wh.type, wh.database, wh.schema))


def _selector(project: Project, asset: Asset) -> str:
    """A dbt selector for `asset`'s node.

    `path:` globs from the root project, while a package node's path is relative to its package: select
    those by package and file name instead (an extra node picked up is harmless, results are by unique_id).
    """
    if asset.package and project.name and asset.package != project.name:
        return f"package:{asset.package},file:{PurePosixPath(asset.path or '').name}"
    return f"path:{asset.path}"


# -- the catalog dbt may introspect ---------------------------------------------------------------

#: tables up to this many rows are copied into the scratch database with their rows, so macros that read
#: values while compiling (get_column_values on a lookup table) see what dbt would. Bigger tables are copied
#: as columns only, on purpose: the scratch is rebuilt whenever the catalog changes (after most runs), and
#: copying rows of big tables (or a sample: a scan of each) would make that cost grow with the warehouse;
#: and a partial copy would let get_column_values miss values silently. A macro reading values of a big
#: table sees none; compile against the warehouse itself (`dbt compile`, then sqlassets uses the manifest)
#: if a model needs that.
SMALL_TABLE_ROWS = 50_000
_CATALOG_SQL = ("select table_schema, table_name, column_name, data_type from information_schema.columns "
                "where table_catalog = current_database() order by 1, 2, ordinal_position")
_SMALL_SQL = ("select schema_name, table_name, estimated_size from duckdb_tables() "
              "where database_name = current_database() and estimated_size <= ?")

Catalog = tuple[list[tuple[str, str, str, str]], dict[tuple[str, str], int]]


def _catalog_from(query: Callable[..., list]) -> Catalog:
    rows = [tuple(r) for r in query(_CATALOG_SQL)]
    small = query(_SMALL_SQL, [SMALL_TABLE_ROWS])
    return rows, {(sch, name): int(n) for sch, name, n in small}  # type: ignore[misc]


def _warehouse_catalog(project: Project) -> Catalog:
    """(schema, table, column, type) of every table and view in the DuckDB warehouse, and the row count of
    its small tables; empty if the warehouse cannot be read (absent, locked by a writer, corrupt)."""
    path = project.warehouse.path
    if project.warehouse.type != "duckdb" or path is None or not Path(path).exists():
        return [], {}
    try:
        import duckdb

        con = duckdb.connect(str(path), read_only=True)
        try:
            return _catalog_from(lambda sql, params=(): con.execute(sql, list(params)).fetchall())
        finally:
            con.close()
    except Exception:  # noqa: BLE001 - locked by a writer, corrupt, other version: compile without it
        return [], {}


def _fingerprint(catalog: Catalog) -> str:
    rows, small = catalog
    return hashlib.sha256(json.dumps([rows, sorted(small.items())]).encode()).hexdigest()[:16]


def catalog_fingerprint(project: Project) -> str:
    """What introspecting models see: the warehouse's tables, columns and small tables' sizes (stat-cached:
    DuckDB is not opened while the file is unchanged); "" for other warehouses (not copied)."""
    path = project.warehouse.path
    if project.warehouse.type != "duckdb" or path is None:
        return ""
    try:
        st = os.stat(path)
    except OSError:
        return "absent"
    stamp_path = project.state_dir / COMPILE_DIR / "catalog.json"
    stat_key = f"{st.st_mtime_ns}:{st.st_size}"
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        if stamp.get("stat") == stat_key:
            return str(stamp["fingerprint"])
    except (OSError, ValueError, KeyError):
        pass
    catalog = _warehouse_catalog(project)
    if not catalog[0]:
        return "unreadable"  # not stamped: try again next time
    fp = _fingerprint(catalog)

    write_private(stamp_path, json.dumps({"stat": stat_key, "fingerprint": fp}))
    return fp


def _quoted(*parts: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _fill_scratch(run: Callable[[str], object], catalog: Catalog, *, into: str, rows_from: str | None) -> None:
    """Create every table and view of `catalog` as a table in the scratch catalog `into` ("" = the current
    database), with the rows of the small ones copied from catalog `rows_from` ("" = the current database,
    None = no rows)."""
    rows, small = catalog
    dst = f"{_quoted(into)}." if into else ""
    tables: dict[tuple[str, str], list[str]] = {}
    for schema, table, column, dtype in rows:
        tables.setdefault((schema, table), []).append(f"{_quoted(column)} {dtype}")
    for schema in sorted({s for s, _ in tables}):
        run(f"create schema if not exists {dst}{_quoted(schema)}")
    made = set()
    for (schema, table), cols in tables.items():
        try:
            run(f"create table {dst}{_quoted(schema, table)} ({', '.join(cols)})")
            made.add((schema, table))
        except Exception:  # noqa: BLE001 - an exotic type: that table's columns are not introspectable
            continue
    if rows_from is None:
        return
    src = f"{_quoted(rows_from)}." if rows_from else ""
    for schema, table in (t for t in small if t in made):
        run(f"insert into {dst}{_quoted(schema, table)} select * from {src}{_quoted(schema, table)}")


def _scratch_is(scratch: Path, fingerprint: str) -> bool:
    marker = scratch.with_name(scratch.name + ".catalog")
    return scratch.exists() and marker.exists() and marker.read_text(encoding="utf-8") == fingerprint


def _clear_scratch(scratch: Path) -> Path:
    """Remove the scratch file (and its WAL and marker); returns the marker's path, to write once filled."""
    marker = scratch.with_name(scratch.name + ".catalog")
    for leftover in (scratch, scratch.with_name(scratch.name + ".wal"), marker):
        leftover.unlink(missing_ok=True)
    scratch.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return marker


def _prepare_scratch(project: Project, scratch: Path, fingerprint: str) -> None:
    """The scratch DuckDB file dbt compiles against: a copy of the warehouse's catalog.

    Every table and view becomes a table with the same columns (what `star` / `get_columns_in_relation`
    read); small tables keep their rows (what `get_column_values` reads). Rebuilt only when the
    warehouse changed. The warehouse is opened read-only and never locked for writing.
    """
    if _scratch_is(scratch, fingerprint):
        return
    import duckdb

    marker = _clear_scratch(scratch)
    catalog = _warehouse_catalog(project)
    con = duckdb.connect(str(scratch))
    try:
        rows_from = None
        if catalog[1]:
            try:
                con.execute(f"attach '{project.warehouse.path}' as sqlassets_wh (read_only)")
                rows_from = "sqlassets_wh"
            except Exception:  # noqa: BLE001 - locked meanwhile: columns without rows
                pass
        try:
            _fill_scratch(con.execute, catalog, into="", rows_from=rows_from)
        except Exception:  # noqa: BLE001 - a copy failing midway (locked, removed): columns without rows
            pass
    finally:
        con.close()
    marker.write_text(fingerprint, encoding="utf-8")


def _refresh_scratch_live(session: Any, scratch: Path, catalog: Catalog) -> None:
    """The scratch file rebuilt from the warehouse as a run has built it so far, through the run's own
    DuckDB session: the warehouse is open for writing in this process, where a second (read-only)
    connection to it would be refused. The scratch file is attached to that session for the copy."""
    fingerprint = _fingerprint(catalog)
    if _scratch_is(scratch, fingerprint):
        return
    marker = _clear_scratch(scratch)
    alias = "sqlassets_scratch"
    session.execute(f"attach '{scratch}' as {alias}")
    try:
        _fill_scratch(session.execute, catalog, into=alias, rows_from="")
    finally:
        session.execute(f"detach {alias}")
    marker.write_text(fingerprint, encoding="utf-8")


def warehouse_reachable(project: Project, timeout: float = 1.5) -> bool:
    """Can dbt introspect this warehouse? DuckDB: yes (the scratch copy). Others: does its host answer?"""
    wh = project.warehouse
    if wh.type == "duckdb":
        return True
    opts = wh.options or {}
    host, port = opts.get("host"), int(opts.get("port") or 443)
    if not host and wh.type == "snowflake" and opts.get("account"):
        host = f"{opts['account']}.snowflakecomputing.com"
    elif not host and wh.type == "bigquery":
        host = "bigquery.googleapis.com"
    if not host:
        return False
    import socket
    import threading

    answered: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((str(host), port), timeout=timeout):
                answered.append(True)
        except OSError:
            pass

    # name resolution ignores socket timeouts: bound the whole probe, offline it must not stall a run
    worker = threading.Thread(target=probe, daemon=True)
    worker.start()
    worker.join(timeout)
    return bool(answered)


# -- running dbt ----------------------------------------------------------------------------------

_NEEDS_WAREHOUSE = re.compile(r"connection|introspect|statement|run_query|adapter\.|execute", re.I)


def _run_dbt_compile(project: Project, assets: list[Asset], *, whole_project: bool = False,
                     introspect: bool = True, scratch_ready: bool = False, columns: Any = None
                     ) -> tuple[dict[str, str], dict[str, str]]:
    """One `dbt compile`; returns (unique_id -> compiled SQL, unique_id -> failure message).

    `scratch_ready`: the caller has just filled the scratch database (`compile_in_run`): leave it as is.
    `columns`: offline, answers `adapter.get_columns_in_relation` (`compile_with_known_columns`).
    """
    from sqlassets.dbt import invoke as dbt_invoke

    base = project.state_dir / COMPILE_DIR
    scratch = dbt_invoke.scratch_db(project, base)
    profiles_dir = dbt_invoke.scratch_profiles(project, base) or project.profiles_dir
    if profiles_dir is None:
        raise ConfigError("no profiles.yml found for dbt compile; add one or pass --profiles-dir")
    if scratch is not None and not scratch_ready:
        _prepare_scratch(project, scratch, catalog_fingerprint(project))
    if whole_project:
        select = ["resource_type:model", "resource_type:snapshot"]
    else:
        select = sorted({_selector(project, a) for a in assets if a.path})
    flags = ["--target-path", str(base / "target"), "--vars", json.dumps(DBT_VARS), "--full-refresh",
             "--no-populate-cache", "--introspect" if introspect else "--no-introspect", "--select", *select]
    _reuse_partial_parse(project, base / "target")
    result = dbt_invoke.invoke(project, "compile", flags, profiles_dir=profiles_dir,
                               log_dir=project.state_dir / "logs", what="dbt compile", per_node=True,
                               columns=columns)
    return dbt_invoke.compiled_code(result), dbt_invoke.node_errors(result)


def parse_args(project: Project, tmp: Path) -> tuple[list[str], Path | None]:
    """Extra `dbt parse` flags and profiles dir that make its partial-parse file reusable by compile.

    dbt reuses `partial_parse.msgpack` only for the same vars and the same profile: parsing with the
    compile's vars and (the same content as) its scratch profile lets the compile skip a second full
    parse (half of a cold run on a big project). The profile is written to `tmp`, so a parse that fails
    leaves nothing behind. None for the profiles dir: parse with the user's own.
    """
    from sqlassets.dbt import invoke as dbt_invoke

    base = project.state_dir / COMPILE_DIR
    return ["--vars", json.dumps(DBT_VARS)], dbt_invoke.scratch_profiles(project, base, write_to=tmp)


def _reuse_partial_parse(project: Project, target: Path) -> None:
    """Start the compile from the loader's parse (same vars and profile: see `parse_args`) if it is newer."""
    src = project.target_path / "partial_parse.msgpack"
    dst = target / "partial_parse.msgpack"
    try:
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            return
        target.mkdir(parents=True, exist_ok=True)
        import shutil

        shutil.copy2(src, dst)
    except OSError:
        return


def _one_line_reason(message: str, introspect: bool) -> str:
    reason = " ".join(message.split())
    for prefix in ("Compilation Error in model ", "Compilation Error in snapshot ", "Runtime Error in model "):
        if reason.startswith(prefix):
            rest = reason[len(prefix):]
            reason = rest.split(") ", 1)[1] if ") " in rest else rest
    reason = reason[:300]
    if not introspect and _NEEDS_WAREHOUSE.search(message):
        why = "" if "connection never acquired" in reason else f": {reason}"
        return ("needs a live warehouse to compile: a macro runs a query while compiling, and the warehouse is "
                f"not reachable from here (compiled with --no-introspect){why}")
    return f"dbt compile failed: {reason}"


def _uses_own_compile(asset: Asset) -> bool:
    """True when sqlassets must compile the model itself: its SQL depends on is_incremental() / window vars."""
    raw = asset.raw_sql or ""
    return any(word in raw for word in _INCREMENTAL_DEPENDENT)


def compile_assets(project: Project, graph: AssetGraph, keys: Iterable[str], *, use_cache: bool = True,
                   on_compile: Callable[[int], None] | None = None, for_run: bool = False) -> CompileResult:
    """Compiled SQL for `keys`, per model, never raising for one model's failure (see the module doc).

    `for_run`: the SQL will be run per partition, so a manifest's compiled code is not used for models
    whose SQL depends on `is_incremental()` or the window vars (lineage may use it: same columns).
    Raw SQL assets come back as written; seeds, sources, externals and ephemeral models have no SQL of
    their own and are left out. Raises only when dbt cannot run at all (no profile, the project does not
    parse): a project problem, not a model's.
    """
    out = CompileResult()
    need: dict[str, tuple[Asset, Path]] = {}
    digest: str | None = None
    version = catalog = ""
    relations: dict[str, str] = {}
    cache_dir = project.state_dir / CACHE_DIR
    for key in keys:
        asset = graph[key]
        if asset.kind == "sql" or (asset.kind not in COMPILED_KINDS and asset.raw_sql):
            if asset.raw_sql is not None:
                out.sql[key] = asset.raw_sql
                out.origin[key] = "raw"
            continue
        if asset.kind not in COMPILED_KINDS or asset.materialization == "ephemeral":
            continue
        if asset.compiled_sql and not (for_run and _uses_own_compile(asset)):
            out.sql[key] = asset.compiled_sql
            out.origin[key] = "manifest"
            continue
        if digest is None:
            digest = _files_digest(project, graph)
            version = _dbt_version()
            catalog = catalog_fingerprint(project)
            relations = {a.key: str(a.relation) for a in graph}
        path = cache_dir / f"{cache_key(project, graph, asset, digest, version, catalog, relations)}.sql"
        if use_cache and _read_cached(path, key, out):
            continue
        need[key] = (asset, path)
    if not need:
        return out
    from sqlassets.dbt.invoke import dbt_lock

    with dbt_lock(project):
        # Another process may have compiled these while we waited for the lock.
        if use_cache:
            need = {k: v for k, v in need.items() if not _read_cached(v[1], k, out)}
        if need:
            if on_compile is not None:
                on_compile(len(need))  # dbt is about to run: say so, it can take a while
            _compile_into(project, graph, need, out)
    return out


def _read_cached(path: Path, key: str, out: CompileResult) -> bool:
    try:
        out.sql[key] = path.read_text(encoding="utf-8")
        out.origin[key] = "cache"
        return True
    except FileNotFoundError:
        pass
    try:
        out.failed[key] = json.loads(path.with_suffix(".err").read_text(encoding="utf-8"))["reason"]
        return True
    except (FileNotFoundError, ValueError, KeyError):
        return False


def _compile_into(project: Project, graph: AssetGraph, need: dict[str, tuple[Asset, Path]],
                  out: CompileResult) -> None:
    introspect = warehouse_reachable(project)
    compilable = sum(1 for a in graph if a.kind in COMPILED_KINDS and a.materialization != "ephemeral")
    whole = len(need) >= max(_SELECT_ALL_FROM, compilable // 10)
    compiled, errors = _run_dbt_compile(project, [a for a, _ in need.values()], whole_project=whole,
                                        introspect=introspect)
    cache_dir = project.state_dir / CACHE_DIR
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if whole:
        # Every model was compiled: cache them all, so the next run finds the rest too.
        digest, version, catalog = _files_digest(project, graph), _dbt_version(), catalog_fingerprint(project)
        relations = {a.key: str(a.relation) for a in graph}
        by_uid = {a.unique_id: a for a in graph if a.unique_id and a.kind in COMPILED_KINDS}
        for uid, code in compiled.items():
            asset = by_uid.get(uid)
            if asset is not None and asset.key not in need:
                key = cache_key(project, graph, asset, digest, version, catalog, relations)
                write_private(cache_dir / f"{key}.sql", code)
    for key, (asset, path) in need.items():
        uid = asset.unique_id or ""
        code = compiled.get(uid)
        if code is not None:
            write_private(path, code)
            out.sql[key] = code
            out.origin[key] = "compiled"
            continue
        if uid in errors:
            reason = _one_line_reason(errors[uid], introspect)
            write_private(path.with_suffix(".err"), json.dumps({"reason": reason}))
        else:
            reason = "dbt compile returned no SQL for it; is it enabled?"
        out.failed[key] = reason




def compiled_sql(project: Project, graph: AssetGraph, keys: Iterable[str],
                 on_compile: Callable[[int], None] | None = None, *, use_cache: bool = True) -> dict[str, str]:
    """Compiled SQL for `keys` to run: as `compile_assets`, but a model that cannot compile is an error.

    Used before materializing, where running without a model's SQL is not an option; the message names
    each failing model and dbt's reason.
    """
    result = compile_assets(project, graph, keys, use_cache=use_cache, on_compile=on_compile, for_run=True)
    if result.failed:
        items = sorted(result.failed.items())
        first = "; ".join(f"'{k}': {why}" for k, why in items[:3])
        more = f" (and {len(items) - 3} more)" if len(items) > 3 else ""
        raise UserError(f"cannot compile {first}{more}; fix the model or leave it out with --exclude")
    return result.sql


# -- models compiled during a run, after their parents are built ------------------------------------

#: Jinja that queries the warehouse while compiling: run_query / statement / load_result, and the adapter
#: methods that read the catalog (dbt_utils.star reaches `adapter.get_columns_in_relation` this way)
_QUERIES = re.compile(
    r"\brun_query\s*\(|\bstatement\s*\(|\bload_result\s*\(|\bload_relation\s*\(|\badapter\s*\.\s*(?:"
    r"get_columns_in_relation|get_relation|execute|list_relations|list_relations_without_caching|"
    r"get_missing_columns|list_schemas|check_schema_exists|get_partitions_metadata)\b")
#: introspect only the model's own table, whose answer `--full-refresh` fixes (is_incremental() is false)
_OWN_TABLE_ONLY = frozenset({"macro.dbt.is_incremental", "macro.dbt.should_full_refresh"})
_INTROSPECTING = "introspecting.json"


def introspecting_models(project: Project) -> frozenset[str] | None:
    """unique_ids of the models and snapshots whose compile queries the warehouse: their SQL, or a macro they
    call (transitively, through `depends_on.macros` in the manifest, dispatch included), runs a query or
    reads the catalog. None when the manifest cannot be read (callers then fall back on `may_introspect`).

    Cached in the state dir by the manifest's stat: a run with the manifest unchanged does not read it.
    """
    from sqlassets.dbt.loader import manifest_path, read_manifest

    path = manifest_path(project)
    try:
        st = os.stat(path)
    except OSError:
        return None
    stat_key = f"{st.st_ino}:{st.st_mtime_ns}:{st.st_size}"
    stamp_path = project.state_dir / COMPILE_DIR / _INTROSPECTING
    try:
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        if stamp.get("stat") == stat_key:
            return frozenset(stamp["nodes"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    try:
        manifest = read_manifest(path)
    except UserError:
        return None
    macros = manifest.get("macros") or {}
    memo: dict[str, bool] = {}

    def queries(uid: str, stack: frozenset[str] = frozenset()) -> bool:
        if uid in memo:
            return memo[uid]
        if uid in _OWN_TABLE_ONLY or uid in stack:
            return False
        macro = macros.get(uid) or {}
        found = bool(_QUERIES.search(macro.get("macro_sql") or "")) or any(
            queries(d, stack | {uid}) for d in (macro.get("depends_on") or {}).get("macros") or ())
        memo[uid] = found
        return found

    nodes = sorted(
        uid for uid, n in (manifest.get("nodes") or {}).items()
        if n.get("resource_type") in COMPILED_KINDS and (
            _QUERIES.search(n.get("raw_code") or "")
            or any(queries(m) for m in (n.get("depends_on") or {}).get("macros") or ())))

    try:
        write_private(stamp_path, json.dumps({"stat": stat_key, "nodes": nodes}))
    except OSError:
        pass
    return frozenset(nodes)


def compile_after_parents(project: Project, graph: AssetGraph, keys: Iterable[str], planned: Iterable[str]
                          ) -> set[str]:
    """Which of `keys` must be compiled in the run, once their parents are built: those whose compile
    queries the warehouse (`introspecting_models`) and that have an ancestor in `planned` (built in this
    same run). Compiled up front, `dbt_utils.star(ref('parent'))` would see the parent as it was before
    the run (old columns, or none); `dbt run` compiles each model just before running it for that reason.
    Every other model keeps the one up-front `dbt compile`."""
    writers = set(planned)
    memo: dict[str, bool] = {}

    def built_upstream(key: str) -> bool:
        if key not in memo:
            memo[key] = False  # (a DAG: no cycles; this only guards the recursion)
            memo[key] = any(d in writers or built_upstream(d) for d in graph[key].deps if d in graph)
        return memo[key]

    candidates = [k for k in keys if graph[k].kind in COMPILED_KINDS and graph[k].materialization != "ephemeral"
                  and may_introspect(graph[k].raw_sql) and built_upstream(k)]
    if not candidates:
        return set()
    known = introspecting_models(project)
    if known is None:
        return set(candidates)
    return {k for k in candidates if graph[k].unique_id in known}


def compile_in_run(project: Project, graph: AssetGraph, key: str, session: Any) -> str:
    """`key`'s SQL compiled now, against the warehouse as this run has built it so far (see
    `compile_after_parents`); a UserError with dbt's reason if it does not compile.

    DuckDB: the warehouse is open for writing by this run, so the scratch catalog is refreshed through the
    run's own session (the scratch file is attached to it); its fingerprint keys the compile cache as
    usual, so an unchanged catalog reuses the last compile. Other warehouses: dbt introspects the live
    warehouse itself; not cached against it (the catalog is not fingerprinted), so compiled every run.
    """
    asset = graph[key]
    digest, version = _files_digest(project, graph), _dbt_version()
    relations = {a.key: str(a.relation) for a in graph}
    scratch = None
    if project.warehouse.type == "duckdb" and project.warehouse.path is not None:
        from sqlassets.dbt import invoke as dbt_invoke

        catalog = _catalog_from(session.query)  # what _warehouse_catalog reads, through the run's session
        key_ = cache_key(project, graph, asset, digest, version, _fingerprint(catalog), relations)
        path = project.state_dir / CACHE_DIR / f"{key_}.sql"
        found = CompileResult()
        if _read_cached(path, key, found):
            if key in found.failed:
                raise UserError(f"cannot compile: {found.failed[key]}")
            return found.sql[key]
        scratch = dbt_invoke.scratch_db(project, project.state_dir / COMPILE_DIR)
    else:
        catalog = None
        path = project.state_dir / CACHE_DIR / f"{cache_key(project, graph, asset, digest, version, '', relations)}.sql"
    from sqlassets.dbt.invoke import dbt_lock

    with dbt_lock(project):
        introspect = True
        if scratch is not None and catalog is not None:
            _refresh_scratch_live(session, scratch, catalog)
        else:
            introspect = warehouse_reachable(project)
        compiled, errors = _run_dbt_compile(project, [asset], introspect=introspect, scratch_ready=True)
    cache_dir = project.state_dir / CACHE_DIR
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    code = compiled.get(asset.unique_id or "")
    if code is not None:
        write_private(path, code)
        return code
    uid = asset.unique_id or ""
    reason = (_one_line_reason(errors[uid], introspect) if uid in errors
              else "dbt compile returned no SQL for it; is it enabled?")
    if scratch is not None and uid in errors:  # keyed by the catalog it saw: the same inputs fail the same way
        write_private(path.with_suffix(".err"), json.dumps({"reason": reason}))
    raise UserError(f"cannot compile: {reason}")


# -- offline: column introspection answered from the columns the project already knows --------------

_KNOWN_SUFFIX = ".known.json"


@dataclass(frozen=True)
class KnownColumns:
    """Columns the project knows without a warehouse, by asset key: models' output columns from lineage (only
    when all are known), seeds' CSV headers, sources' declared YAML columns (`declared`: a source's YAML may
    leave columns out, so what is compiled from them is marked)."""

    columns: dict[str, tuple[str, ...]]
    declared: frozenset[str] = frozenset()

    def digest(self, key: str) -> str | None:
        cols = self.columns.get(key)
        if cols is None:
            return None
        return hashlib.blake2b(json.dumps([key in self.declared, list(cols)]).encode(), digest_size=8).hexdigest()


def known_inputs(graph: AssetGraph, key: str) -> list[str]:
    """The assets a model's compile may introspect: its parents, and those of the ephemeral models it inlines."""
    out: list[str] = []
    todo, seen = list(graph[key].deps), set()
    while todo:
        d = todo.pop()
        if d in seen or d not in graph:
            continue
        seen.add(d)
        out.append(d)
        if graph[d].materialization == "ephemeral":
            todo.extend(graph[d].deps)
    return sorted(out)


def _warehouse_case(project: Project, name: str) -> str:
    """A column name as the warehouse's catalog would report it: Snowflake stores unquoted names upper-cased."""
    if project.warehouse.type == "snowflake" and name == name.lower() and re.fullmatch(r"[a-z_][a-z0-9_$]*", name):
        return name.upper()
    return name


def compile_with_known_columns(project: Project, graph: AssetGraph, keys: Iterable[str], known: KnownColumns, *,
                               use_cache: bool = True) -> tuple[CompileResult, dict[str, tuple[str, ...]]]:
    """Offline, recompile `keys` (models that failed only because a macro needed the warehouse) with
    `adapter.get_columns_in_relation` answered from `known`: `dbt_utils.star(ref('x'))` then compiles to x's
    known columns, as a data engineer expects when no account is reachable. A relation whose columns are not
    known still fails the model (needs a live warehouse); macros that read rows (get_column_values, date
    spines) still fail. Returns the result and, per compiled key, the sources whose declared (maybe
    incomplete) columns it used.

    Cached per model next to the compile cache, keyed by the known columns of its inputs (parents, and those
    of the ephemeral models it inlines: a model compiled in a later wave keeps both entries) and valid while
    the known columns of the relations it asked for (recorded per model during the compile) are the same:
    `<key>.known.json`.
    """
    out = CompileResult()
    declared_used: dict[str, tuple[str, ...]] = {}
    digest, version = _files_digest(project, graph), _dbt_version()
    relations = {a.key: str(a.relation) for a in graph}
    cache_dir = project.state_dir / CACHE_DIR
    need: dict[str, tuple[Asset, Path]] = {}
    for key in keys:
        asset = graph[key]
        seen = "|".join(f"{d}={known.digest(d)}" for d in known_inputs(graph, key))
        path = cache_dir / f"{cache_key(project, graph, asset, digest, version, 'known:' + seen, relations)}{_KNOWN_SUFFIX}"
        if use_cache:
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                if all(known.digest(k) == d for k, d in entry["asked"].items()):
                    if entry.get("sql") is not None:
                        out.sql[key] = entry["sql"]
                        out.origin[key] = "cache"
                        declared_used[key] = tuple(entry.get("declared") or ())
                    else:
                        out.failed[key] = entry["reason"]
                    continue
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                pass
        need[key] = (asset, path)
    if not need:
        return out, declared_used
    import threading

    index = graph.relation_index
    lock = threading.Lock()
    asked: dict[str, dict[str, str | None]] = {}

    def answer(relation: Any, node: str) -> list[str] | None:
        parts = tuple(str(p) for p in (getattr(relation, "database", None), getattr(relation, "schema", None),
                                       getattr(relation, "identifier", None)) if p)
        key = lookup_relation(index, parts)
        cols = known.columns.get(key) if key else None
        with lock:
            asked.setdefault(node, {})[key or ".".join(parts)] = known.digest(key) if key else None
        return None if cols is None else [_warehouse_case(project, c) for c in cols]

    from sqlassets.dbt.invoke import dbt_lock

    with dbt_lock(project):
        compiled, errors = _run_dbt_compile(project, [a for a, _ in need.values()], introspect=False,
                                            columns=answer)
    cache_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for key, (asset, path) in need.items():
        uid = asset.unique_id or ""
        mine = asked.get(uid, {})
        code = compiled.get(uid)
        if code is not None:
            used = tuple(sorted(k for k in mine if k in known.declared))
            out.sql[key], out.origin[key] = code, "compiled"
            declared_used[key] = used
            entry = {"asked": mine, "sql": code, "declared": list(used)}
        else:
            reason = (_one_line_reason(errors[uid], False) if uid in errors
                      else "dbt compile returned no SQL for it; is it enabled?")
            out.failed[key] = reason
            entry = {"asked": mine, "reason": reason}
        write_private(path, json.dumps(entry))  # (asked nothing and failed: another macro's query, whatever is known)
    return out, declared_used
