"""Column lists per asset, built in topological order, and what each downstream query may rely on.

Why a registry instead of one big `MappingSchema`: each model is qualified against exactly the
columns of the assets it depends on, so its lineage is a pure function of (its SQL, its upstream
column lists). That makes the cache key honest (see `cache.py`) and lets worker processes resolve
models without the whole project. Building a three-table `MappingSchema` costs ~12 µs.

Sources of column lists, in order of trust:
- a model's / SQL asset's own resolved output columns (the SQL says what it returns);
- declarations: sources' and models' YAML `columns:`, seeds' CSV header (the loaders fill
  `Asset.columns`);
- the warehouse catalog, when the DuckDB file exists and can be opened read-only;
- nothing: downstream references then become `inferred` columns, flagged as guesses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from sqlassets.graph import AssetGraph, lookup_relation
from sqlassets.model import Asset
from sqlassets.project import Project

# dbt adds these to every snapshot's select.
SNAPSHOT_COLUMNS = ("dbt_scd_id", "dbt_updated_at", "dbt_valid_from", "dbt_valid_to")


def declared_columns(asset: Asset) -> tuple[str, ...] | None:
    """YAML / CSV-header columns, lower-cased; None when nothing is declared."""
    if not asset.columns:
        return None
    return tuple(dict.fromkeys(c.name.lower() for c in asset.columns))


def catalog_rows(project: Project) -> tuple[list[tuple[str, str, str, str]] | None, str]:
    """(catalog, schema, table, column) rows of the DuckDB warehouse, opened read-only, and a one-line
    status; rows are None when there is no catalog to read (never raises)."""
    wh = project.warehouse
    if wh.type != "duckdb" or wh.path is None:
        return None, (f"catalog not read ({wh.type} warehouse, not queried by lineage): columns come from the SQL, "
                      "YAML declarations and what downstream SQL reads")
    path = Path(wh.path)
    if not path.exists():
        return None, f"catalog not read ({path.name} does not exist yet)"
    try:
        import duckdb

        con = duckdb.connect(str(path), read_only=True)
        try:
            rows = con.execute(
                "select table_catalog, table_schema, table_name, column_name from information_schema.columns "
                "order by table_catalog, table_schema, table_name, ordinal_position"
            ).fetchall()
        finally:
            con.close()
    except Exception as exc:  # locked, corrupt, newer storage version: lineage goes on without it
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, f"catalog not read ({first[:120]})"
    return rows, f"catalog read from {path.name}"


def read_catalog(project: Project | None, graph: AssetGraph, rows: tuple | None = None
                 ) -> tuple[dict[str, tuple[str, ...]], str]:
    """Columns per asset from the DuckDB warehouse's information_schema, opened read-only.

    Returns (columns by asset key, a one-line status). Never raises: a missing file, a file locked
    by a running build or a non-DuckDB warehouse all mean "no catalog", which lineage survives.
    `rows`: what `catalog_rows` returned, when the caller has read it already.
    """
    if project is None:
        return {}, "no project"
    found, status = rows if rows is not None else catalog_rows(project)
    if found is None:
        return {}, status
    index = graph.relation_index
    out: dict[str, list[str]] = {}
    for cat, sch, name, col in found:
        key = lookup_relation(index, (cat, sch, name))
        if key is not None:
            out.setdefault(key, []).append(col.lower())
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}, f"{status} ({len(out)} tables)"


class SchemaRegistry:
    """Known column lists per asset key, filled in topological order, with a fingerprint each."""

    def __init__(self) -> None:
        self._cols: dict[str, tuple[str, ...] | None] = {}
        self._fp: dict[str, str] = {}

    def set(self, key: str, columns: Iterable[str] | None) -> None:
        cols = tuple(columns) if columns is not None else None
        self._cols[key] = cols
        self._fp[key] = "?" if cols is None else hashlib.blake2b(
            "\x1f".join(cols).encode(), digest_size=8).hexdigest()

    def get(self, key: str) -> tuple[str, ...] | None:
        return self._cols.get(key)

    def fingerprint(self, key: str) -> str:
        return self._fp.get(key, "?")

    def tables_for(self, asset: Asset) -> dict[str, tuple[str, ...] | None]:
        """The column lists `asset`'s query is qualified against: its direct upstream assets."""
        return {d: self._cols.get(d) for d in asset.deps}
