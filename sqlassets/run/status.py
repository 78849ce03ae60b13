"""Per-asset partition status (done / failed / missing / stale) from the state store, for `status`.

Stale has the planner's meaning: the asset's code version changed since the partition was written, or
an upstream partition it maps to was materialized after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlassets.run.partitions import UNPARTITIONED, compress_keys, map_partitions, partitions_def
from sqlassets.run.planner import identity, upstream_stamp

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.run.state import StateStore

STATES = ("done", "failed", "stale", "missing")


@dataclass
class AssetStatus:
    key: str
    partitioned: bool
    spec: dict[str, Any] | None
    states: list[tuple[str, str]] = field(default_factory=list)  # (partition, state)
    last_materialized: float | None = None
    rows: int | None = None
    checks: dict[str, int] = field(default_factory=dict)

    def keys_in(self, state: str) -> list[str]:
        return [k for k, s in self.states if s == state]

    @property
    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "missing": 0, "stale": 0}
        for _, s in self.states:
            out[s] += 1
        return out

    def ranges(self, graph: AssetGraph, limit: int = 6) -> dict[str, str]:
        """Each state's partitions as date ranges: `{"done": "2024-01-01..2024-03-31", "missing": ...}`.

        A gap in what is done shows up as its own range under missing/failed/stale, so a user reads
        first/last done and every hole at a glance instead of decoding a bar.
        """
        pdef = partitions_def(graph[self.key]) if self.partitioned else None
        return {state: compress_keys(pdef, keys, limit=limit) for state in STATES if (keys := self.keys_in(state))}

    def to_json(self, graph: AssetGraph) -> dict[str, Any]:
        pdef = partitions_def(graph[self.key]) if self.partitioned else None
        return {
            "asset": self.key, "partitioned": self.partitioned, "partitions": self.spec, "counts": self.counts,
            "total": len(self.states),
            "failed": self.keys_in("failed"), "stale": self.keys_in("stale"),
            "ranges": self.ranges(graph, limit=50) if self.partitioned else {},
            "missing": compress_keys(pdef, self.keys_in("missing"), limit=50) if self.keys_in("missing") else "",
            "last_materialized": (datetime.fromtimestamp(self.last_materialized).isoformat(timespec="seconds")
                                  if self.last_materialized else None),
            "rows": self.rows, "checks": self.checks,
        }


def compute_status(graph: AssetGraph, keys: Sequence[str], state: StateStore, now: datetime | None = None
                   ) -> list[AssetStatus]:
    wanted = [k for k in keys if not graph[k].is_external
              and graph[k].materialization not in ("ephemeral", "snapshot") and graph[k].kind != "snapshot"]
    mats_all = state.all_materializations(set(wanted) | {p for k in wanted for p in graph[k].deps})
    checks: dict[str, dict[str, int]] = {}
    for r in state.latest_check_results(wanted):
        checks.setdefault(r.asset, {}).setdefault(r.status, 0)
        checks[r.asset][r.status] += 1
    out: list[AssetStatus] = []
    for key in wanted:
        asset = graph[key]
        pdef = partitions_def(asset)
        mats = mats_all.get(key, {})
        parts = pdef.keys(now) if pdef is not None else [UNPARTITIONED]
        parents = list(graph.built_parents(key))
        pdefs = {p: partitions_def(graph[p]) for p in parents}
        st = AssetStatus(key, pdef is not None, pdef.spec() if pdef else None, checks=checks.get(key, {}))
        all_cache: dict[str, float | None] = {}
        for k in parts:
            m = mats.get(k)
            if m is None or m.materialized_at is None:
                s = "failed" if m is not None and m.status == "failed" else "missing"
            elif m.status == "failed":
                s = "failed"
            elif asset.code_version and m.code_version != asset.code_version:
                s = "stale"
            else:
                s = "done"
                for p in parents:
                    if identity(pdef, pdefs[p]):
                        stamp = upstream_stamp(mats_all.get(p, {}), [k])
                    elif pdef is None or (pdefs[p] is not None and type(pdefs[p]) is not type(pdef)):
                        if p not in all_cache:
                            all_cache[p] = upstream_stamp(mats_all.get(p, {}),
                                                          map_partitions(pdef, [k] if pdef else [], pdefs[p], now))
                        stamp = all_cache[p]
                    else:
                        stamp = upstream_stamp(mats_all.get(p, {}), map_partitions(pdef, [k], pdefs[p], now))
                    if stamp is not None and stamp > m.materialized_at:
                        s = "stale"
                        break
            st.states.append((k, s))
            if m is not None and m.materialized_at and (st.last_materialized is None
                                                        or m.materialized_at > st.last_materialized):
                st.last_materialized = m.materialized_at
        st.rows = sum(m.rows or 0 for m in mats.values() if m.status == "done") if mats else None
        out.append(st)
    return out
