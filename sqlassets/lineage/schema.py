"""Column lists per asset, built in topological order, and what each downstream query may rely on.

Why a registry instead of one big `MappingSchema`: each model is qualified against exactly the
columns of the assets it depends on, so its lineage is a pure function of (its SQL, its upstream
column lists). That makes the cache key honest (see `cache.py`) and lets worker processes resolve
models without the whole project. Building a three-table `MappingSchema` costs ~12 µs.

Sources of column lists, in order of trust:
- a model's / SQL asset's own resolved output columns (the SQL says what it returns);
- declarations: sources' and models' YAML `columns:`, seeds' CSV header (the loaders fill
  `Asset.columns`);
- the warehouse catalog (`catalog.py`: the DuckDB file read-only, or a Snowflake / BigQuery
  INFORMATION_SCHEMA snapshot), unless `--catalog offline`;
- nothing: downstream references then become `inferred` columns, flagged as guesses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from sqlassets.model import Asset

if TYPE_CHECKING:
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
        return None, f"catalog not read ({wh.type} warehouse without a file)"
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
