"""`AssetLineage`: what lineage knows about one asset, in plain data (cached, sent between processes).

One record per asset: its output columns in order, one typed edge per (column, upstream column),
the columns it could not follow with the reason, the columns it followed on a guess with the
note, and where its column list came from (`origin`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Where an asset's column list came from: the SQL itself, YAML / CSV declarations, the warehouse
# catalog, references seen in downstream SQL, or nowhere.
ORIGINS = ("sql", "declared", "catalog", "inferred", "unknown")


@dataclass(slots=True)
class AssetLineage:
    key: str
    columns: tuple[str, ...]
    #: (column, upstream asset, upstream column, edge kind)
    edges: tuple[tuple[str, str, str, str], ...] = ()
    #: column -> why it (or part of it) could not be followed; "*" for the whole asset
    unresolved: dict[str, str] = field(default_factory=dict)
    #: column -> why an edge is a best-effort guess
    notes: dict[str, str] = field(default_factory=dict)
    #: tables the SQL reads (asset keys, or the table's own name when it is no asset)
    reads: tuple[str, ...] = ()
    #: upstream asset -> columns the SQL references on it although its columns are unknown
    inferred: dict[str, tuple[str, ...]] = field(default_factory=dict)
    origin: str = "sql"
    parsed: bool = False
    #: the upstream asset this asset passes through unchanged with `select *` when that asset's columns
    #: are unknown: a column read downstream is then inferred on it too (CTE-star inference across assets)
    star_source: str | None = None

    def to_plain(self) -> tuple[Any, ...]:
        """A tuple of builtins for `marshal` (the cache format)."""
        return (self.key, self.columns, self.edges, self.unresolved, self.notes, self.reads, self.inferred,
                self.origin, self.parsed, self.star_source)

    @classmethod
    def from_plain(cls, t: tuple[Any, ...]) -> AssetLineage:
        return cls(*t)
