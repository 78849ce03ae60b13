"""`ColumnGraph`: the project-wide column graph; nodes are `asset.column`, edges are typed.

Stored as integer adjacency lists (one list of (node, kind) per node and direction) so a column's
whole upstream is a breadth-first walk over ints: well under a millisecond for thousands of nodes.
Edges point from an upstream column to the column it feeds.
"""

from __future__ import annotations

import difflib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlassets.errors import UserError
from sqlassets.lineage.edges import EDGE_KINDS
from sqlassets.lineage.result import AssetLineage

_KIND_CODE = {k: i for i, k in enumerate(EDGE_KINDS)}


@dataclass(frozen=True, slots=True)
class Reached:
    """One column reached by a walk: how far, by which edge, and through which column (`via`)."""

    column: str
    depth: int
    edge: str
    via: str

    def to_json(self) -> dict[str, object]:
        return {"column": self.column, "edge": self.edge, "depth": self.depth, "via": self.via}


@dataclass(slots=True)
class ColumnInfo:
    asset: str
    column: str
    #: resolved | unresolved | declared | inferred
    status: str
    reason: str = ""
    note: str = ""


STATUSES = ("resolved", "declared", "inferred", "unresolved")
_STATUS_CODE = {k: i for i, k in enumerate(STATUSES)}
_INFERRED_NOTE = "column not declared; seen in downstream SQL"


class _InfoView:
    """`cg.info[i]` -> ColumnInfo, built on demand from the parallel arrays (cheap to store and cache)."""

    def __init__(self, cg: ColumnGraph) -> None:
        self._cg = cg

    def __len__(self) -> int:
        return len(self._cg.nodes)

    def __getitem__(self, i: int) -> ColumnInfo:
        cg = self._cg
        asset = cg.node_asset[i]
        return ColumnInfo(asset, cg.nodes[i][len(asset) + 1:], STATUSES[cg.status[i]], cg.reasons.get(i, ""),
                          cg.notes.get(i, ""))

    def __iter__(self):
        return (self[i] for i in range(len(self._cg.nodes)))


@dataclass
class ColumnGraph:
    """Parallel arrays indexed by node id; `info` gives a per-node view."""

    nodes: list[str] = field(default_factory=list)
    node_asset: list[str] = field(default_factory=list)
    status: list[int] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)
    notes: dict[int, str] = field(default_factory=dict)
    up: list[list[tuple[int, int]]] = field(default_factory=list)
    down: list[list[tuple[int, int]]] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    #: asset key -> node ids of its columns, in column order
    asset_columns: dict[str, list[int]] = field(default_factory=dict)
    #: asset key -> its lineage record
    assets: dict[str, AssetLineage] = field(default_factory=dict)
    edge_count: int = 0

    @property
    def info(self) -> _InfoView:
        return _InfoView(self)

    # -- building ------------------------------------------------------------------------------
    def _node(self, asset: str, column: str, status: int) -> int:
        name = f"{asset}.{column}"
        nid = self.index.get(name)
        if nid is None:
            nid = len(self.nodes)
            self.index[name] = nid
            self.nodes.append(name)
            self.node_asset.append(asset)
            self.status.append(status)
            self.up.append([])
            self.down.append([])
            self.asset_columns.setdefault(asset, []).append(nid)
            if status == 2:
                self.notes[nid] = _INFERRED_NOTE
        return nid

    @classmethod
    def build(cls, records: Iterable[AssetLineage]) -> ColumnGraph:
        """One node per asset column (and per column inferred on an asset without known columns)."""
        g = cls()
        records = list(records)
        for rec in records:
            g.assets[rec.key] = rec
            status = 0 if rec.origin == "sql" else 1
            whole = rec.unresolved.get("*") if rec.origin != "sql" else None
            g.asset_columns.setdefault(rec.key, [])
            for col in rec.columns:
                nid = g._node(rec.key, col, status)
                why = rec.unresolved.get(col) or whole
                if why:
                    g.status[nid] = 3
                    g.reasons[nid] = why
                note = rec.notes.get(col)
                if note:
                    g.notes[nid] = note
        index = g.index
        for rec in records:
            for up_asset, cols in rec.inferred.items():
                for col in cols:
                    if f"{up_asset}.{col}" not in index:
                        g._node(up_asset, col, 2)
            key = rec.key
            prefix = key + "."
            up, down = g.up, g.down
            for col, up_asset, up_col, kind in rec.edges:
                if up_asset == key:
                    continue  # an incremental model reading itself ({{ this }}) is no lineage
                dst = index.get(prefix + col)
                if dst is None:
                    continue
                src = index.get(f"{up_asset}.{up_col}")
                if src is None:
                    src = g._node(up_asset, up_col, 2)
                code = _KIND_CODE[kind]
                up[dst].append((src, code))
                down[src].append((dst, code))
                g.edge_count += 1
        g._carry_inferred()
        return g

    def _carry_inferred(self) -> None:
        """Inferred columns follow `select *` passthroughs upstream, and mark the columns they feed.

        An inferred column on an asset that is `select * from X` (X's columns unknown) is a column of X
        too: add it there (inferred) with a copy edge, as far up as such passthroughs go. Then a column
        whose value comes straight from an inferred column (a copy / transform / aggregate edge) is
        `inferred` itself: its lineage rests on evidence, not on declared columns (one hop only: the
        columns computed from it downstream are resolved by their own SQL).
        """
        copy = _KIND_CODE["copy"]
        for nid in range(len(self.nodes)):  # grows while we walk: new upstream nodes are carried too
            if self.status[nid] != 2:
                continue
            asset = self.node_asset[nid]
            rec = self.assets.get(asset)
            source = rec.star_source if rec is not None else None
            if not source or source == asset or self.up[nid]:
                continue
            column = self.nodes[nid][len(asset) + 1:]
            src = self.index.get(f"{source}.{column}")
            if src is None:
                src = self._node(source, column, 2)
            self.up[nid].append((src, copy))
            self.down[src].append((nid, copy))
            self.edge_count += 1
        filt = _KIND_CODE["filter"]
        # one hop: a mart column computed from an inferred staging column is resolved by its own SQL
        hop = [nid for nid, ups in enumerate(self.up)
               if self.status[nid] == 0 and any(self.status[s] == 2 and k != filt for s, k in ups)]
        for nid in hop:
            self.status[nid] = 2

    def to_plain(self, *, with_down: bool = False) -> tuple:
        """Builtins for `marshal` (the warm-run graph cache); `assets` are cached separately.

        `with_down` stores the downstream lists too: marshal loads them faster than Python rebuilds them.
        """
        plain = (self.nodes, self.node_asset, self.status, self.reasons, self.notes, self.up, self.asset_columns,
                 self.edge_count)
        return (*plain, self.down) if with_down else plain

    @classmethod
    def from_plain(cls, t: tuple, assets: dict[str, AssetLineage]) -> ColumnGraph:
        nodes, node_asset, status, reasons, notes, up, asset_columns, edge_count, *stored_down = t
        if stored_down:
            down = stored_down[0]
        else:
            down = [[] for _ in nodes]
            for dst, ups in enumerate(up):
                for src, code in ups:
                    down[src].append((dst, code))
        return cls(nodes, node_asset, status, reasons, notes, up, down, {n: i for i, n in enumerate(nodes)},
                   asset_columns, assets, edge_count)

    # -- lookup --------------------------------------------------------------------------------
    def resolve(self, spec: str) -> int:
        """Node id of `ASSET.COLUMN` (case-insensitive); a UserError naming close matches otherwise."""
        if "." not in spec:
            raise UserError(f"'{spec}' is not ASSET.COLUMN; e.g. 'customers.customer_id'")
        nid = self.index.get(spec) or self.index.get(spec.lower())
        if nid is not None:
            return nid
        asset, _, column = spec.rpartition(".")
        key = asset if asset in self.asset_columns else next(
            (k for k in self.asset_columns if k.lower() == asset.lower()), None)
        if key is None:
            close = difflib.get_close_matches(asset, list(self.asset_columns), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else "; run 'sqlassets list' to see asset keys"
            raise UserError(f"unknown asset '{asset}' in '{spec}'{hint}")
        nid = self.index.get(f"{key}.{column.lower()}")
        if nid is not None:
            return nid
        cols = [self.info[i].column for i in self.asset_columns[key]]
        if not cols:
            rec = self.assets.get(key)
            why = rec.unresolved.get("*") if rec else None
            raise UserError(f"asset '{key}' has no known columns" + (f": {why}" if why else ""))
        from sqlassets.lineage.resolve import columns_text

        close = difflib.get_close_matches(column.lower(), cols, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"its {len(cols)} columns: {columns_text(cols)}"
        raise UserError(f"asset '{key}' has no column '{column}'; {hint}")

    # -- walks ---------------------------------------------------------------------------------
    def walk(self, nid: int, direction: str, depth: int | None = None, *, filters: bool = True) -> list[Reached]:
        """Every column reachable from `nid` upstream or downstream, breadth first, at most `depth` hops.

        `filters=False` follows value edges only (copy / transform / aggregate).
        """
        adj = self.up if direction == "upstream" else self.down
        skip = -1 if filters else _KIND_CODE["filter"]
        seen = {nid}
        out: list[Reached] = []
        frontier = deque([(nid, 0)])
        nodes = self.nodes
        while frontier:
            node, d = frontier.popleft()
            if depth is not None and d >= depth:
                continue
            for nxt, code in adj[node]:
                if nxt in seen or code == skip:
                    continue
                seen.add(nxt)
                out.append(Reached(nodes[nxt], d + 1, EDGE_KINDS[code], nodes[node]))
                frontier.append((nxt, d + 1))
        return out

    def reach_ids(self, nid: int, direction: str, depth: int | None = None) -> set[int]:
        """Node ids reachable from `nid` (not including it): the fast path for counts and closures."""
        adj = self.up if direction == "upstream" else self.down
        seen = {nid}
        frontier = deque([(nid, 0)])
        while frontier:
            node, d = frontier.popleft()
            if depth is not None and d >= depth:
                continue
            for nxt, _ in adj[node]:
                if nxt not in seen:
                    seen.add(nxt)
                    frontier.append((nxt, d + 1))
        seen.discard(nid)
        return seen

    def edges_among(self, ids: set[int]) -> list[tuple[str, str, str]]:
        """(upstream, downstream, kind) for every edge with both ends in `ids`."""
        out = []
        for dst in sorted(ids):
            for src, code in self.up[dst]:
                if src in ids:
                    out.append((self.nodes[src], self.nodes[dst], EDGE_KINDS[code]))
        return out
