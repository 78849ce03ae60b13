"""Typed column edges and how they combine.

Why typed: "where does this number come from" and "what breaks if I change this column" need
different answers. A `copy` edge (passthrough, rename or cast) carries the value unchanged; a
`transform` computes a new value from its inputs; an `aggregate` reduces many rows to one; a
`filter` edge marks a column that only decides *which rows* exist (WHERE, JOIN ON/USING, GROUP BY,
HAVING, QUALIFY, ORDER BY with LIMIT). sqlglot's own lineage and the peers drop filter columns.

Two rules make the types compose along a path through CTEs and subqueries inside one query:
- `compose(outer, inner)`: the stronger of the two wins (copy < transform < aggregate < filter), so
  a copy of an aggregate is an aggregate and anything seen through a WHERE is a filter.
- `merge(a, b)`: when one input reaches an output by two routes, a value edge beats a filter edge,
  otherwise the stronger wins.
"""

from __future__ import annotations

from typing import Literal

EdgeKind = Literal["copy", "transform", "aggregate", "filter"]
EDGE_KINDS: tuple[EdgeKind, ...] = ("copy", "transform", "aggregate", "filter")
_RANK: dict[str, int] = {k: i for i, k in enumerate(EDGE_KINDS)}

COPY: EdgeKind = "copy"
TRANSFORM: EdgeKind = "transform"
AGGREGATE: EdgeKind = "aggregate"
FILTER: EdgeKind = "filter"


def compose(outer: str, inner: str) -> str:
    """The type of a two-hop path: `outer` applied to a value that reached it through `inner`."""
    return outer if _RANK[outer] >= _RANK[inner] else inner


def merge(a: str | None, b: str) -> str:
    """The type of one input reaching one output by two routes: value edges win over filter edges."""
    if a is None or a == b:
        return b
    if a == FILTER:
        return b
    if b == FILTER:
        return a
    return a if _RANK[a] >= _RANK[b] else b
