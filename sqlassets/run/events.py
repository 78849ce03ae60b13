"""Run events for listeners outside the executor (OpenLineage, orchestrators, UIs).

The executor emits four kinds of `RunEvent`: `run_started`, `unit_started`, `unit_finished` and
`run_finished`. A *unit* is what one statement writes: one partition, a batch of contiguous partitions,
or a whole unpartitioned asset; `partitions` lists its keys ("" for an unpartitioned asset).

Listeners are plain objects with an `on_event(event)` method. They are called on the thread that emits
(a worker thread for unit events when the run has `--concurrency` > 1), one at a time (the bus holds a
lock), and a listener that raises never fails the run: the error is reported once per listener through
`warn` and the listener is dropped for the rest of the run.

Listeners come from sqlassets.yml (`openlineage:` builds the OpenLineage emitter) or are passed in by
the caller. Their modules are imported only when configured, so a run without listeners pays nothing
but an `if`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from sqlassets.check_results import CheckResult
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project

EventKind = Literal["run_started", "unit_started", "unit_finished", "run_finished"]


@dataclass(frozen=True)
class RunEvent:
    """One thing that happened in a run.

    run_id: the state store's run id; kind: see the module docstring; time: epoch seconds.
    For unit events: asset (the `Asset`, read-only), partitions (keys in order), windows (the time
    window (start, end) ISO strings per key for time partitions, else None), status (`done | failed |
    cancelled` on `unit_finished`), rows, error, checks (results of the post-materialize checks).
    For run events: status (`running` on start, then success | failed | interrupted), command, and
    the counts of the finished run in `counts`.
    """

    kind: EventKind
    run_id: int
    time: float
    asset: Asset | None = None
    partitions: tuple[str, ...] = ()
    windows: tuple[tuple[str, str] | None, ...] = ()
    status: str = ""
    rows: int | None = None
    error: str | None = None
    checks: tuple[CheckResult, ...] = ()
    command: str = ""
    counts: dict[str, int] = field(default_factory=dict, compare=False)


class RunListener(Protocol):
    def on_event(self, event: RunEvent) -> None: ...


class EventBus:
    """Delivers events to listeners, serialized, with a listener's failure contained."""

    def __init__(self, listeners: Iterable[RunListener], warn: Callable[[str], None] | None = None) -> None:
        self.listeners = list(listeners)
        self.warn = warn
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self.listeners)

    def emit(self, event: RunEvent) -> None:
        with self._lock:
            for listener in list(self.listeners):
                try:
                    listener.on_event(event)
                except Exception as exc:  # noqa: BLE001 - a listener never fails the run
                    self.listeners.remove(listener)
                    if self.warn is not None:
                        from sqlassets.run.executor import one_line

                        self.warn(f"warning: event listener {type(listener).__name__} failed and was turned "
                                  f"off for this run: {one_line(exc)}")

    def close(self) -> None:
        """Flush and close listeners that hold resources (files, HTTP sessions)."""
        with self._lock:
            for listener in self.listeners:
                close = getattr(listener, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:  # noqa: BLE001, S110 - closing is best effort
                        pass

    # -- helpers the executor calls -------------------------------------------------------------
    def run_started(self, run_id: int, command: str) -> None:
        self.emit(RunEvent("run_started", run_id, time.time(), status="running", command=command))

    def run_finished(self, run_id: int, status: str, counts: dict[str, int], command: str = "") -> None:
        self.emit(RunEvent("run_finished", run_id, time.time(), status=status, counts=counts, command=command))

    def unit(self, kind: EventKind, run_id: int, asset: Asset, keys: Sequence[str], *, status: str = "",
             rows: int | None = None, error: str | None = None, checks: Sequence[CheckResult] = (),
             at: float | None = None) -> None:
        self.emit(RunEvent(kind, run_id, at if at is not None else time.time(), asset=asset,
                           partitions=tuple(keys), windows=_windows(asset, keys), status=status, rows=rows,
                           error=error, checks=tuple(checks)))


def _windows(asset: Asset, keys: Sequence[str]) -> tuple[tuple[str, str] | None, ...]:
    from sqlassets.run.partitions import TimePartitionsDef, partitions_def

    pdef = partitions_def(asset)
    if not isinstance(pdef, TimePartitionsDef):
        return tuple(None for _ in keys)
    return tuple(pdef.window(k).iso() for k in keys)


# name in sqlassets.yml -> "module:factory"; factory(project, graph, config) -> RunListener
CONFIGURED: dict[str, str] = {
    "openlineage": "sqlassets.integrations.openlineage:listener_from_config",
}


def configured_listeners(project: Project, graph: AssetGraph) -> list[RunListener]:
    """Listeners sqlassets.yml asks for; their modules are imported only when their key is present."""
    import importlib

    out: list[RunListener] = []
    raw: dict[str, Any] = project.settings.raw
    for name, target in CONFIGURED.items():
        config = raw.get(name)
        if config is None or config is False:
            continue
        module, attr = target.split(":")
        factory = getattr(importlib.import_module(module), attr)
        listener = factory(project, graph, config)
        if listener is not None:
            out.append(listener)
    return out
