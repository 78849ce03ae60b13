"""Seeded fault points for the fault-injection suite (tests/test_fault_injection.py).

`SQLASSETS_FAULT=POINT:N[:ACTION[:DELAY]]` acts the N-th time this process reaches POINT: ACTION is
KILL (SIGKILL, as `kill -9`; the default), INT (Ctrl-C) or TERM (SIGTERM), sent DELAY seconds later
from a timer thread (so a signal can land inside the work that follows, e.g. dbt compile or a check),
or SLEEP (pause DELAY seconds there, holding whatever the run holds: for concurrency tests).
Points: planned (plan printed, nothing written), compile (before compiling / parsing SQL), unit
(before a unit's statements), commit (in the warehouse transaction, before COMMIT), written (data
committed, state not yet recorded), check (before a unit's checks), flush (before state rows are
written), flushed (after).

Unset (always, outside that suite) `hit` is one global lookup: the points cost nothing.
"""

from __future__ import annotations

import os
import signal
import threading

_SPEC = os.environ.get("SQLASSETS_FAULT") or None
_counts: dict[str, int] = {}
_ACTIONS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT, "TERM": signal.SIGTERM}


def hit(point: str) -> None:
    if _SPEC is None:
        return
    _act(point)


def _act(point: str) -> None:
    name, _, rest = _SPEC.partition(":")  # type: ignore[union-attr]
    if name != point:
        return
    n, _, rest = rest.partition(":")
    action, _, delay = rest.partition(":")
    count = _counts[point] = _counts.get(point, 0) + 1
    if count != int(n or 1):
        return
    if action.upper() == "SLEEP":
        import time

        time.sleep(float(delay or 1))
        return
    signum = _ACTIONS[(action or "KILL").upper()]
    if delay and float(delay) > 0:
        threading.Timer(float(delay), os.kill, (os.getpid(), signum)).start()
    else:
        os.kill(os.getpid(), signum)
