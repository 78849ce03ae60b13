"""One column's lineage as text (a tree), JSON (the documented shape), Graphviz dot or Mermaid."""

from __future__ import annotations

import json
from typing import Any

from sqlassets.lineage.graph import ColumnGraph, Reached

FORMATS = ("text", "json", "dot", "mermaid")
DIRECTIONS = ("upstream", "downstream")


def walks(cg: ColumnGraph, nid: int, directions: tuple[str, ...], depth: int | None, filters: bool = True
          ) -> dict[str, list[Reached]]:
    return {d: cg.walk(nid, d, depth, filters=filters) for d in directions}


def _status(cg: ColumnGraph, name: str) -> dict[str, str]:
    info = cg.info[cg.index[name]]
    out = {"status": info.status}
    if info.reason:
        out["reason"] = info.reason
    if info.note:
        out["note"] = info.note
    return out


def to_json(cg: ColumnGraph, nid: int, found: dict[str, list[Reached]]) -> dict[str, Any]:
    """{"column": ..., "upstream": [{"column", "edge", "depth", "via"}...], "downstream": [...]}."""
    name = cg.nodes[nid]
    out: dict[str, Any] = {"column": name, **_status(cg, name)}
    for direction, reached in found.items():
        rows = []
        for r in reached:
            row = r.to_json()
            info = cg.info[cg.index[r.column]]
            if info.status in ("unresolved", "inferred"):
                row["status"] = info.status
                if info.reason:
                    row["reason"] = info.reason
            rows.append(row)
        out[direction] = rows
    return out


def to_text(cg: ColumnGraph, nid: int, found: dict[str, list[Reached]]) -> str:
    """A tree per direction; each column once, under the column it was first reached through."""
    name = cg.nodes[nid]
    info = cg.info[nid]
    head = f"{name}  ({info.status})"
    lines = [head]
    if info.reason:
        lines.append(f"  ! {info.reason}")
    if info.note:
        lines.append(f"  ~ {info.note}")
    for direction, reached in found.items():
        arrow = "<-" if direction == "upstream" else "->"
        lines.append(f"{direction}: {len(reached)} column{'s' if len(reached) != 1 else ''}")
        children: dict[str, list[Reached]] = {}
        for r in reached:
            children.setdefault(r.via, []).append(r)
        # iterative depth-first print (a long chain of models must not hit the recursion limit)
        stack: list[tuple[Reached, int]] = [(r, 1) for r in reversed(children.get(name, ()))]
        while stack:
            r, indent = stack.pop()
            extra = ""
            ci = cg.info[cg.index[r.column]]
            if ci.status == "unresolved":
                extra = f"  ! {ci.reason}"
            elif ci.status == "inferred":
                extra = "  ~ inferred"
            lines.append(f"{'  ' * indent}{arrow} [{r.edge}] {r.column}{extra}")
            stack.extend((c, indent + 1) for c in reversed(children.get(r.column, ())))
    return "\n".join(lines)


def _subgraph(cg: ColumnGraph, nid: int, found: dict[str, list[Reached]]) -> tuple[list[str], list[tuple]]:
    ids = {nid} | {cg.index[r.column] for rs in found.values() for r in rs}
    names = sorted(cg.nodes[i] for i in ids)
    edges = cg.edges_among(ids)
    if not any(r.edge == "filter" for rs in found.values() for r in rs):
        edges = [e for e in edges if e[2] != "filter"]  # the walk left filter edges out
    return names, edges


def to_dot(cg: ColumnGraph, nid: int, found: dict[str, list[Reached]]) -> str:
    names, edges = _subgraph(cg, nid, found)
    target = cg.nodes[nid]
    lines = ["digraph lineage {", "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    for n in names:
        attrs = ' style="bold,filled" fillcolor="#ffe08a"' if n == target else ""
        lines.append(f"  {json.dumps(n)} [label={json.dumps(n)}{attrs}];")
    for src, dst, kind in edges:
        style = ', style="dashed"' if kind == "filter" else ""
        lines.append(f"  {json.dumps(src)} -> {json.dumps(dst)} [label={json.dumps(kind)}{style}];")
    lines.append("}")
    return "\n".join(lines)


def to_mermaid(cg: ColumnGraph, nid: int, found: dict[str, list[Reached]]) -> str:
    names, edges = _subgraph(cg, nid, found)
    ids = {n: f"c{i}" for i, n in enumerate(names)}
    lines = ["flowchart LR"]
    for n in names:
        label = n.replace('"', "#quot;")
        lines.append(f'  {ids[n]}["{label}"]')
    for src, dst, kind in edges:
        arrow = f"-. {kind} .->" if kind == "filter" else f"-- {kind} -->"
        lines.append(f"  {ids[src]} {arrow} {ids[dst]}")
    lines.append(f"  style {ids[cg.nodes[nid]]} stroke-width:3px")
    return "\n".join(lines)


def render(fmt: str, cg: ColumnGraph, nid: int, found: dict[str, list[Reached]]) -> str:
    if fmt == "json":
        return json.dumps(to_json(cg, nid, found), indent=2)
    if fmt == "dot":
        return to_dot(cg, nid, found)
    if fmt == "mermaid":
        return to_mermaid(cg, nid, found)
    return to_text(cg, nid, found)
