"""Timing helpers shared by every bench/bench_*.py script.

Benchmarks run commands in new processes (what a user pays: interpreter start-up, imports, work)
and report medians next to a reference measured in the same run, because absolute seconds drift
between machines while ratios mostly do not.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "_work"
VENV_BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Timing:
    """Wall-clock seconds of each run, the highest peak RSS (MB) among them, and their stdout."""

    label: str
    runs: tuple[float, ...]
    peak_rss_mb: float
    outputs: tuple[bytes, ...] = field(default=(), repr=False)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


# Timed children run as on a real install: with bytecode caching. Some sandboxes export
# PYTHONDONTWRITEBYTECODE=1, which makes every run recompile the project's own modules (~40 ms) while
# the references import only pre-compiled site-packages. Every command (ours and the references)
# gets this same environment; the warm-up run writes the cache.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None
             ) -> tuple[float, float, bytes]:
    """Run `cmd` in a new process; return (wall seconds, peak RSS in MB, stdout).

    os.wait4 gives the rusage of exactly this child, so the peak RSS is the command's own. Output
    goes to temporary files (no pipe can fill up and stall the child).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=CHILD_ENV if env is None else env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
        # ru_maxrss is in KiB on Linux.
        return wall, usage.ru_maxrss / 1024, out.read()


def time_cmd(label: str, cmd: Sequence[str], *, repeat: int = 5, warmup: int = 1, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> Timing:
    """Timings of `cmd` over `repeat` runs after `warmup` untimed runs (warm OS caches)."""
    for _ in range(warmup):
        run_once(cmd, cwd=cwd, env=env)
    runs, peak, outputs = [], 0.0, []
    for _ in range(repeat):
        wall, rss, stdout = run_once(cmd, cwd=cwd, env=env)
        runs.append(wall)
        peak = max(peak, rss)
        outputs.append(stdout)
    return Timing(label, tuple(runs), peak, tuple(outputs))


def time_interleaved(cmds: dict[str, Sequence[str]], *, repeat: int = 5, warmup: int = 1,
                     runs_for: dict[str, int] | None = None) -> dict[str, Timing]:
    """Time several commands round-robin, so background load hits all of them alike.

    `runs_for` caps the runs of slow commands (they take part in the first N rounds only).
    """
    runs_for = runs_for or {}
    for cmd in cmds.values():
        for _ in range(warmup):
            run_once(cmd)
    walls: dict[str, list[float]] = {k: [] for k in cmds}
    peaks: dict[str, float] = dict.fromkeys(cmds, 0.0)
    outs: dict[str, list[bytes]] = {k: [] for k in cmds}
    for i in range(repeat):
        for label, cmd in cmds.items():
            if i >= runs_for.get(label, repeat):
                continue
            wall, rss, stdout = run_once(cmd)
            walls[label].append(wall)
            peaks[label] = max(peaks[label], rss)
            outs[label].append(stdout)
    return {k: Timing(k, tuple(walls[k]), peaks[k], tuple(outs[k])) for k in cmds}


def table(rows: Sequence[Sequence[object]], header: Sequence[str]) -> str:
    """A plain left-aligned text table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"
