"""The executor: runs a `Plan` against the warehouse, unit by unit, in dependency order.

A *unit* is one partition of one asset, or a batch of contiguous partitions written by one statement
(`--batch-size`), or a whole unpartitioned asset. A unit waits only for the upstream units holding the
partitions it maps to, so day 5 of a fact can start its downstream day 5 while day 6 is still loading.

Guarantees:
- a unit's data commits in one warehouse transaction, then (after blocking checks pass) the state store
  records it done: a partition recorded done is always in the table; a crash in between only means the
  partition is re-run (idempotently) next time;
- a failed unit fails only itself and the units that depend on it; the rest of the run goes on;
- transient errors (lock / write-write conflicts) are retried with exponential backoff;
- Ctrl-C interrupts the statements in flight, rolls their transactions back and records the run as
  interrupted; `sqlassets backfill resume ID` picks up from there.
"""

from __future__ import annotations

import heapq
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError
from sqlassets.run import faults
from sqlassets.run.partitions import (
    UNPARTITIONED,
    TimePartitionsDef,
    contiguous_batches,
    map_partitions,
)
from sqlassets.run.planner import Plan, build_plan, identity
from sqlassets.run.signals import Terminated, exit_code_for, handling, interrupt_for
from sqlassets.run.signals import deferred as signals_deferred
from sqlassets.run.state import LeaseConflict, StateStore, UnitRecord, open_state
from sqlassets.run.statement_cache import INCREMENTAL, CachedMaterializer, StatementCache, remember
from sqlassets.selection import select_keys

if TYPE_CHECKING:
    from concurrent.futures import Future

    from sqlassets.adapters.base import Adapter
    from sqlassets.check_results import CheckResult, PostMaterializeHook
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project
    from sqlassets.run.events import EventBus, RunListener
    from sqlassets.run.progress import Progress
    from sqlassets.run.strategies import Materializer


class Cancelled(Exception):
    """The run is stopping (Ctrl-C): units not started are not run."""


@dataclass
class RunOptions:
    concurrency: int = 1
    batch_size: int = 1
    full_refresh: bool = False
    max_attempts: int = 3
    backoff: float = 0.2
    wait: bool = False


@dataclass
class Unit:
    index: int
    asset: str
    keys: tuple[str, ...]
    order: int
    deps: set[int] = field(default_factory=set)
    children: list[int] = field(default_factory=list)
    parent_keys: dict[str, list[str]] = field(default_factory=dict)
    status: str = "pending"


@dataclass(frozen=True)
class UnitResult:
    unit: int
    status: str  # done | failed | cancelled
    started_at: float
    finished_at: float
    rows: int | None = None
    attempts: int = 1
    error: str | None = None
    checks: tuple[CheckResult, ...] = ()


@dataclass
class RunSummary:
    run_id: int | None
    status: str
    planned: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0
    seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    backfill_id: int | None = None
    signal: int | None = None  # what interrupted the run (SIGINT / SIGTERM)

    @property
    def exit_code(self) -> int:
        if self.status == "interrupted":
            return exit_code_for(self.signal)
        return 0 if self.failed == 0 and self.skipped == 0 else 1


def one_line(exc: BaseException, limit: int = 400) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if not isinstance(exc, UserError):
        text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= limit else text[:limit - 3] + "..."



def _check_scopes(pdef: Any, keys: tuple[str, ...]) -> list[tuple[str | None, tuple[str, str] | None]]:
    """What the post-materialize checks look at for one unit: (partition label, time window).

    A batch of contiguous time partitions was written by one statement in one transaction, so it is
    checked once over its whole window, labelled `first..last` (one GX validation instead of one per
    day); its partitions pass or fail together, as they were written. Single partitions and static
    partitions are checked one by one.
    """
    if isinstance(pdef, TimePartitionsDef) and len(keys) > 1:
        return [(f"{keys[0]}..{keys[-1]}", (pdef.window(keys[0]).iso()[0], pdef.window(keys[-1]).iso()[1]))]
    return [(k or None, pdef.window(k).iso() if isinstance(pdef, TimePartitionsDef) else None) for k in keys]

class Executor:
    """Schedules units over a thread pool; the calling thread coordinates and writes the state store.

    With `concurrency=1` there is nothing to overlap: units run inline on the calling thread, which
    saves a thread hand-off per unit and keeps the coordinator off the CPU the warehouse is using.
    """

    FLUSH_SECONDS = 0.05
    FLUSH_UNITS = 256

    def __init__(self, plan: Plan, graph: AssetGraph, adapter: Adapter, state: StateStore, run_id: int,
                 materializers: dict[str, Materializer], *, options: RunOptions,
                 hook: PostMaterializeHook | None = None, progress: Progress | None = None,
                 before_write: Callable[[Asset, tuple[str, ...], int], None] | None = None,
                 events: EventBus | None = None) -> None:
        self.plan = plan
        self.graph = graph
        self.adapter = adapter
        self.state = state
        self.run_id = run_id
        self.materializers = materializers
        self.options = options
        self.hook = hook
        self.progress = progress
        self.before_write = before_write
        self.events = events or None  # an empty bus costs nothing per unit
        self.stop = threading.Event()
        self.units: list[Unit] = []
        self._prepare_lock: dict[str, threading.Lock] = {k: threading.Lock() for k in materializers}
        self._prepare_error: dict[str, str] = {}
        self._mats = state.all_materializations({p for a in plan.to_run for p in graph[a.key].deps})
        # Finished units' state rows, written to the state store in one SQLite transaction every
        # FLUSH_SECONDS / FLUSH_UNITS (and always at the end, on failure and on Ctrl-C): a commit per
        # partition costs as much as a small partition's INSERT. Every row here is for a unit whose data
        # already committed, so a crash before the flush only means those partitions are re-run.
        self._pending: list[UnitRecord] = []
        self._pending_checks: list[CheckResult] = []
        self._holdable: dict[str, bool] = {}
        self._last_flush = time.monotonic()
        self._build_units()

    # -- unit graph -----------------------------------------------------------------------------------
    def _build_units(self) -> None:
        from sqlassets.run.partitions import partitions_def

        by_asset_key: dict[str, dict[str, int]] = {}
        order = 0
        for pa in self.plan.to_run:
            asset = self.graph[pa.key]
            pdef = partitions_def(asset)
            mat = self.materializers[pa.key]
            size = self.options.batch_size if mat.batchable else 1
            key_index: dict[str, int] = {}
            for batch in contiguous_batches(pdef, list(pa.keys), size):
                unit = Unit(len(self.units), pa.key, batch, order)
                order += 1
                for parent in self.graph.built_parents(pa.key):
                    up_def = partitions_def(self.graph[parent])
                    if pdef is None and up_def is None:
                        up_keys = [UNPARTITIONED]
                    elif identity(pdef, up_def):
                        up_keys = list(batch)
                    else:
                        up_keys = map_partitions(pdef, list(batch) if pdef is not None else [], up_def)
                    unit.parent_keys[parent] = up_keys
                    idx = by_asset_key.get(parent)
                    if idx:
                        for uk in up_keys:
                            j = idx.get(uk)
                            if j is not None:
                                unit.deps.add(j)
                for k in batch:
                    key_index[k] = unit.index
                self.units.append(unit)
            by_asset_key[pa.key] = key_index
        for u in self.units:
            for d in u.deps:
                self.units[d].children.append(u.index)

    # -- one unit (worker thread) ---------------------------------------------------------------------
    def _run_unit(self, unit: Unit, defer: bool = False) -> UnitResult:
        """Write one unit and run its checks; `defer`: write only, and come back "checking" (the caller
        checks it later together with other held units of the asset: `_check_held`)."""
        started = time.time()
        asset = self.graph[unit.asset]
        mat = self.materializers[unit.asset]
        attempts = 0
        session = None
        if self.events is not None and not self.stop.is_set():
            self.events.unit("unit_started", self.run_id, asset, unit.keys, at=started)
        while True:
            attempts += 1
            try:
                if self.stop.is_set():
                    raise Cancelled()
                session = self.adapter.session()
                self.adapter.set_timezone(session, mat.pdef.timezone if isinstance(mat.pdef, TimePartitionsDef)
                                          else None)
                self._prepare(unit.asset, mat, session, unit.keys)
                if self.before_write is not None:
                    self.before_write(asset, unit.keys, attempts)
                faults.hit("unit")
                outcome = mat.write(session, unit.keys)
                faults.hit("written")
                break
            except Cancelled:
                return UnitResult(unit.index, "cancelled", started, time.time(), attempts=attempts)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the unit
                if self.stop.is_set():
                    return UnitResult(unit.index, "cancelled", started, time.time(), attempts=attempts,
                                      error=one_line(exc))
                if self.adapter.is_transient(exc) and attempts < self.options.max_attempts:
                    time.sleep(self.options.backoff * (2 ** (attempts - 1)))
                    continue
                return UnitResult(unit.index, "failed", started, time.time(), attempts=attempts,
                                  error=one_line(exc))
        checks: list[CheckResult] = []
        error = None
        if self.hook is not None and defer:
            return UnitResult(unit.index, "checking", started, time.time(), rows=outcome.rows, attempts=attempts)
        if self.hook is not None:
            from sqlassets.run.partitions import partitions_def

            faults.hit("check")
            pdef = partitions_def(asset)
            for label, window in _check_scopes(pdef, unit.keys):
                try:
                    results = list(self.hook(asset, label, window, self.adapter))
                except Exception as exc:  # noqa: BLE001 - a crashing check blocks like a failing one
                    from sqlassets.check_results import CheckResult

                    results = [CheckResult(asset=asset.key, check="post-materialize hook", status="error",
                                           partition=label, message=one_line(exc))]
                checks.extend(results)
            if self.stop.is_set():
                # Interrupted while checking: the outcome of a check cut short is no verdict. The data is
                # committed but not recorded done, so a resume writes and checks it again.
                return UnitResult(unit.index, "cancelled", started, time.time(), attempts=attempts,
                                  error="interrupted during checks")
            error = _blocking_error(checks)
        status = "failed" if error else "done"
        return UnitResult(unit.index, status, started, time.time(), rows=outcome.rows, attempts=attempts,
                          error=error, checks=tuple(checks))

    # -- held checks: finished units of one asset checked together ------------------------------------------
    HOLD_SECONDS = 1.0  # a held unit waits at most about this long (plus one unit) for its verdict

    def _group_size(self) -> int:
        """How many finished units of an asset may wait to be checked together (1: check each at once).

        Only inline runs hold units: the check of held units is one grouped query (`run_grouped` on the
        hook). A held unit is not recorded and releases no downstream unit until its checks ran, so a
        failing blocking check still stops its downstream partitions before they run.
        """
        size = getattr(self.hook, "group_size", 1) if self.hook is not None else 1
        return size if isinstance(size, int) and size > 1 and hasattr(self.hook, "run_grouped") else 1

    def _holds(self, key: str) -> bool:
        held = self._holdable.get(key)
        if held is None:
            try:
                held = self._holdable[key] = bool(self.hook.groupable(self.graph[key], self.adapter))  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001 - when in doubt, check each unit on its own
                held = self._holdable[key] = False
        return held

    def _check_held(self, held: Sequence[tuple[Unit, UnitResult]]) -> list[UnitResult]:
        """The checks of units written earlier (all of one asset), in one call to the hook's `run_grouped`;
        each unit's outcome then exactly as `_run_unit` would have given it."""
        from sqlassets.run.partitions import partitions_def

        asset = self.graph[held[0][0].asset]
        pdef = partitions_def(asset)
        scopes: list[tuple[str | None, tuple[str, str] | None]] = []
        owner: list[int] = []
        for i, (unit, _) in enumerate(held):
            faults.hit("check")
            for scope in _check_scopes(pdef, unit.keys):
                scopes.append(scope)
                owner.append(i)
        t0 = time.time()
        try:
            grouped = list(self.hook.run_grouped(asset, scopes, self.adapter))  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a crashing check blocks like a failing one
            from sqlassets.check_results import CheckResult

            grouped = [[CheckResult(asset=asset.key, check="post-materialize hook", status="error",
                                    partition=label, message=one_line(exc))] for label, _ in scopes]
        per_unit: list[list[CheckResult]] = [[] for _ in held]
        for i, results in zip(owner, grouped, strict=True):
            per_unit[i].extend(results)
        share = (time.time() - t0) / len(held)
        out = []
        for (unit, written), checks in zip(held, per_unit, strict=True):
            finished = written.finished_at + share
            if self.stop.is_set():  # interrupted while checking: no verdict (see `_run_unit`)
                out.append(UnitResult(unit.index, "cancelled", written.started_at, finished,
                                      attempts=written.attempts, error="interrupted during checks"))
                continue
            error = _blocking_error(checks)
            out.append(UnitResult(unit.index, "failed" if error else "done", written.started_at, finished,
                                  rows=written.rows, attempts=written.attempts, error=error, checks=tuple(checks)))
        return out

    def _prepare(self, key: str, mat: Materializer, session: Any, keys: tuple[str, ...]) -> None:
        if mat._prepared:
            return
        with self._prepare_lock[key]:
            if key in self._prepare_error:
                raise UserError(self._prepare_error[key])
            if mat._prepared:
                return
            try:
                mat.prepare(session, keys)
            except UserError as exc:
                self._prepare_error[key] = str(exc)
                raise

    # -- coordination (calling thread) ----------------------------------------------------------------
    def run(self) -> RunSummary:
        if self.options.concurrency <= 1:
            return self._run_inline()
        return self._run_pool()

    def _run_inline(self) -> RunSummary:
        """One unit at a time on this thread, in the same order the pool would run them.

        Ctrl-C: a statement running on the main thread sees the signal inside DuckDB, which cancels the
        statement and raises a plain "query interrupted" error rather than KeyboardInterrupt. Our own
        SIGINT handler therefore sets `stop` first (so the unit comes back cancelled, its transaction
        rolled back) and the run then stops as interrupted; while state rows are written the signal is
        only noted, so each write stays whole.
        """
        t0 = time.perf_counter()
        summary = RunSummary(self.run_id, "success", planned=sum(len(u.keys) for u in self.units))
        remaining = {u.index: len(u.deps) for u in self.units}
        ready: list[tuple[int, int]] = [(u.order, u.index) for u in self.units if not u.deps]
        heapq.heapify(ready)
        interrupted = False
        hit: list[int] = []
        deferring = [False]

        def on_signal(signum: int, frame: Any) -> None:
            hit.append(signum)
            self.stop.set()
            if not deferring[0]:
                raise interrupt_for(signum)

        # Units written but not checked yet (all of one asset), checked together when `group` of them wait,
        # when the next unit is another asset's or none is ready, or after HOLD_SECONDS (`_check_held`).
        group = self._group_size()
        held: list[tuple[Unit, UnitResult]] = []
        held_since = 0.0

        def settle(unit: Unit, result: UnitResult) -> None:
            self._record(unit, result, summary)
            if result.status == "done":
                for c in unit.children:
                    remaining[c] -= 1
                    if remaining[c] == 0 and self.units[c].status == "pending":
                        heapq.heappush(ready, (self.units[c].order, c))
            elif result.status == "failed":
                self._skip_downstream(unit, summary)

        with handling(on_signal):
            try:
                while (ready or held) and not self.stop.is_set():
                    if held and (not ready or len(held) >= group or time.monotonic() - held_since >= self.HOLD_SECONDS
                                 or self.units[ready[0][1]].asset != held[0][0].asset):
                        results = self._check_held(held)
                        deferring[0] = True
                        for (unit, _), result in zip(held, results, strict=True):
                            settle(unit, result)
                        held.clear()
                    else:
                        unit = self.units[heapq.heappop(ready)[1]]
                        result = self._run_unit(unit, defer=group > 1 and self._holds(unit.asset))
                        deferring[0] = True
                        if result.status == "checking":
                            if not held:
                                held_since = time.monotonic()
                            held.append((unit, result))
                        else:
                            settle(unit, result)
                    self._maybe_flush()
                    deferring[0] = False
                    if hit:
                        raise interrupt_for(hit[0])
            except KeyboardInterrupt as exc:
                interrupted = True
                hit.append(signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
                self._interrupt()
            finally:
                deferring[0] = True
                for unit, result in held:  # written, never checked: not done (a resume writes them again)
                    self._record(unit, UnitResult(unit.index, "cancelled", result.started_at, time.time(),
                                                  attempts=result.attempts, error="interrupted before its checks"),
                                 summary)
                held.clear()
                self._flush()
        if hit:
            summary.signal = signal.SIGTERM if signal.SIGTERM in hit else signal.SIGINT
        return self._finish(summary, t0, interrupted or bool(hit))

    def _interrupt(self) -> None:
        """Ctrl-C: stop handing out units and cancel what runs; its transactions roll back."""
        self.stop.set()
        self.adapter.interrupt_all()
        if self.progress is not None:
            self.progress.message("interrupt: rolling back statements in flight...")

    def _finish(self, summary: RunSummary, t0: float, interrupted: bool) -> RunSummary:
        if interrupted or self.stop.is_set():
            summary.status = "interrupted"
        elif summary.failed or summary.skipped:
            summary.status = "failed"
        summary.cancelled = summary.planned - summary.done - summary.failed - summary.skipped
        summary.seconds = time.perf_counter() - t0
        return summary

    def _run_pool(self) -> RunSummary:
        # Imported here: a --concurrency 1 run never needs the pool (or the logging it imports).
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        t0 = time.perf_counter()
        summary = RunSummary(self.run_id, "success", planned=sum(len(u.keys) for u in self.units))
        remaining = {u.index: len(u.deps) for u in self.units}
        ready: list[tuple[int, int]] = [(u.order, u.index) for u in self.units if not u.deps]
        heapq.heapify(ready)
        running: dict[Future[UnitResult], int] = {}
        running_assets: dict[str, int] = {}
        deferred: list[tuple[int, int]] = []
        serial = not self.adapter.supports_concurrent_writes
        pool = ThreadPoolExecutor(max_workers=max(1, self.options.concurrency), thread_name_prefix="sqlassets")
        interrupted = False
        # Finished units not yet written to the state store. The next units are submitted *before* these
        # are recorded, so the warehouse works on unit N+1 while unit N's state commits (a unit is still
        # recorded done only after its own data committed; a crash in between only means a re-run).
        unrecorded: list[tuple[Unit, UnitResult]] = []

        # One unit more than there are workers is queued in the pool, so a worker goes straight from one
        # unit to the next instead of idling until the coordinator wakes up and hands it one.
        in_flight = max(1, self.options.concurrency) + (0 if serial else 1)

        def submit() -> None:
            if deferred:
                for item in deferred:
                    heapq.heappush(ready, item)
                deferred.clear()
            while ready and len(running) < in_flight:
                item = heapq.heappop(ready)
                unit = self.units[item[1]]
                if serial and running_assets.get(unit.asset):
                    deferred.append(item)
                    continue
                running[pool.submit(self._run_unit, unit)] = unit.index
                running_assets[unit.asset] = running_assets.get(unit.asset, 0) + 1

        try:
            while ready or running or deferred:
                if self.stop.is_set():
                    break
                submit()
                if not running:
                    if deferred:
                        continue
                    break
                finished, _ = wait(list(running), timeout=0.25, return_when=FIRST_COMPLETED)
                if self.progress is not None:
                    self.progress.tick()
                for fut in finished:
                    idx = running.pop(fut)
                    unit = self.units[idx]
                    running_assets[unit.asset] -= 1
                    result = fut.result()
                    unit.status = result.status
                    unrecorded.append((unit, result))
                    if result.status == "done":
                        for c in unit.children:
                            remaining[c] -= 1
                            if remaining[c] == 0 and self.units[c].status == "pending":
                                heapq.heappush(ready, (self.units[c].order, c))
                if not self.stop.is_set():
                    submit()
                with signals_deferred():
                    while unrecorded:
                        unit, result = unrecorded.pop(0)
                        self._record(unit, result, summary)
                        if result.status == "failed":
                            self._skip_downstream(unit, summary)
                    self._maybe_flush()
        except KeyboardInterrupt as exc:
            interrupted = True
            summary.signal = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
            self._interrupt()
            for unit, result in unrecorded:
                self._record(unit, result, summary)
            unrecorded.clear()
            for fut, idx in list(running.items()):
                try:
                    result = fut.result()
                except BaseException:  # noqa: BLE001
                    continue
                self._record(self.units[idx], result, summary)
            running.clear()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            with signals_deferred():
                self._flush()
        return self._finish(summary, t0, interrupted)

    def _maybe_flush(self) -> None:
        if self._pending and (len(self._pending) >= self.FLUSH_UNITS
                              or time.monotonic() - self._last_flush >= self.FLUSH_SECONDS):
            self._flush()

    def _flush(self) -> None:
        """Write the buffered state rows (units whose data committed) in one state-store transaction."""
        if self._pending:
            records, self._pending = self._pending, []
            faults.hit("flush")
            self.state.record_units(self.run_id, records)
            faults.hit("flushed")
        if self._pending_checks:
            checks, self._pending_checks = self._pending_checks, []
            self.state.record_check_results(self.run_id, checks)
        self._last_flush = time.monotonic()

    def _record(self, unit: Unit, result: UnitResult, summary: RunSummary) -> None:
        asset = self.graph[unit.asset]
        unit.status = result.status
        upstream = None
        if result.status == "done" and unit.parent_keys:
            upstream = {}
            for parent, keys in unit.parent_keys.items():
                mats = self._mats.get(parent, {})
                best = max((m.materialized_at for k in keys if (m := mats.get(k)) and m.materialized_at),
                           default=None)
                if best is not None:
                    upstream[parent] = best
        batch = unit.index if len(unit.keys) > 1 else None
        records = [UnitRecord(unit.asset, k, result.status, result.started_at, result.finished_at,
                              rows=result.rows if len(unit.keys) == 1 else None, attempts=result.attempts,
                              error=result.error, code_version=asset.code_version, upstream_versions=upstream,
                              batch=batch) for k in unit.keys]
        if len(unit.keys) > 1 and result.rows is not None and records:
            # One statement wrote the batch: its row count goes on the first partition's step.
            records[0] = UnitRecord(**{**records[0].__dict__, "rows": result.rows})
        self._pending.extend(records)
        if result.checks:
            self._pending_checks.extend(result.checks)
        if self.events is not None and result.status in ("done", "failed", "cancelled"):
            self.events.unit("unit_finished", self.run_id, asset, unit.keys, status=result.status,
                             rows=result.rows, error=result.error, checks=result.checks, at=result.finished_at)
        if result.status == "done":
            summary.done += len(unit.keys)
            mats = self._mats.setdefault(unit.asset, {})
            from sqlassets.run.state import Materialization

            for k in unit.keys:
                mats[k] = Materialization(unit.asset, k, "done", self.run_id, asset.code_version, None,
                                          result.finished_at, result.finished_at, None)
        elif result.status == "failed":
            summary.failed += len(unit.keys)
            summary.failures.append((unit.asset, _label(unit.keys), result.error or ""))
        if self.progress is not None:
            self.progress.unit(unit.asset, unit.keys, result.status, result.rows,
                               result.finished_at - result.started_at, result.error)
            if result.checks:
                self.progress.checks(result.checks)

    def _skip_downstream(self, unit: Unit, summary: RunSummary) -> None:
        stack = list(unit.children)
        now = time.time()
        skipped: list[Unit] = []
        while stack:
            c = self.units[stack.pop()]
            if c.status != "pending":
                continue
            c.status = "skipped"
            skipped.append(c)
            stack.extend(c.children)
        if not skipped:
            return
        why = f"upstream {unit.asset} [{_label(unit.keys)}] failed"
        self._pending.extend(UnitRecord(s.asset, k, "skipped", now, now, error=why) for s in skipped for k in s.keys)
        for s in skipped:
            summary.skipped += len(s.keys)
            if self.progress is not None:
                self.progress.unit(s.asset, s.keys, "skipped", None, 0.0, why)


def _blocking_error(checks: Sequence[CheckResult]) -> str | None:
    """The unit's error when a blocking (critical) check failed or errored, else None."""
    blocking = [r for r in checks if r.blocking]
    if not blocking:
        return None
    first = blocking[0]
    where = f" [{first.partition}]" if first.partition else ""
    return (f"blocking check failed: {first.check}{where} on {first.asset}"
            + (f": {first.message}" if first.message else "")
            + (f" (+{len(blocking) - 1} more)" if len(blocking) > 1 else ""))


def _label(keys: Sequence[str]) -> str:
    if keys == ("",) or not keys:
        return "-"
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"


# -- orchestration: what `materialize` / `backfill` do ---------------------------------------------------

@dataclass
class RunRequest:
    select: Sequence[str] | None = None
    exclude: Sequence[str] | None = None
    partitions: str | None = None
    partition: str | None = None
    mode: str = "missing"
    dry_run: bool = False
    backfill: bool = False
    resume: int | None = None
    command: str = ""
    options: RunOptions = field(default_factory=RunOptions)
    keys: Sequence[str] | None = None  # exact asset keys instead of a selection (orchestrators, schedules)
    requested: dict[str, list[str]] | None = None  # exact partitions per asset key ("" = unpartitioned)


def _refuse_if_running(state: StateStore, backfill_id: int) -> None:
    """`backfill resume N` while N still runs elsewhere: refuse before recording anything."""
    bf = state.backfill(backfill_id)
    run = state.run(bf["last_run_id"]) if bf and bf.get("last_run_id") else None
    if run and run["status"] == "running":  # (runs whose process died were just reaped as crashed)
        raise LeaseConflict(f"backfill {backfill_id} is still running (run {run['id']}, pid {run['pid']} on "
                            f"{run['host']}); wait for it to finish, or stop it, then resume")


def prepare_materializers(project: Project, graph: AssetGraph, plan: Plan, adapter: Adapter,
                          full_refresh: bool, echo: Callable[[str], None] | None = None,
                          statements: StatementCache | None = None, in_run: bool = False) -> dict[str, Materializer]:
    """Compile (cached) and parse every planned asset's SQL up front: bad SQL fails before any write.

    With `statements`, an incremental asset whose templates were saved by an earlier run with the same
    inputs is replayed without parsing (`CachedMaterializer`: no sqlglot on a warm run). Every
    incremental asset's entry key is noted in `statements.digests`, so `remember` can save what was built.

    `in_run` (a real run, not a dry run): a model whose compile queries the warehouse (dbt_utils.star,
    get_column_values, ...) and that has an ancestor built in this run is compiled when its turn comes,
    after those parents are built, as `dbt run` does (`CompiledInRun`); the rest share one dbt compile.
    """
    from sqlassets.dbt.compile import compile_after_parents, compile_assets
    from sqlassets.run.partitions import partitions_def
    from sqlassets.run.planner import strategy_name

    def build(asset: Asset, pdef: Any, sql: str | None) -> Materializer:
        from sqlassets.run.strategies import Materializer
        from sqlassets.run.windows import prepare_select

        prepared = prepare_select(asset, sql, graph, pdef=pdef) if sql is not None else None
        return Materializer(asset, pdef, adapter, prepared, full_refresh=full_refresh, root=project.root)

    keys = [a.key for a in plan.to_run]
    need_sql = [k for k in keys if graph[k].kind != "seed" and graph[k].materialization != "seed"]
    def on_compile(n: int) -> None:
        if echo is not None:
            echo(f"compiling {n} model(s) with dbt...")

    late = compile_after_parents(project, graph, need_sql, keys) if in_run and need_sql and project.has_dbt else set()
    up_front = [k for k in need_sql if k not in late]
    compiled = compile_assets(project, graph, up_front, on_compile=on_compile, for_run=True) if up_front else None
    sql = compiled.sql if compiled else {}
    failed = compiled.failed if compiled else {}
    for k, why in sorted(failed.items()):
        if echo is not None:
            echo(f"cannot compile '{k}': {why}; its partitions fail and what reads them is skipped")
    out: dict[str, Materializer] = {}
    for k in keys:
        asset = graph[k]
        if asset.is_external:
            # Sources and external tables belong to someone else: never written, whatever the selection.
            raise UserError(f"asset '{k}' is a {asset.kind} (observed, never written); it cannot be materialized")
        pdef = partitions_def(asset)
        strategy = strategy_name(asset, pdef)
        if k in failed:
            # One model that dbt cannot compile (a Jinja error, a macro needing a live warehouse) fails
            # its own units and skips what reads it; every other model still runs, as in `dbt run`.
            out[k] = Uncompiled(asset, pdef, strategy, f"cannot compile: {failed[k]}")
            continue
        if k in late:
            out[k] = CompiledInRun(asset, pdef, strategy, project, graph,
                                   lambda sql_, a=asset, p=pdef: build(a, p, sql_))
            continue
        if k in need_sql and k not in sql:
            raise UserError(f"asset '{k}' has no SQL to run")
        if statements is not None and not full_refresh and k in need_sql and strategy in INCREMENTAL:
            digest = statements.digests[k] = statements.key(asset, sql[k], graph, pdef, strategy)
            entry = statements.load(digest)
            if entry is not None:
                out[k] = CachedMaterializer(asset, pdef, adapter, entry,
                                            fallback=lambda a=asset, p=pdef, q=sql[k]: build(a, p, q))
                continue
        out[k] = build(asset, pdef, sql.get(k) if k in need_sql else None)
    return out


class Uncompiled:
    """The materializer of a model dbt could not compile: preparing it fails each of its units with
    dbt's reason (once per asset: the executor caches a prepare error), so its downstream is skipped."""

    writes = True
    batchable = False
    exists: bool | None = None
    _prepared = False

    def __init__(self, asset: Asset, pdef: Any, strategy: str, reason: str) -> None:
        self.asset, self.pdef, self.strategy, self.reason = asset, pdef, strategy, reason
        self.relation = asset.relation

    def prepare(self, session: Any, first_keys: Sequence[str]) -> None:
        raise UserError(self.reason)

    def write(self, session: Any, keys: Sequence[str]) -> Any:
        raise UserError(self.reason)


class CompiledInRun:
    """The materializer of a model compiled during the run (see `compile_after_parents`): preparing its
    first unit, which runs after its parents' units, compiles it against the warehouse as built so far,
    then it writes as any model. Failing to compile fails its units with dbt's reason, as `Uncompiled`."""

    writes = True
    #: whether partitions may share a statement depends on the SQL, unknown until it is compiled
    batchable = False

    def __init__(self, asset: Asset, pdef: Any, strategy: str, project: Project, graph: AssetGraph,
                 build: Callable[[str], Materializer]) -> None:
        self.asset, self.pdef, self.strategy = asset, pdef, strategy
        self.relation = asset.relation
        self.exists: bool | None = None
        self._prepared = False
        self._project, self._graph, self._build = project, graph, build
        self._delegate: Materializer | None = None

    def prepare(self, session: Any, first_keys: Sequence[str]) -> None:
        if self._delegate is None:
            from sqlassets.dbt.compile import compile_in_run

            self._delegate = self._build(compile_in_run(self._project, self._graph, self.asset.key, session))
        self._delegate.prepare(session, first_keys)
        self.exists = self._delegate.exists
        self._prepared = True

    def write(self, session: Any, keys: Sequence[str]) -> Any:
        if self._delegate is None:
            raise UserError(f"'{self.asset.key}' was not compiled")
        return self._delegate.write(session, keys)


def _remember_statements(statements: StatementCache, materializers: dict[str, Any], plan: Plan,
                         adapter: Adapter, state: StateStore, run_id: int) -> None:
    """Save the templates built this run for the next one; a failure here never fails the run."""
    try:
        remember(statements, materializers, plan, adapter.session)
    except Exception as exc:  # noqa: BLE001 - an optimisation for the next run, not part of this one
        state.log(run_id, "debug", f"statement cache not saved: {one_line(exc)}")


def execute_request(project: Project, graph: AssetGraph, req: RunRequest, *,
                    hook: PostMaterializeHook | None = None,
                    hook_factory: Callable[[list[str]], PostMaterializeHook | None] | None = None,
                    echo: Callable[[str], None] = print,
                    progress_factory: Callable[[int], Progress] | None = None,
                    before_write: Callable[[Asset, tuple[str, ...], int], None] | None = None,
                    adapter: Adapter | None = None,
                    listeners: Sequence[RunListener] = ()) -> tuple[Plan, RunSummary | None]:
    """Plan, print the plan, and (unless --dry-run) run it with leases, state and progress.

    The run's time is wall-clock from here: planning and compiling are part of what the user waited for.
    `listeners` get the run's events (see `sqlassets.run.events`), after those sqlassets.yml configures.
    """
    requested_at, t_request = time.time(), time.perf_counter()
    from sqlassets.adapters.base import adapter_for

    if req.options.full_refresh and (req.partitions or req.partition):
        # dbt's --full-refresh rebuilds the whole table; with a range it would drop every partition
        # outside the range. Rebuilding a range in place is what --all is for.
        raise UserError("--full-refresh drops and rebuilds whole tables, so it cannot take --partitions/"
                        "--partition (partitions outside the range would be lost); drop the range, or use "
                        "--all with the range to rebuild those partitions in place")
    # Planning only reads: a refusal (bad partition key, unknown backfill, nothing selected) or a
    # --dry-run writes nothing, not even a new state database or a crashed-run cleanup. The store is
    # reopened for writing once the plan stands.
    state = open_state(project, readonly=True)
    try:
        backfill_id = req.resume
        requested = None
        if req.resume is not None:
            bf = state.backfill(req.resume)
            if bf is None:
                raise UserError(f"no backfill {req.resume}; see `sqlassets backfill list`")
            if state.scope is not None and bf.get("target", state.target) != state.target:
                raise UserError(f"backfill {req.resume} writes {bf['target'] or 'an older state'}, not this target "
                                f"({state.target}); resume it with the --target it was started on")
            # Only what the backfill has not written yet, rebuilt whatever its state: a `--stale`/`--all`
            # backfill asked for partitions that were already done, so "missing" alone would skip them.
            requested = {k: v for k, v in state.backfill_outstanding(bf).items() if k in graph}
            missing_assets = sorted(a for a in bf["requested"] if a not in graph)
            if missing_assets:
                echo(f"note: asset(s) no longer in the project: {', '.join(missing_assets)}")
            opts = bf["options"]
            req.options.concurrency = req.options.concurrency or opts.get("concurrency", 1)
            selected = list(requested)
        elif req.requested is not None:
            requested = {graph[k].key: list(v) for k, v in req.requested.items()}
            selected = list(requested)
            if not selected:
                raise UserError("no asset partitions to run")
        elif req.keys is not None:
            selected = graph.sort(graph[k].key for k in req.keys)
            if not selected:
                raise UserError("no asset keys to run")
        else:
            selected = select_keys(graph, req.select or None, req.exclude or None)
            if not selected:
                raise UserError("the selection matches no asset; see `sqlassets list --select ...`")
        mark = state.write_mark()  # what the plan saw: another run may finish some of it before our leases
        plan = build_plan(graph, selected, state, mode=req.mode, partitions=req.partitions,
                          partition=req.partition, full_refresh=req.options.full_refresh, requested=requested,
                          rebuild_requested=req.resume is not None)
        for line in plan.lines(graph):
            echo(line)
        faults.hit("planned")
        from sqlassets.adapters.base import adapter_class

        adapter_cls = adapter_class(project.warehouse.type) if adapter is None else type(adapter)
        if not req.options.concurrency:  # not given: the profile's threads on a remote warehouse
            req.options.concurrency = adapter_cls.default_concurrency(project.warehouse)
        if req.dry_run:
            if adapter_cls.remote and not plan.empty:  # every statement a run would send, none sent
                from sqlassets.run.strategies import print_statements

                dry = adapter or adapter_cls(project.warehouse)
                try:
                    print_statements(plan, prepare_materializers(project, graph, plan, dry, False), dry,
                                     batch_size=req.options.batch_size, echo=echo)
                finally:
                    if adapter is None:
                        dry.close()
            return plan, None
        state.close()
        state = open_state(project)
        state.reap_crashed()
        if req.resume is not None:
            _refuse_if_running(state, req.resume)
        if plan.empty:
            if backfill_id is not None:
                bf_run = state.start_run("backfill", command=req.command, options={}, backfill_id=backfill_id)
                state.finish_run(bf_run, "success", planned=0, done=0, failed=0, skipped=0)
            return plan, RunSummary(None, "success", backfill_id=backfill_id)
        own_adapter = adapter is None
        adapter = adapter or adapter_for(project.warehouse, wait=req.options.wait)
        statements = StatementCache(project.state_dir, adapter)
        options_json = {"concurrency": req.options.concurrency, "batch_size": req.options.batch_size,
                        "mode": plan.mode, "full_refresh": req.options.full_refresh,
                        "select": list(req.select or []), "partitions": req.partitions or req.partition}
        try:
            faults.hit("compile")
            materializers = prepare_materializers(project, graph, plan, adapter, req.options.full_refresh,
                                                  echo=echo, statements=statements, in_run=True)
            if hook is None and hook_factory is not None:
                hook = hook_factory([a.key for a in plan.to_run])
        except KeyboardInterrupt as exc:
            # Ctrl-C / SIGTERM while compiling: nothing is written yet, but the run was asked for. It is
            # recorded interrupted (with the backfill it starts), so `runs` shows it and resume works.
            with signals_deferred():
                if req.backfill and backfill_id is None:
                    backfill_id = state.create_backfill(" ".join(req.select or []) or "*", plan.requested(),
                                                        options_json)
                run_id = state.start_run("backfill" if backfill_id is not None else "materialize",
                                         command=req.command, options=options_json, backfill_id=backfill_id,
                                         started_at=requested_at)
                state.log(run_id, "error", "interrupted while compiling")
                state.finish_run(run_id, "interrupted", planned=plan.total, done=0, failed=0, skipped=0)
            return plan, RunSummary(run_id, "interrupted", planned=plan.total, cancelled=plan.total,
                                    seconds=time.perf_counter() - t_request, backfill_id=backfill_id,
                                    signal=signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)
        if req.backfill and backfill_id is None:
            backfill_id = state.create_backfill(" ".join(req.select or []) or "*", plan.requested(), options_json)
            echo(f"backfill {backfill_id}: {plan.total} partition(s); resume with `sqlassets backfill resume "
                 f"{backfill_id}`")
        kind = "backfill" if backfill_id is not None else "materialize"
        before = state.backfill(backfill_id) if req.resume is not None else None
        from sqlassets.run.events import EventBus, configured_listeners

        events = EventBus([*configured_listeners(project, graph), *listeners], warn=echo)
        run_id = state.start_run(kind, command=req.command, options=options_json, backfill_id=backfill_id,
                                 started_at=requested_at)
        summary: RunSummary | None = None
        try:
            try:
                waited = state.acquire_leases([a.key for a in plan.to_run], run_id, backfill_id=backfill_id,
                                              wait=req.options.wait, on_wait=echo)
            except LeaseConflict:
                # Refused: this run never happened. Forget it (and the backfill it just created, or put
                # back the resumed backfill as it was) instead of recording a failure it never had.
                state.discard_run(run_id, backfill_id=backfill_id, created_backfill=req.resume is None,
                                  backfill_before=before)
                run_id = -1
                raise
            if events:
                events.run_started(run_id, req.command)
            if waited or state.written_since(mark, [a.key for a in plan.to_run]):
                # The run we waited for (or one that finished between our plan and our leases, on any
                # machine) may have written what we planned: plan again, keep only that.
                if req.resume is not None:
                    requested = {k: v for k, v in state.backfill_outstanding(bf).items() if k in graph}
                plan = build_plan(graph, selected, state, mode=req.mode, partitions=req.partitions,
                                  partition=req.partition, full_refresh=req.options.full_refresh,
                                  requested=requested if requested is not None else plan.requested(),
                                  rebuild_requested=req.resume is not None)
                echo(f"after waiting: {plan.total} unit(s) still to run" if waited else
                     f"another run wrote these assets since the plan: {plan.total} unit(s) still to run")
            if req.options.full_refresh:
                for a in plan.to_run:
                    if materializers[a.key].strategy in ("partition_replace", "merge", "append"):
                        state.forget_asset(a.key)
            progress = progress_factory(plan.total) if progress_factory else None
            try:
                adapter.open()
                ex = Executor(plan, graph, adapter, state, run_id, materializers, options=req.options, hook=hook,
                              progress=progress, before_write=before_write, events=events)
                summary = ex.run()
                from sqlassets.loaders.raw_sql import save_tables_cache

                save_tables_cache()  # the next command loads the project without parsing its SQL files
                if statements.digests:
                    _remember_statements(statements, materializers, plan, adapter, state, run_id)
            finally:
                if progress is not None:
                    progress.close()
                if own_adapter:
                    adapter.close()
            summary.backfill_id = backfill_id
            summary.seconds = time.perf_counter() - t_request
            for asset, keys, error in summary.failures[:20]:
                state.log(run_id, "error", f"{asset} [{keys}]: {error}")
            return plan, summary
        except BaseException as exc:
            if run_id == -1:
                raise
            if summary is None:
                status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
                state.log(run_id, "error", one_line(exc))
                state.finish_run(run_id, status, planned=plan.total, done=0, failed=0, skipped=0)
            raise
        finally:
            if summary is not None:
                state.finish_run(run_id, summary.status, planned=summary.planned, done=summary.done,
                                 failed=summary.failed, skipped=summary.skipped)
            elif run_id != -1:
                state.release_leases(run_id)
            if events and run_id != -1:
                s = summary
                events.run_finished(run_id, s.status if s is not None else "failed",
                                    {"planned": s.planned if s else plan.total, "done": s.done if s else 0,
                                     "failed": s.failed if s else 0, "skipped": s.skipped if s else 0},
                                    req.command)
                events.close()
    finally:
        state.close()
