"""What a run shows while it builds: a live bar on a terminal, a line per N units or per 5 s otherwise.

- Terminal: a rich bar (done/total, rate, elapsed, ETA) once the run has lasted a second, so short runs
  print nothing but their summary; rich is imported only then.
- Pipes and CI logs: one progress line per `every_units` units or per `every_seconds`, whichever comes
  first, plus one at the end — never one line per partition (a 3,000-partition backfill would print 3,000).
- Both: failures, and WARN/FAIL/ERROR check results, are printed in full as they happen (as `dbt build`
  prints WARN inline). A check that fails the same way on many partitions is printed a few times, then
  only counted; the counts end up in the run's closing summary (`check_summary`).
- `quiet`: no bar and no progress lines; failures and the summary only.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import Any, TextIO

# How many times one (asset, check, outcome) is printed inline before it is only counted.
REPEATS_SHOWN = 3
_WORDS = {"pass": "passed", "warn": "warned", "info": "noted", "fail": "failed", "error": "errored",
          "skipped": "skipped"}


def outcome(result: Any) -> str:
    """How a check result reads in a build log, as `dbt build` says it: a failing warning-severity check
    is WARN (it does not block), an info one INFO; only blocking (critical) results are FAIL / ERROR."""
    if result.status in ("pass", "skipped") or result.blocking:
        return result.status
    return "warn" if result.severity == "warning" else "info"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _what(asset: str, keys: tuple[str, ...]) -> str:
    if keys == ("",) or not keys:
        return asset
    return f"{asset} [{keys[0]}]" if len(keys) == 1 else f"{asset} [{keys[0]}..{keys[-1]}]"


class Progress:
    def __init__(self, total: int, *, stream: TextIO | None = None, tty: bool | None = None,
                 delay: float = 1.0, quiet: bool = False, every_units: int | None = None,
                 every_seconds: float = 5.0) -> None:
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.delay = delay
        self.quiet = quiet
        # About twenty lines for a whole run, at least one per 5 s.
        self.every_units = every_units or max(1, total // 20)
        self.every_seconds = every_seconds
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self.skipped = 0
        self.check_counts: dict[str, int] = {}
        self._seen: dict[tuple[str, str, str], int] = {}
        self._last_line_at = self.started
        self._last_line_units = 0
        self._last_what = ""
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    # -- what the executor reports -------------------------------------------------------------------
    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    def tick(self) -> None:
        """Called periodically by the executor so the bar (or a timed line) shows while one long unit runs."""
        with self._lock:
            self._ensure_bar()
            self._maybe_line(force=False)

    def unit(self, asset: str, keys: tuple[str, ...], status: str, rows: int | None, seconds: float,
             error: str | None = None) -> None:
        with self._lock:
            n = len(keys)
            if status == "done":
                self.done += n
            elif status == "skipped":
                self.skipped += n
            else:
                self.failed += n
            what = _what(asset, keys)
            self._last_what = what
            self._ensure_bar()
            if status not in ("done", "skipped"):
                # The same failure on many partitions (a model that cannot compile, a broken upstream)
                # is printed a few times, then counted in the progress lines and the summary.
                seen_key = (asset, status, error or "")
                seen = self._seen[seen_key] = self._seen.get(seen_key, 0) + 1
                if seen <= REPEATS_SHOWN:
                    more = "  (further repeats are counted)" if seen == REPEATS_SHOWN else ""
                    self._print(f"{status.upper():<5} {what}: {error or ''}".rstrip(": ") + more)
            if self._bar is not None:
                self._bar.update(self._task, completed=self.finished, failed=self.failed, description=what[:50],
                                 rate=self._rate_eta()[0])
                return
            self._maybe_line(force=self.finished >= self.total)

    def checks(self, results: Iterable[Any]) -> None:
        """Check results of one unit: counted, and printed inline unless they passed."""
        with self._lock:
            for r in results:
                kind = outcome(r)
                self.check_counts[kind] = self.check_counts.get(kind, 0) + 1
                if kind in ("pass", "skipped"):
                    continue
                label = kind.upper()
                seen_key = (r.asset, r.check, kind)
                seen = self._seen[seen_key] = self._seen.get(seen_key, 0) + 1
                if seen > REPEATS_SHOWN:
                    continue
                where = f" [{r.partition}]" if getattr(r, "partition", None) else ""
                line = f"{label:<5} {r.check} on {r.asset}{where}"
                if getattr(r, "message", None):
                    line += f": {r.message}"
                if seen == REPEATS_SHOWN:
                    line += "  (further repeats are counted in the summary)"
                self._print(line)

    def message(self, text: str) -> None:
        with self._lock:
            self._print(text)

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.stop()
                self._bar = None
            elif self.finished and self._last_line_units != self.finished:
                self._maybe_line(force=True)
            self.stream.flush()

    def check_summary(self) -> str | None:
        """`checks: 1,680 passed, 3 warned` for the run's closing lines (None when no check ran)."""
        if not self.check_counts:
            return None
        order = ["pass", "warn", "info", "fail", "error", "skipped"]
        parts = [f"{self.check_counts[s]:,} {_WORDS.get(s, s)}" for s in order if self.check_counts.get(s)]
        parts += [f"{n:,} {s}" for s, n in sorted(self.check_counts.items()) if s not in order]
        return "checks: " + ", ".join(parts)

    # -- rendering ------------------------------------------------------------------------------------
    def _rate_eta(self) -> tuple[str, str]:
        elapsed = time.monotonic() - self.started
        finished = self.finished
        if finished == 0 or elapsed <= 0:
            return "-", "-"
        rate = finished / elapsed
        left = max(self.total - finished, 0)
        return (f"{rate:.1f}/s" if rate < 100 else f"{rate:,.0f}/s"), _duration(left / rate)

    def _maybe_line(self, *, force: bool) -> None:
        if self.tty or self.quiet:
            return
        now = time.monotonic()
        due = (self.finished - self._last_line_units >= self.every_units
               or (now - self._last_line_at >= self.every_seconds and self.finished > self._last_line_units))
        if not (force or due):
            return
        rate, eta = self._rate_eta()
        pct = 100 * self.finished // self.total if self.total else 100
        line = f"[{self.finished}/{self.total}] {pct:>3}%  {self.done} done"
        if self.failed:
            line += f", {self.failed} failed"
        if self.skipped:
            line += f", {self.skipped} skipped"
        line += f"  {rate}  elapsed {_duration(now - self.started)}"
        if self.finished < self.total:
            line += f"  ETA {eta}"
        if self._last_what:
            line += f"  last: {self._last_what}"
        print(line, file=self.stream, flush=True)
        self._last_line_at = now
        self._last_line_units = self.finished

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

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
                                 TextColumn("{task.fields[failed]} failed"),
                                 TextColumn("{task.fields[rate]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(file=self.stream), transient=True)
        self._bar.start()
        self._task = self._bar.add_task("materializing", total=self.total, completed=self.finished,
                                        failed=self.failed, rate="")
