"""The warehouse catalog lineage reads: columns of sources and unbuilt tables nobody declared.

`sqlassets lineage --catalog MODE` (default `auto`):

- `offline`   never touches the warehouse: columns come from the SQL, YAML declarations, seed headers
              and what downstream SQL reads (inferred, flagged).
- `auto`      a DuckDB file is read read-only each time (local, milliseconds). A remote warehouse
              (Snowflake, BigQuery) is read from a snapshot kept in the state dir; without one, or when
              it is older than a day or misses a schema the project now uses, the warehouse is asked once
              (a quick reachability check first: at most a couple of seconds when it is unreachable, and
              an unreachable warehouse is not asked again for ten minutes). Warm runs therefore stay
              offline and fast, like dbt's `catalog.json`, which `dbt docs generate` refreshes.
- `warehouse` asks the warehouse now and refreshes the snapshot; unreachable is an error (exit 2).

One query per database (Snowflake: `<db>.INFORMATION_SCHEMA.COLUMNS WHERE table_schema IN (...)`) or
one script over every dataset (BigQuery), never one per table. The snapshot is keyed by the target's
warehouse identity (type, account/host/project, database, schema), so `--target dev` and `--target prod`
never read each other's columns. Catalog columns feed each asset's schema fingerprint, so the lineage
cache recomputes exactly the models whose upstream columns changed.
"""

from __future__ import annotations

import hashlib
import marshal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from sqlassets.errors import UserError
from sqlassets.graph import AssetGraph, lookup_relation
from sqlassets.private_files import save_cache
from sqlassets.project import Project

MODES = ("auto", "warehouse", "offline")
#: a remote snapshot older than this is fetched again by `auto`
SNAPSHOT_TTL = 24 * 3600.0
#: after a failed fetch, `auto` stays offline this long before trying again
UNREACHABLE_TTL = 600.0
#: the reachability check's budget (DNS + TCP connect)
REACH_TIMEOUT = 2.0
_FORMAT = 1

Catalog = dict[str, tuple[str, ...]]


def read_catalog(project: Project | None, graph: AssetGraph, mode: str = "auto",
                 rows: tuple | None = None) -> tuple[Catalog, str]:
    """(columns by asset key, one status line for `--stats`). Only `mode='warehouse'` ever raises.

    `rows`: what `schema.catalog_rows` returned for a DuckDB warehouse, when the caller read it already
    (the lineage snapshot digests the same read)."""
    if mode not in MODES:
        raise UserError(f"unknown --catalog '{mode}'; use one of {', '.join(MODES)}")
    if project is None:
        return {}, "offline (no project)"
    if mode == "offline":
        return {}, ("offline (--catalog offline): columns come from the SQL, YAML declarations "
                    "and what downstream SQL reads")
    if project.warehouse.type == "duckdb":
        return _duckdb_catalog(project, graph, required=mode == "warehouse", rows=rows)
    return _remote_catalog(project, graph, refresh=mode == "warehouse")


# -- DuckDB: the file itself, read-only ------------------------------------------------------------------

def _duckdb_catalog(project: Project, graph: AssetGraph, *, required: bool, rows: tuple | None
                    ) -> tuple[Catalog, str]:
    from sqlassets.lineage.schema import catalog_rows

    found, status = rows if rows is not None else catalog_rows(project)
    if found is None:
        if required:
            raise UserError(f"--catalog warehouse: {status}; build first or use --catalog auto")
        return {}, f"offline ({status})"
    out = _by_asset(graph, _group(found))
    return out, f"duckdb {status} ({len(out)} tables)"


# -- Snowflake / BigQuery: INFORMATION_SCHEMA, snapshotted in the state dir -------------------------------

def _remote_catalog(project: Project, graph: AssetGraph, *, refresh: bool) -> tuple[Catalog, str]:
    wh = project.warehouse
    wanted = wanted_schemas(project, graph)
    path = snapshot_path(project)
    snap = load_snapshot(path)
    now = time.time()
    if not refresh and snap is not None:
        if snap["ok"] and now - snap["at"] < SNAPSHOT_TTL and wanted <= set(snap["schemas"]):
            out = _by_asset(graph, snap["tables"])
            return out, (f"{wh.type} catalog from INFORMATION_SCHEMA, cached {_age(now - snap['at'])} ago "
                         f"({len(out)} tables; --catalog warehouse refreshes)")
        if not snap["ok"] and now - snap["at"] < UNREACHABLE_TTL and snap.get("target") == _identity(project):
            return {}, (f"offline ({wh.type} warehouse unreachable {_age(now - snap['at'])} ago: {snap['error']}; "
                        f"--catalog warehouse retries now)")
    try:
        tables, queries = fetch(project, sorted(wanted, key=lambda p: (p[0] or "", p[1])))
    except UserError as exc:
        if refresh:
            raise UserError(f"--catalog warehouse: {exc}") from None
        save_snapshot(path, {"ok": False, "at": now, "error": str(exc)[:200], "target": _identity(project)})
        return {}, f"offline ({wh.type} warehouse not reachable: {str(exc)[:200]})"
    save_snapshot(path, {"ok": True, "at": now, "schemas": sorted(wanted, key=lambda p: (p[0] or "", p[1])),
                         "tables": tables, "target": _identity(project)})
    out = _by_asset(graph, tables)
    return out, (f"{wh.type} catalog from INFORMATION_SCHEMA, fetched now ({len(wanted)} schemas, "
                 f"{queries} {'query' if queries == 1 else 'queries'}, {len(out)} tables)")


def wanted_schemas(project: Project, graph: AssetGraph) -> set[tuple[str | None, str]]:
    """(database, schema) of every relation the project reads or writes, database None = the target's."""
    default_db = (project.warehouse.database or "").lower()
    out: set[tuple[str | None, str]] = set()
    for asset in graph:
        rel = asset.relation
        if rel is None:
            continue
        schema = rel.schema or project.warehouse.schema
        if not schema:
            continue
        db = (rel.database or "").lower() or None
        out.add((None if db == default_db else db, schema.lower()))
    return out


def fetch(project: Project, schemas: list[tuple[str | None, str]]) -> tuple[dict[tuple[str, str, str], tuple[str, ...]], int]:
    """INFORMATION_SCHEMA columns of `schemas` through the target's adapter: ((db, schema, table) ->
    columns, lower-cased; queries sent). Raises UserError (one line) when the warehouse cannot be reached."""
    from sqlassets.adapters.base import adapter_for

    adapter = adapter_for(project.warehouse)
    endpoint = adapter.endpoint()
    if endpoint is not None:
        reachable(*endpoint)
    try:
        session = adapter.session()
        before = session.requests
        try:
            rows = adapter.catalog(session, schemas)
        except UserError:
            raise
        except Exception:  # noqa: BLE001 - one missing database / dataset must not hide the others
            rows = []
            for pair in schemas:
                try:
                    rows.extend(adapter.catalog(session, [pair]))
                except Exception:  # noqa: BLE001 - a schema that does not exist yet has no columns
                    continue
        queries = session.requests - before
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the SDK's own errors: one line, secrets masked
        raise UserError(adapter.redact(_first_line(exc))[:200]) from None
    finally:
        adapter.close()
    grouped = _group((d, s, t, c) for d, s, t, c, *_ in rows)
    return grouped, queries


def reachable(host: str, port: int, timeout: float = REACH_TIMEOUT) -> None:
    """Raise UserError unless `host:port` accepts a TCP connection within `timeout` (DNS included:
    `getaddrinfo` has no timeout of its own, so it runs in a daemon thread)."""
    result: list[BaseException | None] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(None)
        except OSError as exc:
            result.append(exc)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    if not result:
        raise UserError(f"{host}:{port} did not answer within {timeout:g}s")
    if result[0] is not None:
        exc = result[0]
        raise UserError(f"{host}:{port} is not reachable ({getattr(exc, 'strerror', None) or exc})")


# -- snapshot file ---------------------------------------------------------------------------------------

def _identity(project: Project) -> str:
    wh = project.warehouse
    o = wh.options
    parts = [wh.type, str(project.target or ""), str(wh.database or ""), str(wh.schema or "")]
    parts += [str(o.get(k) or "") for k in ("account", "host", "port", "project", "api_endpoint")]
    return "\x1f".join(parts)


def snapshot_path(project: Project) -> Path:
    digest = hashlib.blake2b(_identity(project).encode(), digest_size=8).hexdigest()
    return Path(project.state_dir) / "lineage" / f"catalog-{project.warehouse.type}-{digest}.marshal"


def load_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        data = marshal.loads(path.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if isinstance(data, tuple) and len(data) == 2 and data[0] == _FORMAT and isinstance(data[1], dict):
        snap = data[1]
        if snap.get("ok"):
            snap["schemas"] = [tuple(p) for p in snap.get("schemas", ())]
        return snap
    return None


def save_snapshot(path: Path, snap: dict[str, Any]) -> None:
    """Atomically (temp file + rename); a read-only state dir costs a fetch next time, nothing else."""
    save_cache(path, marshal.dumps((_FORMAT, snap)))


# -- helpers ---------------------------------------------------------------------------------------------

def _group(rows: Any) -> dict[tuple[str, str, str], tuple[str, ...]]:
    out: dict[tuple[str, str, str], list[str]] = {}
    for cat, sch, name, col in rows:
        out.setdefault((str(cat).lower(), str(sch).lower(), str(name).lower()), []).append(str(col).lower())
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def _by_asset(graph: AssetGraph, tables: dict[tuple[str, str, str], tuple[str, ...]]) -> Catalog:
    index = graph.relation_index
    out: Catalog = {}
    for parts, cols in tables.items():
        key = lookup_relation(index, tuple(parts))
        if key is not None and key not in out:
            out[key] = tuple(cols)
    return out


def _age(seconds: float) -> str:
    if seconds < 90:
        return f"{max(0, int(seconds))}s"
    if seconds < 5400:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
