"""Build the project-wide column graph: SQL per asset -> schemas in topological order -> lineage.

Flow (data flows one way: this reads the `AssetGraph`, never changes it):
1. each asset's SQL: the manifest's compiled code, a raw SQL file's text, or `sqlassets.dbt.compile`
   for dbt models the manifest has not compiled; sources, seeds and external tables have none;
2. the warehouse catalog (`catalog.py`, `catalog=` auto | warehouse | offline): the DuckDB file
   read-only, or a Snowflake / BigQuery INFORMATION_SCHEMA snapshot; optional unless asked for;
3. assets in dependency waves: each asset is qualified against its parents' column lists; a cache
   hit (same SQL, same parent schemas) skips the work; misses run inline, or with `workers > 1` on
   a fork-based process pool per wave (qualify is CPU-bound and the GIL would serialize threads);
4. `ColumnGraph.build` over all records.
"""

from __future__ import annotations

import gc
import hashlib
import marshal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlassets.errors import UserError
from sqlassets.graph import AssetGraph, index_pairs, lookup_relation, relation_index
from sqlassets.lineage import snapshot
from sqlassets.lineage.cache import LineageCache, fingerprint
from sqlassets.lineage.catalog import read_catalog
from sqlassets.lineage.graph import ColumnGraph
from sqlassets.lineage.result import AssetLineage
from sqlassets.lineage.schema import (
    SNAPSHOT_COLUMNS,
    SchemaRegistry,
    declared_columns,
)
from sqlassets.model import Asset
from sqlassets.project import Project

_NO_SQL_KINDS = ("source", "seed", "external")
# Misses below this many per wave run inline: starting workers costs more than it saves.
_POOL_MIN_TASKS = 40
_INDEX: dict[str, str] = {}
#: bump when ColumnGraph.build derives something new from the same records
_GRAPH_VERSION = "graph-2"


@dataclass
class BuildStats:
    assets: int = 0
    sql_assets: int = 0
    computed: int = 0
    from_cache: int = 0
    seconds: float = 0.0
    workers: int = 1
    catalog: str = ""
    no_sql: dict[str, str] = field(default_factory=dict)


@dataclass
class LineageBuild:
    columns: ColumnGraph
    stats: BuildStats


def _has_jinja(sql: str) -> bool:
    return "{{" in sql or "{%" in sql


def collect_sql(project: Project | None, graph: AssetGraph, *, use_cache: bool = True
                ) -> tuple[dict[str, str], dict[str, str]]:
    """(SQL by asset key, reason by asset key for SQL assets whose SQL cannot be had).

    dbt models get their SQL as dbt would (`sqlassets.dbt.compile.compile_assets`: the user's compiled
    manifest, the compile cache, one `dbt compile`); a model that fails to compile has its own reason and
    costs no other model its lineage.
    """
    sql: dict[str, str] = {}
    missing: dict[str, str] = {}
    need_compile: list[str] = []
    for asset in graph:
        if asset.kind in _NO_SQL_KINDS:
            continue
        if asset.raw_sql and not _has_jinja(asset.raw_sql) and not asset.compiled_sql:
            sql[asset.key] = asset.raw_sql
        elif asset.raw_sql or asset.compiled_sql:
            need_compile.append(asset.key)
        else:
            missing[asset.key] = "no SQL in the manifest"
    if not need_compile:
        return sql, missing
    if project is None:
        for key in need_compile:
            if graph[key].compiled_sql:
                sql[key] = graph[key].compiled_sql
            else:
                missing[key] = "no compiled SQL in the manifest; run 'dbt compile'"
        return sql, missing
    from sqlassets.dbt.compile import compile_assets

    try:
        result = compile_assets(project, graph, need_compile, use_cache=use_cache)
    except UserError as exc:  # dbt could not run at all (no profile, the project does not parse)
        for key in need_compile:
            if graph[key].compiled_sql:
                sql[key] = graph[key].compiled_sql
            else:
                missing[key] = f"could not compile: {exc}"
        return sql, missing
    sql.update(result.sql)
    for key in need_compile:
        if key not in result.sql:
            missing[key] = result.failed.get(key, "dbt compile returned no SQL for it")
    _name_the_macros(project, graph, missing)
    return sql, missing


_GENERIC = "a macro runs a query while compiling"


def _name_the_macros(project: Project, graph: AssetGraph, missing: dict[str, str]) -> None:
    """"needs a live warehouse" reasons name the macro that queries (from the manifest's macro calls)."""
    keys = [k for k, why in missing.items() if _GENERIC in why and graph[k].unique_id]
    if not keys:
        return
    from sqlassets.dbt.loader import load_manifest
    from sqlassets.dbt.macros import MacroIndex

    try:
        index = MacroIndex(load_manifest(project, parse=False))
    except UserError:
        return
    for key in keys:
        why = index.why(graph[key].unique_id or "")
        if why:
            missing[key] = missing[key].replace(_GENERIC, f"{_GENERIC} ({why})", 1)


_NEEDS_LIVE = "needs a live warehouse"


def _note_declared(rec: AssetLineage, sources: tuple[str, ...]) -> AssetLineage:
    """Columns of a model compiled offline from sources' declared YAML columns say so: the YAML may leave
    some out, and the live warehouse would have listed them."""
    from dataclasses import replace

    note = (f"compiled offline from the declared columns of {', '.join(sources)} (not the warehouse's: "
            "the YAML may leave columns out)")
    return replace(rec, notes={**{c: note for c in rec.columns}, **rec.notes})


def _recompile_with_known_columns(project: Project | None, graph: AssetGraph, records: dict[str, AssetLineage],
                                  sql: dict[str, str], missing: dict[str, str], tried: set[tuple[str, str]],
                                  declared_used: dict[str, tuple[str, ...]], *, use_cache: bool) -> bool:
    """Offline (a warehouse nobody can reach): models that failed only because a macro needed the warehouse
    are compiled again with `adapter.get_columns_in_relation` answered from the columns this pass knows
    (`sqlassets.dbt.compile.compile_with_known_columns`). True when some now compiled: their SQL is in `sql`
    and another lineage pass follows (their children may now compile too: DAG order, one wave per pass).
    """
    if project is None or project.warehouse.type == "duckdb":
        return False
    todo = [k for k, why in missing.items() if _NEEDS_LIVE in why and graph[k].kind in ("model", "snapshot")
            and graph[k].materialization != "ephemeral"]
    if not todo:
        return False
    from sqlassets.dbt.compile import KnownColumns, compile_with_known_columns, known_inputs

    cols: dict[str, tuple[str, ...]] = {}
    declared: set[str] = set()
    for key, rec in records.items():
        asset = graph[key]
        if asset.kind == "source":
            if rec.columns:
                cols[key] = rec.columns
                declared.add(key)
        elif asset.kind == "seed" and rec.columns:
            cols[key] = rec.columns
        elif rec.origin == "sql" and "*" not in rec.unresolved and rec.columns:
            cols[key] = rec.columns
    known = KnownColumns(cols, frozenset(declared))
    fresh = []
    for key in todo:
        mark = (key, "|".join(f"{d}={known.digest(d)}" for d in known_inputs(graph, key)))
        if mark not in tried:
            tried.add(mark)
            fresh.append(key)
    if not fresh:
        return False
    try:
        result, used = compile_with_known_columns(project, graph, fresh, known, use_cache=use_cache)
    except UserError:
        return False
    for key, code in result.sql.items():
        sql[key] = code
        missing.pop(key, None)
        if used.get(key):
            declared_used[key] = used[key]
    changed = {k: why for k, why in result.failed.items() if why != missing.get(k)}
    _name_the_macros(project, graph, changed)
    missing.update(changed)
    return bool(result.sql)


def resolve_asset(key: str, kind: str, sql: str, dialect: str, tables: dict[str, Sequence[str] | None],
                  index: dict[str, str], local: dict[str, str] | None = None) -> AssetLineage:
    """One asset's lineage record; every failure becomes a reason on the record, never an exception.

    `local`: the relation index of the asset's own dependencies, looked up first: two sources declared
    over one table make its name ambiguous project-wide, but not among the ones this model reads.
    """
    from sqlassets.lineage.resolve import ResolveError, resolve_query

    def lookup(parts: tuple[str, ...]) -> str | None:
        return (lookup_relation(local, parts) if local else None) or lookup_relation(index, parts)

    try:
        q = resolve_query(sql, dialect, tables, lookup)
    except ResolveError as exc:
        return AssetLineage(key, (), unresolved={"*": str(exc)}, origin="unknown")
    except RecursionError:
        return AssetLineage(key, (), unresolved={"*": "query nests too deeply to follow"}, origin="unknown")
    except Exception as exc:  # sqlglot internals on SQL we did not foresee: report, never crash
        msg = str(exc).splitlines()[0] if str(exc) else ""
        return AssetLineage(key, (), unresolved={"*": f"lineage failed ({type(exc).__name__}: {msg[:160]})"},
                            origin="unknown")
    columns = list(q.columns)
    if kind == "snapshot":
        columns += [c for c in SNAPSHOT_COLUMNS if c not in q.edges]
    edges = tuple((col, a, c, k) for col in q.columns for (a, c), k in sorted(q.edges[col].items()))
    return AssetLineage(
        key,
        tuple(columns),
        edges,
        q.unresolved,
        q.notes,
        tuple(q.reads),
        {k: tuple(sorted(v)) for k, v in q.inferred.items()},
        origin="sql",
        parsed=True,
        star_source=q.star_source,
    )


def _run_chunk(tasks: list[tuple]) -> list[tuple]:
    """Worker entry point: the relation index was inherited through fork."""
    return [resolve_asset(*t[:5], _INDEX, t[5]).to_plain() for t in tasks]


def _levels(graph: AssetGraph, keys: Sequence[str]) -> list[list[str]]:
    level: dict[str, int] = {}
    waves: list[list[str]] = []
    for key in keys:
        lv = 1 + max((level[d] for d in graph[key].deps if d in level), default=-1)
        level[key] = lv
        if lv == len(waves):
            waves.append([])
        waves[lv].append(key)
    return waves


def _fallback_columns(asset: Asset, catalog: dict[str, tuple[str, ...]]) -> tuple[tuple[str, ...] | None, str]:
    cols = declared_columns(asset)
    if cols is not None:
        return cols, "declared"
    if asset.key in catalog:
        return catalog[asset.key], "catalog"
    return None, "unknown"


def _written_by(graph: AssetGraph, asset: Asset, registry: SchemaRegistry
                ) -> tuple[tuple[str, ...] | None, tuple[tuple[str, str, str, str], ...]]:
    """A source declared over the table a seed / model of the project writes (`config.written_by`):
    (its columns when its YAML declares none: the writer's, from the CSV header or the model's SQL;
    copy edges writer.col -> source.col)."""
    writer = (asset.config or {}).get("written_by") if asset.kind == "source" else None
    if not writer or writer not in graph:
        return None, ()
    theirs = registry.get(writer)
    if theirs is None:
        return None, ()
    mine = declared_columns(asset)
    cols = mine if mine is not None else theirs
    return (None if mine is not None else theirs), tuple((c, writer, c, "copy") for c in cols if c in theirs)


def build_lineage(project: Project | None, graph: AssetGraph, *, use_cache: bool = True,
                  workers: int | None = None, cache: LineageCache | None = None,
                  catalog: str = "auto") -> LineageBuild:
    """The column graph of the whole project (cached in the project's state dir).

    The cyclic garbage collector is paused meanwhile: building ~10^5 tuples and lists (cache load,
    adjacency lists) otherwise triggers repeated full collections that cost more than the work.
    Nothing here makes reference cycles that must be collected promptly.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_lineage(project, graph, use_cache=use_cache, workers=workers, cache=cache, catalog=catalog)
    finally:
        if was_enabled:
            gc.enable()


def _build_lineage(project: Project | None, graph: AssetGraph, *, use_cache: bool, workers: int | None,
                   cache: LineageCache | None, catalog: str) -> LineageBuild:
    global _INDEX
    started = time.perf_counter()
    if cache is None:
        cache = LineageCache.for_state_dir(project.state_dir if (use_cache and project is not None) else None)
    # The whole-project snapshot: unchanged inputs, one file read and nothing else (see snapshot.py).
    snap_dir = cache.path.parent if (use_cache and project is not None and cache.path is not None) else None
    sig = catalog_read = pre = None
    if snap_dir is not None:
        token, catalog_read = (("offline", None) if catalog == "offline"
                               else snapshot.catalog_token(project, snap_dir))
        if catalog != "offline" and project.warehouse.type != "duckdb":
            # A remote catalog is its snapshot file in `auto` (read here, no request) or a fetch when
            # asked for: its columns go into the signature, its status line is today's.
            pre = read_catalog(project, graph, catalog)
            token += "|" + hashlib.blake2b(marshal.dumps(sorted(pre[0].items())), digest_size=16).hexdigest()
        sig = snapshot.signature(project, graph, f"{token}|{catalog}")
        stored = snapshot.load(snap_dir, sig)
        if stored is not None:
            build = _from_snapshot(stored, started)
            if pre is not None:
                build.stats.catalog = pre[1]
            return build
    stats = BuildStats(assets=len(graph))
    sql, missing = collect_sql(project, graph, use_cache=use_cache)
    stats.sql_assets = len(sql)
    stats.no_sql = missing
    columns_of, stats.catalog = pre if pre is not None else read_catalog(project, graph, catalog, catalog_read)
    index = graph.relation_index
    if workers is None:
        # In-process by default: on the 2-core target machine a fork pool measured slower (wave
        # barriers, pickling, other load); bench/bench_lineage.py prints both side by side.
        workers = 1
    pool = None
    declared_used: dict[str, tuple[str, ...]] = {}
    tried: set[tuple[str, str]] = set()
    computed_keys: set[str] = set()
    while True:  # one more pass per wave of models recompiled offline with the columns known so far
        registry = SchemaRegistry()
        stats.from_cache = 0  # (a later pass finds what an earlier one computed: counted once, as computed)
        records: dict[str, AssetLineage] = {}

        def finish(asset: Asset, rec: AssetLineage, from_writer: tuple[str, ...] | None = None, *,
                   records: dict[str, AssetLineage] = records, registry: SchemaRegistry = registry) -> None:
            if declared_used.get(asset.key) and rec.origin == "sql":
                rec = _note_declared(rec, declared_used[asset.key])
            records[asset.key] = rec
            if rec.origin == "sql" and "*" not in rec.unresolved:
                registry.set(asset.key, rec.columns)
                return
            cols, origin = _fallback_columns(asset, columns_of)
            if cols is None and from_writer is not None:
                cols, origin = from_writer, "declared"
            if rec.origin == "sql" and cols is not None:
                # `select *` over unknown columns: the declared / catalog list stands in for the rest.
                extra = tuple(c for c in cols if c not in rec.columns)
                unresolved = {**rec.unresolved, **dict.fromkeys(extra, rec.unresolved["*"])}
                rec = AssetLineage(rec.key, rec.columns + extra, rec.edges, unresolved, rec.notes, rec.reads,
                                   rec.inferred, rec.origin, rec.parsed, rec.star_source)
                records[asset.key] = rec
                registry.set(asset.key, rec.columns)
            elif rec.origin != "sql":
                rec.columns = cols or ()
                rec.origin = origin
                registry.set(asset.key, cols)
            else:
                registry.set(asset.key, None)

        try:
            for wave in _levels(graph, graph.topo_order):
                todo: list[tuple[Asset, str, tuple]] = []
                for key in wave:
                    asset = graph[key]
                    if key not in sql:
                        reason = missing.get(key)
                        from_writer, edges = _written_by(graph, asset, registry)
                        rec = AssetLineage(key, (), edges, unresolved={"*": reason} if reason else {}, origin="declared")
                        finish(asset, rec, from_writer)
                        continue
                    tables = registry.tables_for(asset)
                    fp = fingerprint(sql[key], asset.dialect, {d: registry.fingerprint(d) for d in asset.deps})
                    hit = cache.get(key, fp)
                    if hit is not None:
                        stats.from_cache += key not in computed_keys
                        finish(asset, hit)
                        continue
                    local = relation_index(index_pairs(graph[d] for d in asset.deps if d in graph)) if asset.deps else None
                    todo.append((asset, fp, (key, asset.kind, sql[key], asset.dialect, tables, local)))
                if not todo:
                    continue
                stats.computed += len(todo)
                computed_keys.update(a.key for a, _, _ in todo)
                if workers > 1 and len(todo) >= _POOL_MIN_TASKS:
                    if pool is None:
                        import multiprocessing
                        from concurrent.futures import ProcessPoolExecutor

                        _INDEX = index
                        pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"))
                        stats.workers = workers
                    size = max(4, -(-len(todo) // (workers * 4)))
                    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
                    futures = [pool.submit(_run_chunk, [t for _, _, t in chunk]) for chunk in chunks]
                    results = []
                    for chunk, fut in zip(chunks, futures, strict=True):
                        results.extend(zip(chunk, fut.result(), strict=True))
                    for (asset, fp, _), plain in results:
                        rec = AssetLineage.from_plain(plain)
                        cache.put(asset.key, fp, rec)
                        finish(asset, rec)
                else:
                    for asset, fp, task in todo:
                        rec = resolve_asset(*task[:5], index, task[5])
                        cache.put(asset.key, fp, AssetLineage.from_plain(rec.to_plain()))
                        finish(asset, rec)
        finally:
            if pool is not None:
                pool.shutdown()
                pool = None
                _INDEX = {}
        again = _recompile_with_known_columns(project, graph, records, sql, missing, tried, declared_used,
                                              use_cache=use_cache)
        if not again:
            break
        stats.sql_assets = len(sql)
    cache.prune(graph.topo_order)
    cache.save()
    ordered = [records[k] for k in graph.topo_order]
    # The column graph is a pure function of the records: reuse the stored one when they all match.
    signature = hashlib.blake2b(marshal.dumps([_GRAPH_VERSION, *(r.to_plain() for r in ordered)]),
                                digest_size=16).hexdigest()
    plain = cache.load_graph(signature)
    if plain is not None:
        columns = ColumnGraph.from_plain(plain, {r.key: r for r in ordered})
    else:
        columns = ColumnGraph.build(ordered)
        cache.save_graph(signature, columns.to_plain())
    if sig is not None and snap_dir is not None:
        snapshot.save(snap_dir, sig, ((stats.assets, stats.sql_assets, stats.no_sql, stats.catalog),
                                      [r.to_plain() for r in ordered], columns.to_plain(with_down=True)))
    stats.seconds = time.perf_counter() - started
    return LineageBuild(columns, stats)


def _from_snapshot(stored: tuple, started: float) -> LineageBuild:
    (n_assets, n_sql, no_sql, catalog), plains, graph_plain = stored
    records = {p[0]: AssetLineage.from_plain(p) for p in plains}
    stats = BuildStats(assets=n_assets, sql_assets=n_sql, from_cache=n_sql, catalog=catalog, no_sql=no_sql)
    columns = ColumnGraph.from_plain(graph_plain, records)
    stats.seconds = time.perf_counter() - started
    return LineageBuild(columns, stats)
