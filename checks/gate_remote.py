"""The CI gate on a cloud warehouse: build into zero-copy clones of the production schemas.

DuckDB copies the warehouse file; Snowflake clones instead: each schema that holds a built asset is
cloned (`CREATE OR REPLACE SCHEMA <schema>_sqlassets_ci CLONE <schema>`, metadata only, no data
copied) and the CI build runs with the adapter relocating every statement from the production schema
to its clone (`Warehouse.relocate`). The SQL is the one compiled for production, so nothing has to be
recompiled and nothing the build does can touch production. Sources are read where they are. The
clones are dropped afterwards unless `--keep`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError

if TYPE_CHECKING:
    from sqlassets.adapters.base import Adapter
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project

SUFFIX = "_sqlassets_ci"
_BUILT_KINDS = ("model", "seed", "snapshot", "sql")


@dataclass
class RemoteTarget:
    """The cloned schemas a CI build writes to; printed where the DuckDB gate prints its file."""

    project: Project
    pairs: list[tuple[tuple[str, str], tuple[str, str]]]
    seeded: bool = True
    _adapter: Adapter | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.project.warehouse.type} " + ", ".join(".".join(p for p in dst if p) for _src, dst in self.pairs)

    @property
    def stem(self) -> str:
        return str(self)

    def adapter(self) -> Adapter:
        if self._adapter is None:
            from sqlassets.adapters.base import adapter_for

            self._adapter = adapter_for(self.project.warehouse)
        return self._adapter

    def column_changes(self, graph: AssetGraph, changed: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Removed or retyped columns of changed assets: production schema vs its CI clone."""
        a = self.adapter()
        session = a.session()
        prod = _by_relation(a.catalog(session, [src for src, _ in self.pairs]))
        ci = _by_relation(a.catalog(session, [dst for _, dst in self.pairs]))
        to_ci = dict(self.pairs)
        out = []
        for ch in changed:
            if ch["change"] != "modified":
                continue
            rel = graph[ch["asset"]].relation
            if rel is None or not rel.schema:
                continue
            db = (rel.database or self.project.warehouse.database or "").lower()
            src = (db, rel.schema.lower())
            old = prod.get((*src, rel.identifier.lower()))
            dst = to_ci.get(src)
            new = ci.get((*dst, rel.identifier.lower())) if dst else None
            if not old or new is None:
                continue
            for col, typ in old.items():
                if col not in new:
                    out.append({"asset": ch["asset"], "column": col, "change": f"removed (was {typ})"})
                elif new[col] != typ:
                    out.append({"asset": ch["asset"], "column": col, "change": f"retyped {typ} -> {new[col]}"})
        return out

    def drop(self) -> None:
        a = self.adapter()
        try:
            session = a.session()
            for _src, dst in self.pairs:
                a.drop_schema(session, dst)
        finally:
            a.close()
            self._adapter = None


def _by_relation(rows: list[tuple[str, str, str, str, str]]) -> dict[tuple[str, str, str], dict[str, str]]:
    out: dict[tuple[str, str, str], dict[str, str]] = {}
    for d, s, t, c, typ in rows:
        out.setdefault((d.lower(), s.lower(), t.lower()), {})[c.lower()] = typ
    return out


def remote_ci_project(project: Project, graph: AssetGraph, ci_dir: Path) -> tuple[Project, RemoteTarget, bool]:
    """Clone every production schema holding a built asset; a project that builds into the clones."""
    import shutil

    from sqlassets.adapters.base import adapter_for

    wh = project.warehouse
    default_db = (wh.database or "").lower()
    schemas = sorted({((a.relation.database or default_db).lower(), a.relation.schema.lower()) for a in graph
                      if a.relation is not None and a.relation.schema and a.kind in _BUILT_KINDS})
    if not schemas:
        raise UserError("the CI gate found no schema to clone: no asset of the project is built")
    pairs = [(src, (src[0], src[1] + SUFFIX)) for src in schemas]
    adapter = adapter_for(wh)
    try:
        adapter.open()
        session = adapter.session()
        existing = {(d, s) for d, s, _t in adapter.relations(session) if d or s}
        # Production exists when any of its schemas does; one it never wrote (e.g. the snapshots' schema
        # where only `dbt snapshot` writes) is an empty CI schema. Nothing at all in production: the gate
        # builds the upstream too.
        seeded = any(src in existing for src, _dst in pairs)
        for src, dst in pairs:
            if src in existing:
                adapter.clone_schema(session, src, dst)
            else:
                adapter.drop_schema(session, dst)
                adapter.ensure_schema(session, _relation(dst))
    finally:
        adapter.close()
    ci_dir = ci_dir.resolve()
    if ci_dir.exists():
        shutil.rmtree(ci_dir)
    (ci_dir / "state").mkdir(parents=True)
    settings = replace(project.settings, state_dir=ci_dir / "state")
    cproj = replace(project, settings=settings, warehouse=replace(wh, relocate=tuple(pairs)))
    return cproj, RemoteTarget(cproj, pairs, seeded), seeded


def _relation(schema: tuple[str, str]) -> Any:
    from sqlassets.model import Relation

    return Relation(schema[0] or None, schema[1], "_")
