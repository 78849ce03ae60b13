"""Text renderings of (a selection of) the asset graph: terminal text, JSON, Graphviz dot, Mermaid."""

from __future__ import annotations

import re
from collections.abc import Sequence

import click
import orjson

from sqlassets.graph import AssetGraph
from sqlassets.model import Asset

KIND_COLORS = {
    "source": "green", "external": "bright_black", "seed": "yellow", "snapshot": "magenta",
    "model": "cyan", "sql": "blue",
}
DOT_FILL = {
    "source": "#d9f2d9", "external": "#eeeeee", "seed": "#fff3c4", "snapshot": "#f2d9f2",
    "model": "#d9ecf2", "sql": "#dfe3fb",
}


def to_json(graph: AssetGraph, keys: Sequence[str]) -> bytes:
    return orjson.dumps({"assets": [graph[k].to_json() for k in keys]}, option=orjson.OPT_INDENT_2)


def _label(a: Asset) -> str:
    kind = a.kind if a.kind in ("source", "external", "sql") else a.materialization
    return f"{a.key} [{kind}]" if a.kind == kind or a.kind == "model" else f"{a.key} [{a.kind}/{kind}]"


def _kind_label(a: Asset) -> str:
    """dbt models by materialization; raw SQL assets as `sql <materialization>`; the rest by kind."""
    if a.kind == "model":
        return a.materialization
    if a.kind == "sql":
        return f"sql {a.materialization}"
    return a.kind


def to_text(graph: AssetGraph, keys: Sequence[str], color: bool) -> str:
    """One aligned line per asset in dependency order: key, kind, and the inputs it reads.

    Parents always come before children, so reading down follows the data; inputs are listed
    explicitly rather than implied by indentation, which misleads once a graph fans in.
    """
    selected = set(keys)
    inputs = {k: [p for p in graph.parents(k) if p in selected] for k in keys}
    kinds = {k: _kind_label(graph[k]) for k in keys}
    lines = [f"{len(keys)} assets, {sum(len(v) for v in inputs.values())} edges"]
    if not keys:
        return lines[0]
    w_key = max(len(k) for k in keys)
    w_kind = max(len(v) for v in kinds.values())
    for k in keys:
        a = graph[k]
        name = a.key.ljust(w_key)
        if color:
            name = click.style(name, fg=KIND_COLORS.get(a.kind), bold=True)
        line = f"{name}  {kinds[k].ljust(w_kind)}"
        if inputs[k]:
            arrow = click.style("<-", dim=True) if color else "<-"
            line += f"  {arrow} {', '.join(inputs[k])}"
        lines.append(line.rstrip())
    return "\n".join(lines)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(graph: AssetGraph, keys: Sequence[str]) -> str:
    selected = set(keys)
    out = ["digraph assets {", "  rankdir=LR;", '  node [shape=box, style="rounded,filled", fontname="Helvetica"];']
    for k in keys:
        a = graph[k]
        out.append(f"  {_quote(k)} [label={_quote(_label(a))}, fillcolor={_quote(DOT_FILL.get(a.kind, '#ffffff'))}];")
    for k in keys:
        for p in graph.parents(k):
            if p in selected:
                out.append(f"  {_quote(p)} -> {_quote(k)};")
    out.append("}")
    return "\n".join(out)


_MERMAID_ID = re.compile(r"[^A-Za-z0-9_]")


def to_mermaid(graph: AssetGraph, keys: Sequence[str]) -> str:
    """A `flowchart LR` that renders on GitHub; ids are sanitized, labels keep the real keys."""
    selected = set(keys)
    ids: dict[str, str] = {}
    for i, k in enumerate(keys):
        ids[k] = f"n{i}_{_MERMAID_ID.sub('_', k)}"
    shapes = {"source": ("[(", ")]"), "external": ("[(", ")]"), "seed": ("[/", "/]"), "sql": ("[[", "]]")}
    out = ["flowchart LR"]
    for k in keys:
        a = graph[k]
        open_, close = shapes.get(a.kind, ("(", ")"))
        label = _label(a).replace('"', "#quot;")
        out.append(f'    {ids[k]}{open_}"{label}"{close}')
    for k in keys:
        for p in graph.parents(k):
            if p in selected:
                out.append(f"    {ids[p]} --> {ids[k]}")
    for kind, fill in DOT_FILL.items():
        members = [ids[k] for k in keys if graph[k].kind == kind]
        if members:
            out.append(f"    classDef {kind} fill:{fill},stroke:#555")
            out.append(f"    class {','.join(members)} {kind}")
    return "\n".join(out)


def to_table(graph: AssetGraph, keys: Sequence[str], color: bool) -> str:
    rows = [("KEY", "KIND", "MATERIALIZATION", "RELATION", "OWNER", "TAGS")]
    for k in keys:
        a = graph[k]
        rows.append((a.key, a.kind, a.materialization, str(a.relation or ""), a.owner or "", ",".join(a.tags)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        line = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        lines.append(click.style(line, bold=True) if color and n == 0 else line)
    return "\n".join(lines)


def show(graph: AssetGraph, key: str, color: bool) -> str:
    a = graph[key]

    def head(s: str) -> str:
        return click.style(s, bold=True) if color else s

    lines = [head(a.key), f"  kind:            {a.kind}", f"  materialization: {a.materialization}"]
    if a.relation:
        lines.append(f"  relation:        {a.relation}")
    for label, value in (("path", a.path), ("owner", a.owner), ("group", a.group), ("unique_id", a.unique_id),
                         ("version", a.version), ("code_version", a.code_version), ("dialect", a.dialect)):
        if value:
            lines.append(f"  {label + ':':<16} {value}")
    if a.tags:
        lines.append(f"  tags:            {', '.join(a.tags)}")
    if a.description:
        lines.append(f"  description:     {a.description.strip()}")
    lines.append(f"  upstream:        {', '.join(a.deps) or '-'}")
    lines.append(f"  downstream:      {', '.join(graph.children(key)) or '-'}")
    from sqlassets.errors import PartitionError
    from sqlassets.run.partitions import partitions_def

    try:
        pdef = partitions_def(a)
    except PartitionError as exc:
        lines.append(f"  partitions:      invalid: {exc}")
    else:
        if pdef is not None:
            lines.append(f"  partitions:      {pdef.describe()}")
    if a.columns:
        lines.append(head("  columns:"))
        width = max(len(c.name) for c in a.columns)
        twidth = max(len(c.type or "?") for c in a.columns)
        for c in a.columns:
            desc = f"  {c.description}" if c.description else ""
            lines.append(f"    {c.name:<{width}}  {c.type or '?':<{twidth}}{desc}".rstrip())
    sql = a.raw_sql
    if sql:
        body = sql.strip().splitlines()
        lines.append(head("  sql:"))
        lines += [f"    {ln}" for ln in body[:20]]
        if len(body) > 20:
            lines.append(f"    ... ({len(body) - 20} more lines)")
    return "\n".join(lines)
