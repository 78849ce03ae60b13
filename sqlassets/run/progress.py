"""Progress for runs: a rich bar on a terminal once a run has lasted a second, plain lines otherwise.

Plain lines (one per finished unit, failures in full) are what CI logs and pipes want; the bar is
started lazily so short runs print nothing but their summary and rich is imported only on a TTY.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, tty: bool | None = None,
                 delay: float = 1.0, quiet: bool = False) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.delay = delay
        self.quiet = quiet
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def _ensure_bar(self) -> None:
        if self._bar is not None or not self.tty or self.quiet:
            return
        if time.monotonic() - self.started < self.delay:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[failed]} failed"), TimeElapsedColumn(),
                                 TimeRemainingColumn(), console=Console(file=self.stream), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("materializing", total=self.total, completed=self.done, failed=self.failed)

    def tick(self) -> None:
        """Called periodically by the executor so the bar appears even while one long unit runs."""
        with self._lock:
            self._ensure_bar()

    def unit(self, asset: str, keys: tuple[str, ...], status: str, rows: int | None, seconds: float,
             error: str | None = None) -> None:
        with self._lock:
            n = len(keys)
            if status == "done":
                self.done += n
            else:
                self.failed += n
            what = asset if keys == ("",) else (f"{asset} [{keys[0]}]" if n == 1 else f"{asset} [{keys[0]}..{keys[-1]}]")
            self._ensure_bar()
            if self._bar is not None:
                self._bar.update(self._task, completed=self.done + self.failed, failed=self.failed,
                                 description=what[:60])
                if status != "done":
                    self._bar.console.print(f"[red]{status}[/red] {what}: {error or ''}")
                return
            if self.quiet and status == "done":
                return
            count = f"[{self.done + self.failed}/{self.total}]"
            detail = f"{rows:,} rows" if rows is not None else ""
            line = f"{count} {status:<7} {what} {detail} {seconds:.2f}s"
            if error:
                line += f"\n    {error}"
            print(line, file=self.stream, flush=False)

    def message(self, text: str) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.console.print(text)
            else:
                print(text, file=self.stream, flush=True)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
            self.stream.flush()
