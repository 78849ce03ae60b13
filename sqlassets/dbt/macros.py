"""Which macro makes a model query the warehouse while compiling: the reason a model needs one.

"needs a live warehouse" alone leaves the user guessing among dozens of macros; the manifest says which
macros a model calls and which macros those call, and a macro whose own SQL runs a query (`run_query`,
`statement`, `adapter.get_columns_in_relation`, ...) is where compiling needs the warehouse. Models that
inline an ephemeral model inherit its macros. Pure functions over the manifest dict: no dbt import.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# A macro whose own body does one of these talks to the warehouse while compiling. (Existence checks,
# `adapter.get_relation` as in `is_incremental()`, are answered offline: see `dbt.invoke`.)
_QUERIES = re.compile(
    r"\brun_query\s*\(|\bstatement\s*\(|\badapter\.(?:get_columns_in_relation|execute|get_missing_columns|"
    r"expand_target_column_types)\b|\bload_result\s*\(|\bget_relations_by_(?:pattern|prefix)\s*\("
)


def _short(uid: str) -> str:
    """`macro.dbt_utils.default__star` -> `dbt_utils.default__star`; the project's own and dbt's are bare."""
    parts = uid.split(".")
    return ".".join(parts[1:]) if len(parts) > 2 and parts[1] not in ("dbt",) else parts[-1]


class MacroIndex:
    """Memoized "does this macro (transitively) query the warehouse, and through which calls"."""

    def __init__(self, manifest: Mapping[str, Any]) -> None:
        self.macros: Mapping[str, Any] = manifest.get("macros") or {}
        self.nodes: Mapping[str, Any] = manifest.get("nodes") or {}
        self._memo: dict[str, tuple[str, ...] | None] = {}

    def chain(self, uid: str, stack: frozenset[str] = frozenset()) -> tuple[str, ...] | None:
        """The call path from macro `uid` to a macro that queries, or None when it never does."""
        if uid in self._memo:
            return self._memo[uid]
        macro = self.macros.get(uid)
        if not isinstance(macro, dict) or uid in stack:
            return None
        found: tuple[str, ...] | None = None
        if _QUERIES.search(str(macro.get("macro_sql") or "")):
            found = (uid,)
        else:
            for dep in (macro.get("depends_on") or {}).get("macros") or ():
                sub = self.chain(dep, stack | {uid})
                if sub is not None:
                    found = (uid, *sub)
                    break
        self._memo[uid] = found
        return found

    def why(self, node_uid: str, limit: int = 3) -> str | None:
        """`dbt_utils.star (which calls dbt_utils.default__get_filtered_columns_in_relation)` for a node (and
        the ephemeral models it inlines), or None when no macro it calls queries the warehouse."""
        seen: set[str] = set()
        paths: list[str] = []
        todo = [(node_uid, "")]
        while todo:
            uid, via = todo.pop(0)
            if uid in seen:
                continue
            seen.add(uid)
            node = self.nodes.get(uid)
            if not isinstance(node, dict):
                continue
            deps = node.get("depends_on") or {}
            for m in deps.get("macros") or ():
                path = self.chain(m)
                if path is not None:
                    inner = f" (which calls {_short(path[-1])})" if len(path) > 1 else ""
                    paths.append(f"{_short(path[0])}{inner}{via}")
            for parent in deps.get("nodes") or ():
                p = self.nodes.get(parent)
                if isinstance(p, dict) and (p.get("config") or {}).get("materialized") == "ephemeral":
                    todo.append((parent, f" (in ephemeral model {p.get('name')})"))
        paths = list(dict.fromkeys(paths))
        if not paths:
            return None
        more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
        return "; ".join(paths[:limit]) + more
