"""The asset model: frozen dataclasses every stage reads and none mutates.

Loaders build `Asset`s; the graph, planner, lineage and checks only read them. Mutable-looking
fields (`meta`, `config`) are excluded from equality/hash so the dataclass can stay frozen and
hashable; treat them as read-only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

AssetKind = Literal["model", "seed", "snapshot", "source", "sql", "external"]
KINDS: tuple[str, ...] = ("model", "seed", "snapshot", "source", "sql", "external")


@dataclass(frozen=True, slots=True)
class Relation:
    """Where an asset lives in the warehouse. `database` may be None (DuckDB default catalog)."""

    database: str | None
    schema: str | None
    identifier: str

    def __str__(self) -> str:
        return ".".join(p for p in (self.database, self.schema, self.identifier) if p)

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p for p in (self.database, self.schema, self.identifier) if p)

    def lookup_keys(self) -> tuple[str, ...]:
        """Lower-cased names a SQL query may use for this relation: db.schema.id, schema.id, id."""
        db, sch, ident = (p.lower() if p else p for p in (self.database, self.schema, self.identifier))
        keys = []
        if db and sch:
            keys.append(f"{db}.{sch}.{ident}")
        if sch:
            keys.append(f"{sch}.{ident}")
        keys.append(ident)
        return tuple(keys)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class Asset:
    """One node of the asset graph.

    key: unique asset key (dbt node name, package-qualified only on a clash; `source.table` for
        sources; declared name or file stem for raw SQL files).
    kind: model | seed | snapshot | source | sql | external (a table a raw SQL file reads that no
        loader knows: observed, never materialized).
    materialization: view | table | incremental | ephemeral | seed | snapshot | external | ...
    deps: keys of upstream assets (ephemeral dbt models already linked through).
    config: the dbt node config (or the raw SQL header), where partitions, unique_key,
        incremental_strategy, event_time, batch_size... live. Read by the partitions module.
    code_version: hash of raw SQL + config, used for staleness.
    """

    key: str
    kind: AssetKind
    relation: Relation | None
    materialization: str
    deps: tuple[str, ...] = ()
    description: str = ""
    columns: tuple[Column, ...] = ()
    tags: tuple[str, ...] = ()
    group: str | None = None
    owner: str | None = None
    path: str | None = None
    raw_sql: str | None = None
    compiled_sql: str | None = None
    code_version: str | None = None
    dialect: str = "duckdb"
    unique_id: str | None = None
    package: str | None = None
    version: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    config: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_external(self) -> bool:
        """Sources and unknown tables are observed, never materialized."""
        return self.kind in ("source", "external")

    @property
    def name(self) -> str:
        """The unqualified name (a dbt node's name, a source's table, a raw SQL asset's key)."""
        return self.key.rsplit(".", 1)[-1] if self.kind in ("source",) else self.key

    def column(self, name: str) -> Column | None:
        low = name.lower()
        for c in self.columns:
            if c.name.lower() == low:
                return c
        return None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON shape of `sqlassets list --output json` / `graph --format json`."""
        return {
            "key": self.key,
            "kind": self.kind,
            "relation": str(self.relation) if self.relation else None,
            "deps": list(self.deps),
            "materialization": self.materialization,
            "tags": list(self.tags),
            "group": self.group,
            "owner": self.owner,
            "description": self.description,
            "columns": [{"name": c.name, "type": c.type, "description": c.description} for c in self.columns],
            "code_version": self.code_version,
            "path": self.path,
        }
