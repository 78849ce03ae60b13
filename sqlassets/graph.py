"""`AssetGraph`: one graph of every asset a project defines, validated once at construction.

Validation happens here and nowhere else: duplicate keys, dependencies on unknown assets and cycles
are errors that name what is wrong. Everything downstream (planner, lineage, checks) may assume a
valid DAG and iterate `graph.topo_order`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

from sqlassets.errors import GraphError
from sqlassets.model import Asset, Relation


class AssetGraph:
    def __init__(self, assets: Iterable[Asset]) -> None:
        self._assets: dict[str, Asset] = {}
        for asset in assets:
            if asset.key in self._assets:
                other = self._assets[asset.key]
                raise GraphError(
                    f"duplicate asset key '{asset.key}' ({other.path or other.kind} and {asset.path or asset.kind}); "
                    "rename one or declare '-- name:' in the SQL header"
                )
            self._assets[asset.key] = asset
        check_relations(self._assets.values())
        self._children: dict[str, list[str]] = {k: [] for k in self._assets}
        for asset in self._assets.values():
            for dep in asset.deps:
                if dep not in self._assets:
                    where = f" ({asset.path})" if asset.path else ""
                    raise GraphError(f"asset '{asset.key}'{where} depends on unknown asset '{dep}'")
                self._children[dep].append(asset.key)
        self._topo = self._toposort()
        self._position = {k: i for i, k in enumerate(self._topo)}
        self._by_relation: dict[str, str] | None = None

    # -- container protocol -------------------------------------------------------------------
    def __getitem__(self, key: str) -> Asset:
        try:
            return self._assets[key]
        except KeyError:
            raise GraphError(f"unknown asset '{key}'; run 'sqlassets list' to see asset keys") from None

    def __contains__(self, key: object) -> bool:
        return key in self._assets

    def __iter__(self) -> Iterator[Asset]:
        return (self._assets[k] for k in self._topo)

    def __len__(self) -> int:
        return len(self._assets)

    def get(self, key: str) -> Asset | None:
        return self._assets.get(key)

    @property
    def keys(self) -> list[str]:
        return list(self._topo)

    @property
    def topo_order(self) -> list[str]:
        """Every key, parents before children; ties broken by key for stable output."""
        return list(self._topo)

    def sort(self, keys: Iterable[str]) -> list[str]:
        """`keys` in topological order."""
        return sorted(set(keys), key=self._position.__getitem__)

    def parents(self, key: str) -> tuple[str, ...]:
        return self[key].deps

    def built_parents(self, key: str) -> tuple[str, ...]:
        """The parents a build of `key` waits for: its deps, looking through sources to what loads them
        (a seed a source is declared over), never an external asset itself."""
        out: list[str] = []
        todo = list(self[key].deps)
        seen: set[str] = set()
        while todo:
            dep = todo.pop(0)
            if dep in seen or dep not in self._assets:
                continue
            seen.add(dep)
            if self._assets[dep].is_external:
                todo.extend(self._assets[dep].deps)
            else:
                out.append(dep)
        return tuple(out)

    def children(self, key: str) -> tuple[str, ...]:
        self[key]
        return tuple(self._children[key])

    def upstream(self, key: str, depth: int | None = None) -> set[str]:
        """Transitive parents of `key` (not including it), at most `depth` hops away."""
        return self._walk(key, self.parents, depth)

    def downstream(self, key: str, depth: int | None = None) -> set[str]:
        """Transitive children of `key` (not including it), at most `depth` hops away."""
        return self._walk(key, self.children, depth)

    def _walk(self, key: str, step, depth: int | None) -> set[str]:
        self[key]
        seen: set[str] = set()
        frontier = deque([(key, 0)])
        while frontier:
            node, d = frontier.popleft()
            if depth is not None and d >= depth:
                continue
            for nxt in step(node):
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append((nxt, d + 1))
        seen.discard(key)
        return seen

    @property
    def relation_index(self) -> dict[str, str]:
        """Lower-cased `db.schema.id` / `schema.id` / `id` -> asset key (see `relation_index`)."""
        if self._by_relation is None:
            self._by_relation = relation_index(index_pairs(self._assets.values()))
        return self._by_relation

    def by_relation(self, name: str) -> Asset | None:
        """The asset a SQL table reference names (`db.schema.id`, `schema.id` or `id`, case-insensitive).

        A bare identifier resolves only when exactly one asset has it.
        """
        key = lookup_relation(self.relation_index, tuple(name.split(".")))
        return self._assets[key] if key else None

    def subgraph(self, keys: Iterable[str]) -> AssetGraph:
        """The induced graph on `keys` (deps outside it are dropped)."""
        wanted = set(keys)
        from dataclasses import replace

        return AssetGraph(
            replace(self._assets[k], deps=tuple(d for d in self._assets[k].deps if d in wanted))
            for k in self.sort(wanted)
        )

    # -- internals -----------------------------------------------------------------------------
    def _toposort(self) -> list[str]:
        indegree = {k: len(a.deps) for k, a in self._assets.items()}
        ready = sorted(k for k, n in indegree.items() if n == 0)
        order: list[str] = []
        import heapq

        heapq.heapify(ready)
        while ready:
            node = heapq.heappop(ready)
            order.append(node)
            for child in self._children[node]:
                indegree[child] -= 1
                if indegree[child] == 0:
                    heapq.heappush(ready, child)
        if len(order) != len(self._assets):
            cycle = self._find_cycle({k for k, n in indegree.items() if n > 0})
            raise GraphError(f"dependency cycle: {' -> '.join(cycle)}; break it by removing one of these refs")
        return order

    def _find_cycle(self, remaining: set[str]) -> list[str]:
        """One cycle among `remaining`, in dependency order, first node repeated at the end."""
        start = min(remaining)
        path: list[str] = []
        index: dict[str, int] = {}
        node = start
        while node not in index:
            index[node] = len(path)
            path.append(node)
            node = min(d for d in self._assets[node].deps if d in remaining)
        cycle = path[index[node]:]
        cycle.reverse()  # deps point upstream; print upstream -> downstream
        return [*cycle, cycle[0]]


# Warehouses whose identifiers are case-sensitive per part (database, schema, identifier); every other
# dialect folds case (DuckDB even when quoted; Snowflake/Redshift/Postgres for the unquoted identifiers
# dbt and sqlassets write by default). Unknown dialects fold too: a false clash is an error to read,
# a missed one is a table overwritten.
_CASE_SENSITIVE_PARTS: dict[str, tuple[bool, bool, bool]] = {"bigquery": (False, True, True)}


def relation_identity(asset: Asset) -> tuple[str | None, str | None, str] | None:
    """How the warehouse names `asset`'s table: parts case-folded as the warehouse compares them.

    None for assets that own no table (ephemeral models)."""
    rel = asset.relation
    if rel is None or asset.materialization == "ephemeral":
        return None
    sensitive = _CASE_SENSITIVE_PARTS.get(asset.dialect, (False, False, False))
    quoting = (asset.config or {}).get("quoting") if asset.kind == "source" else None
    if isinstance(quoting, dict) and asset.dialect == "snowflake":
        # A quoted Snowflake name keeps its case; unquoted ones fold (to upper).
        sensitive = tuple(bool(quoting.get(p)) for p in ("database", "schema", "identifier"))  # type: ignore[assignment]
    parts = (rel.database, rel.schema, rel.identifier)
    db, sch, ident = (p if p is None or s else p.lower() for p, s in zip(parts, sensitive, strict=True))
    return db, sch, ident or ""


def check_relations(assets: Iterable[Asset]) -> None:
    """Two assets naming one table means one overwrites the other (or a source): a load error.

    A missing database on one side (raw SQL on the default catalog) matches any database. A source over
    the table a dbt seed / model / snapshot of the project writes is no clash: that node loads it (the dbt
    loader links them, `config.written_by`); nor are two sources (or external tables) naming one table.
    """
    by_name: dict[tuple[str | None, str], list[tuple[str | None, Asset]]] = {}
    for asset in assets:
        ident = relation_identity(asset)
        if ident is None:
            continue
        db, sch, name = ident
        for other_db, other in by_name.get((sch, name), ()):
            if db is None or other_db is None or db == other_db:
                if _loads(other, asset) or _loads(asset, other) or (asset.is_external and other.is_external):
                    continue  # two sources over one table write nothing (dbt accepts them)
                first, second = sorted((other, asset), key=lambda a: (a.is_external, a.key))
                raise GraphError(
                    f"assets '{first.key}' ({first.path or first.kind}) and '{second.key}' "
                    f"({second.path or second.kind}) are the same warehouse relation {second.relation}; "
                    "writing one would overwrite the other: rename one (or set its schema/alias)")
        by_name.setdefault((sch, name), []).append((db, asset))


def _loads(writer: Asset, source: Asset) -> bool:
    """`writer` is the dbt seed / model / snapshot that builds `source`'s table (see the dbt loader)."""
    return source.kind == "source" and writer.kind in ("seed", "model", "snapshot") and \
        (source.config or {}).get("written_by") == writer.key


def index_pairs(assets: Iterable[Asset]) -> Iterator[tuple[Relation | None, str]]:
    """(relation, key) of every asset for `relation_index`, but the source, not its writer, for a table a
    source is declared over: SQL reading that table reads the source (`source()`), which depends on it."""
    assets = list(assets)
    writers = {(a.config or {}).get("written_by") for a in assets if a.kind == "source"}
    for a in assets:
        if not (a.kind != "source" and a.key in writers):
            yield a.relation, a.key


def relation_index(pairs: Iterable[tuple[Relation | None, str]]) -> dict[str, str]:
    """Lower-cased `db.schema.id`, `schema.id` and `id` -> key, for matching table references in SQL.

    A name two assets share (e.g. the same identifier in two schemas) is left out, so a reference
    resolves only when it is unambiguous.
    """
    index: dict[str, str] = {}
    ambiguous: set[str] = set()
    for relation, key in pairs:
        if relation is None:
            continue
        for lk in relation.lookup_keys():
            if lk in index and index[lk] != key:
                ambiguous.add(lk)
            index[lk] = key
    for lk in ambiguous:
        del index[lk]
    return index


def lookup_relation(index: dict[str, str], parts: tuple[str, ...]) -> str | None:
    """The key a table reference (catalog, schema, name parts) names; `db.schema.id` falls back to
    `schema.id`, since a project's database name is often left out or differs by target."""
    low = [p.lower() for p in parts if p]
    key = index.get(".".join(low))
    if key is None and len(low) > 2:
        key = index.get(".".join(low[-2:]))
    return key
