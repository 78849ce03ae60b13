"""Ctrl-C and SIGTERM stop a run the same way: statements in flight cancelled and rolled back, state
rows written whole, the run recorded `interrupted`, exit 130 (Ctrl-C) or 143 (SIGTERM, as a shell
reports a process that died of it). A container runtime, systemd or a CI runner stops us with SIGTERM;
left to its default it would kill the process at once and leave the run `running`.

The CLI turns SIGTERM into `Terminated`, a KeyboardInterrupt, for the whole command, so every path that
handles Ctrl-C handles SIGTERM too; the executor replaces both handlers while it runs units.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class Terminated(KeyboardInterrupt):
    """SIGTERM, delivered like Ctrl-C."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


def interrupt_for(signum: int) -> KeyboardInterrupt:
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def exit_code_for(exc: BaseException | int | None) -> int:
    """130 for Ctrl-C, 143 for SIGTERM (128 + the signal number, as shells report it)."""
    if isinstance(exc, Terminated) or exc == signal.SIGTERM:
        return 128 + signal.SIGTERM
    return 128 + signal.SIGINT


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """For one CLI command: SIGTERM raises `Terminated` in the main thread (not an instant death)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def ours(signum: int) -> bool:
    """Does `signum` have the handler we may replace for a while (the CLI's, or Python's Ctrl-C)?"""
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signum)
    return handler is (signal.default_int_handler if signum == signal.SIGINT else _raise_terminated)


@contextmanager
def handling(on_signal: Any) -> Iterator[list[int]]:
    """Route SIGINT and SIGTERM (where they are ours) to `on_signal(signum, frame)` inside the block."""
    taken = [s for s in (signal.SIGINT, signal.SIGTERM) if ours(s)]
    previous = {s: signal.getsignal(s) for s in taken}
    for s in taken:
        signal.signal(s, on_signal)
    try:
        yield taken
    finally:
        for s in taken:
            signal.signal(s, previous[s])


@contextmanager
def deferred() -> Iterator[None]:
    """Hold Ctrl-C / SIGTERM until the block ends (main thread only), then raise it.

    Recording state is a transaction that must land whole (all of a unit's rows or none); a signal in
    the middle would otherwise raise between two writes.
    """
    hit: list[int] = []
    with handling(lambda signum, frame: hit.append(signum)):
        yield
    if hit:
        raise interrupt_for(hit[0])
