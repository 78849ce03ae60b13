"""The planner: which (asset, partition) pairs a run writes, and why. Pure: reads the graph and the state.

Modes (what a user asks for):
- `missing` (default): partitions never written, or whose last attempt failed;
- `stale`: those, plus partitions whose code version changed or whose upstream partitions (as mapped
  by `sqlassets.run.partitions.map_partitions`) were materialized after them;
- `all`: every partition in range.
In every mode, a selected asset is also planned where an upstream partition it reads is planned in the
same run (dbt and Dagster build downstream after upstream), and dbt microbatch `lookback` re-runs the
`lookback` partitions before the first missing one when no explicit range is given.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlassets.errors import PartitionError, UserError
from sqlassets.run.partitions import (
    UNPARTITIONED,
    PartitionsDef,
    TimePartitionsDef,
    compress_keys,
    map_partitions,
    partitions_def,
    select_keys,
)

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.run.state import Materialization, StateStore

def strategy_name(asset: Asset, pdef: PartitionsDef | None) -> str:
    """How `asset` is written (seed, view, ephemeral, merge, partition_replace, append, table).

    Lives here, not in `sqlassets.run.strategies`, so planning (and a no-op re-run) never imports sqlglot.
    """
    mat = asset.materialization
    if asset.kind == "seed" or mat == "seed":
        return "seed"
    if mat == "view":
        return "view"
    if mat == "ephemeral":
        return "ephemeral"
    cfg = asset.config or {}
    strategy = str(cfg.get("incremental_strategy") or "").lower()
    has_key = bool(cfg.get("unique_key"))
    if strategy == "merge":
        if not has_key:
            raise UserError(f"{asset.path or asset.key}: incremental_strategy merge needs unique_key")
        return "merge"
    if pdef is not None:
        return "merge" if has_key and strategy == "" else "partition_replace"
    if mat == "incremental":
        return "merge" if has_key and strategy in ("", "delete+insert") else "append"
    if mat == "table":
        return "table"
    raise UserError(f"{asset.path or asset.key}: materialization '{mat}' is not supported by sqlassets "
                    "(use view, table, incremental, ephemeral or seed)")


MODES = ("missing", "stale", "all")
SKIP_KINDS = {"source": "source (observed, not built)", "external": "external table (observed, not built)"}


@dataclass(frozen=True)
class PlannedAsset:
    key: str
    strategy: str
    partitioned: bool
    keys: tuple[str, ...]
    reasons: tuple[tuple[str, int], ...] = ()
    skipped: str | None = None

    @property
    def count(self) -> int:
        return len(self.keys)


@dataclass(frozen=True)
class Plan:
    mode: str
    assets: tuple[PlannedAsset, ...]
    full_refresh: bool = False
    partition_spec: str | None = None

    @property
    def to_run(self) -> tuple[PlannedAsset, ...]:
        return tuple(a for a in self.assets if a.keys and a.skipped is None)

    @property
    def total(self) -> int:
        return sum(len(a.keys) for a in self.to_run)

    @property
    def empty(self) -> bool:
        return self.total == 0

    def requested(self) -> dict[str, list[str]]:
        return {a.key: list(a.keys) for a in self.to_run}

    def lines(self, graph: AssetGraph) -> list[str]:
        """The plan as printed before a run (and alone with --dry-run)."""
        runs = self.to_run
        parts = sum(1 for a in runs if a.partitioned)
        head = (f"Plan ({self.mode}{', full refresh' if self.full_refresh else ''}): {len(runs)} asset(s), "
                f"{self.total} unit(s)" + (f" across {parts} partitioned asset(s)" if parts else ""))
        skipped = [a for a in self.assets if a.skipped]
        out = [head]
        if not runs and self.assets and len(skipped) == len(self.assets):
            out.append("  nothing to do: sqlassets does not build any selected asset")
        elif not runs:
            out.append("  nothing to do: every selected partition is done"
                       + (" (use --stale or --all to rebuild)" if self.mode == "missing" else ""))
        width = max((len(a.key) for a in runs), default=0)
        for a in runs:
            pdef = partitions_def(graph[a.key]) if a.partitioned else None
            why = ", ".join(f"{n} {r}" for r, n in a.reasons)
            what = compress_keys(pdef, list(a.keys)) if a.partitioned else "(whole asset)"
            out.append(f"  {a.key:<{width}}  {a.strategy:<17} {len(a.keys):>5}  {what}  [{why}]")
        if skipped:
            out.append("  skipped: " + ", ".join(f"{a.key} ({a.skipped})" for a in skipped[:8])
                       + (f" and {len(skipped) - 8} more" if len(skipped) > 8 else ""))
        return out


def upstream_stamp(mats: Mapping[str, Materialization], keys: Sequence[str]) -> float | None:
    """Latest successful write among `keys` of one upstream asset."""
    best: float | None = None
    for k in keys:
        m = mats.get(k)
        if m is not None and m.materialized_at is not None and (best is None or m.materialized_at > best):
            best = m.materialized_at
    return best


def identity(down: PartitionsDef | None, up: PartitionsDef | None) -> bool:
    return (isinstance(down, TimePartitionsDef) and isinstance(up, TimePartitionsDef) and down.grain == up.grain
            and down.timezone == up.timezone) or (down is None and up is None)


def _is_time_spec(spec: str) -> bool:
    """Does a --partitions/--partition value name time (2024-01-05, 2024-01..2024-03, 2024-01-05..)?"""
    from sqlassets.run.partitions import parse_bound

    lo, sep, hi = spec.strip().partition("..")
    try:
        for part in (lo, hi) if sep else (lo,):
            if part.strip():
                parse_bound(part.strip())
    except PartitionError:
        return False
    return bool(lo.strip() or hi.strip())


def build_plan(graph: AssetGraph, selected: Sequence[str], state: StateStore, *, mode: str = "missing",
               partitions: str | None = None, partition: str | None = None, full_refresh: bool = False,
               requested: Mapping[str, Sequence[str]] | None = None, now: datetime | None = None,
               rebuild_requested: bool = False) -> Plan:
    """Plan a run over `selected` asset keys (topological order).

    `rebuild_requested` (resuming a backfill): every partition in `requested` runs even if it is done,
    since a `--stale`/`--all` backfill asked for partitions that were already done before it started.
    """
    if mode not in MODES:
        raise UserError(f"unknown mode '{mode}'; use one of {', '.join(MODES)}")
    if partitions is not None and partition is not None:
        raise PartitionError("pass either --partitions START..END or --partition KEY, not both")
    spec = partition if partition is not None else partitions
    effective_mode = "all" if full_refresh else mode
    order = graph.sort(selected)
    mats_all = state.all_materializations(set(order) | {p for k in order for p in graph[k].deps})
    planned: dict[str, set[str]] = {}
    out: list[PlannedAsset] = []
    any_partitioned = False
    mismatch: PartitionError | None = None
    for key in order:
        asset = graph[key]
        if asset.is_external:
            out.append(PlannedAsset(key, "-", False, (), skipped=SKIP_KINDS.get(asset.kind, asset.kind)))
            continue
        if asset.materialization == "ephemeral":
            out.append(PlannedAsset(key, "ephemeral", False, (), skipped="ephemeral (inlined into dependents)"))
            continue
        if asset.materialization == "snapshot" or asset.kind == "snapshot":
            out.append(PlannedAsset(key, "-", False, (), skipped="snapshot (run `dbt snapshot`)"))
            continue
        pdef = partitions_def(asset)
        strategy = strategy_name(asset, pdef)
        if requested is not None:
            if key not in requested:
                continue
            candidates = list(requested[key])
        elif pdef is not None:
            try:
                candidates = select_keys(pdef, spec, single=partition is not None, now=now)
            except PartitionError as exc:
                if spec is not None and _is_time_spec(spec) != isinstance(pdef, TimePartitionsDef):
                    # A date range says nothing about region partitions (and a region name nothing about
                    # days): that asset sits this run out instead of failing the whole selection.
                    mismatch = mismatch or PartitionError(f"asset '{key}': {exc}")
                    out.append(PlannedAsset(key, strategy, True, (), skipped=f"{pdef.describe()}; "
                                            f"{spec!r} does not name its partitions"))
                    continue
                raise PartitionError(f"asset '{key}': {exc}") from None
            any_partitioned = True
        else:
            candidates = [UNPARTITIONED]
        mats = mats_all.get(key, {})
        parents = list(graph.built_parents(key))
        parent_defs = {p: partitions_def(graph[p]) for p in parents}
        reasons: Counter[str] = Counter()
        chosen: list[str] = []
        for k in candidates:
            m = mats.get(k)
            reason = None
            if effective_mode == "all":
                reason = "requested" if not full_refresh else "full refresh"
            elif m is not None and m.status == "failed":
                reason = "failed"
            elif m is None or m.materialized_at is None:
                reason = "missing"
            elif effective_mode == "stale" and asset.code_version and m.code_version != asset.code_version:
                reason = "code changed"
            else:
                for p in parents:
                    up_keys = [k] if identity(pdef, parent_defs[p]) else map_partitions(
                        pdef, [k] if pdef is not None else [], parent_defs[p], now)
                    if planned.get(p) and any(u in planned[p] for u in up_keys):
                        reason = "upstream rebuilt"
                        break
                    if effective_mode == "stale":
                        stamp = upstream_stamp(mats_all.get(p, {}), up_keys)
                        if stamp is not None and m.materialized_at is not None and stamp > m.materialized_at:
                            reason = "upstream newer"
                            break
            if reason is None and rebuild_requested and requested is not None:
                reason = "not yet rebuilt"
            if reason is not None:
                reasons[reason] += 1
                chosen.append(k)
        lookback = getattr(pdef, "lookback", 0)
        if (lookback and chosen and spec is None and requested is None and effective_mode != "all"
                and isinstance(pdef, TimePartitionsDef)):
            all_keys = pdef.keys(now)
            pos = {kk: i for i, kk in enumerate(all_keys)}
            first = pos.get(chosen[0])
            if first:
                extra = [kk for kk in all_keys[max(0, first - lookback):first] if kk not in set(chosen)]
                if extra:
                    reasons["lookback"] += len(extra)
                    chosen = sorted(set(chosen) | set(extra), key=pos.__getitem__)
        planned[key] = set(chosen)
        out.append(PlannedAsset(key, strategy, pdef is not None, tuple(chosen),
                                tuple(sorted(reasons.items(), key=lambda r: -r[1]))))
    if spec is not None and requested is None and not any_partitioned:
        if mismatch is not None:
            raise mismatch
        raise PartitionError("no selected asset is partitioned; drop --partitions/--partition or select one")
    return Plan(effective_mode if not full_refresh else "all", tuple(out), full_refresh, spec)
