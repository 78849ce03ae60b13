"""dbt-compatible node selection over an `AssetGraph`.

Supported, as users type them daily in dbt:
    name, stg_* (wildcards), a folder as in dbt (`marts`: every node under models/marts), +name, name+,
    2+name, name+1, @name,
    tag:x, path:models/marts, group:x, kind:model|seed|snapshot|source|sql|external,
    source:raw, source:raw.events, owner:x, package:x
Space separates a union, comma an intersection; `--exclude` takes the same syntax.
An exact name that names nothing is an error (a typo should not select nothing silently).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from sqlassets.errors import SelectionError
from sqlassets.model import KINDS

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset

METHODS = ("tag", "path", "group", "kind", "source", "owner", "package", "fqn", "config.materialized")
_ATOM = re.compile(
    r"^(?P<at>@)?(?:(?P<up>\d*)\+)?(?P<body>[^+@\s]+?)(?:\+(?P<down>\d*))?$"
)
_WILDCARD = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Atom:
    """One selector like `2+tag:finance+`: a method/value plus graph operators."""

    text: str
    method: str | None
    value: str
    up: int | None  # None: no parents; -1: all ancestors
    down: int | None
    at: bool

    @classmethod
    def parse(cls, text: str) -> Atom:
        m = _ATOM.match(text)
        if not m:
            raise SelectionError(f"cannot parse selector '{text}'; expected e.g. name, +name, name+, 2+name, "
                                 "@name, tag:x")
        body = m.group("body")
        method, value = None, body
        if ":" in body:
            method, value = body.split(":", 1)
            if method not in METHODS:
                raise SelectionError(f"unknown selector method '{method}:' in '{text}'; "
                                     f"known: {', '.join(METHODS)}")
            if not value:
                raise SelectionError(f"selector '{text}' has no value after '{method}:'")
        up = m.group("up")
        down = m.group("down")
        at = bool(m.group("at"))
        if at and (up is not None or down is not None):
            raise SelectionError(f"selector '{text}': '@' cannot be combined with '+'")
        if method == "kind" and value not in KINDS:
            raise SelectionError(f"unknown kind '{value}' in '{text}'; known: {', '.join(KINDS)}")
        return cls(
            text=text,
            method=method,
            value=value,
            up=None if up is None else (int(up) if up else -1),
            down=None if down is None else (int(down) if down else -1),
            at=at,
        )


def _matches(atom: Atom, asset: Asset) -> bool:
    method, value = atom.method, atom.value
    if method is None:
        if "/" in value or value.endswith(".sql"):
            return _path_match(value, asset.path)
        names = {asset.key, asset.name}
        if asset.package and asset.key.startswith(asset.package + "."):
            names.add(asset.key[len(asset.package) + 1:])  # package-qualified on a clash: dbt selects both
        if asset.version is not None:
            names |= {n.rsplit(".v", 1)[0] for n in tuple(names)}  # `dim_customers` selects every version
        return any(fnmatchcase(n, value) for n in names) or _fqn_match(value, _fqn(asset))
    if method == "tag":
        return any(fnmatchcase(t, value) for t in asset.tags)
    if method == "path":
        return _path_match(value, asset.path)
    if method == "group":
        return asset.group is not None and fnmatchcase(asset.group, value)
    if method == "kind":
        return asset.kind == value
    if method == "source":
        if asset.kind != "source":
            return False
        return fnmatchcase(asset.config.get("source_name", ""), value) or fnmatchcase(asset.key, value)
    if method == "owner":
        return asset.owner is not None and fnmatchcase(asset.owner, value)
    if method == "package":
        return asset.package is not None and fnmatchcase(asset.package, value)
    if method == "fqn":
        return fnmatchcase(asset.key, value) or _fqn_match(value, _fqn(asset))
    if method == "config.materialized":
        return asset.materialization == value
    raise AssertionError(method)


def _fqn(asset: Asset) -> list[str] | None:
    """dbt's fully qualified name of a dbt node: package, folders under the model/seed/snapshot path, name."""
    if asset.kind not in ("model", "seed", "snapshot") or not asset.path:
        return None
    name = asset.key
    if asset.package and name.startswith(asset.package + "."):
        name = name[len(asset.package) + 1:]
    if asset.version is not None:
        name = name.rsplit(".v", 1)[0]
    folders = PurePosixPath(asset.path.replace("\\", "/")).parts[1:-1]
    return [asset.package or "", *folders, name]


def _fqn_match(value: str, fqn: list[str] | None) -> bool:
    """dbt's default (fqn) method: `marts` selects every node under models/marts, `shop.staging` too.

    The dotted selector must match the start of the fqn, with or without its package, part by part.
    """
    if not fqn:
        return False
    parts = value.split(".")
    for cand in (fqn, fqn[1:]):
        if len(parts) <= len(cand) and all(fnmatchcase(c, p) for c, p in zip(cand, parts, strict=False)):
            return True
    return False


def _path_match(value: str, path: str | None) -> bool:
    if not path:
        return False
    value = value.strip("/").removeprefix("./")
    path = path.replace("\\", "/")
    if _WILDCARD.search(value):
        return fnmatchcase(path, value)
    return path == value or path.startswith(value + "/")


def _eval_atom(graph: AssetGraph, atom: Atom) -> set[str]:
    base = {a.key for a in graph if _matches(atom, a)}
    if not base and atom.method is None and not _WILDCARD.search(atom.value) and "/" not in atom.value:
        raise SelectionError(f"no asset named '{atom.value}' (in selector '{atom.text}'); "
                             "run 'sqlassets list' to see asset keys")
    out = set(base)
    for key in base:
        if atom.up is not None:
            out |= graph.upstream(key, None if atom.up < 0 else atom.up)
        if atom.down is not None or atom.at:
            down = graph.downstream(key, None if atom.down is None or atom.down < 0 else atom.down)
            out |= down
            if atom.at:  # dbt's @: the node, its descendants, and all their ancestors
                out |= graph.upstream(key)
                for d in down:
                    out |= graph.upstream(d)
    return out


def _terms(spec: Sequence[str] | str | None) -> list[str]:
    if spec is None:
        return []
    if isinstance(spec, str):
        spec = [spec]
    return [t for s in spec for t in s.split()]


def evaluate(graph: AssetGraph, spec: Sequence[str] | str | None) -> set[str] | None:
    """Keys matching `spec` (union of terms, each an intersection of atoms); None if spec is empty."""
    terms = _terms(spec)
    if not terms:
        return None
    selected: set[str] = set()
    for term in terms:
        parts = term.split(",")
        if any(not p for p in parts):
            raise SelectionError(f"empty selector in '{term}' (comma means intersection: a,b)")
        sets = [_eval_atom(graph, Atom.parse(p)) for p in parts]
        selected |= set.intersection(*sets)
    return selected


def select_keys(graph: AssetGraph, select: Sequence[str] | str | None = None,
                exclude: Sequence[str] | str | None = None) -> list[str]:
    """Selected keys in topological order; no `select` means everything."""
    chosen = evaluate(graph, select)
    if chosen is None:
        chosen = set(graph.keys)
    excluded = evaluate(graph, exclude) or set()
    return graph.sort(chosen - excluded)
