"""The BigQuery emulator for tests: `bqemulator` in its own venv (`make bqemu-venv`), one per test session.

Started on a free loopback port by `bqemu_launch.py` (which skips the offline-failing download of
DuckDB's spatial extension) and stopped at the end of the session; it also exits by itself when this
process dies (it watches its stdin). Locally a missing emulator venv skips the tests that need it, with
the command to create it; under CI=true it fails them.

What the emulator does not do like BigQuery (so the tests keep out of it, and pin the statements
instead): it records no partitioning from `PARTITION BY` DDL (tables created through the API keep
theirs), keeps a stale schema in its catalog after ALTER TABLE ADD COLUMN / RENAME, rejects
multi-statement scripts with query parameters, cannot parse `@@row_count` (scripts' row counts) nor
truncate to `WEEK(MONDAY)` / `ISOWEEK`, fails a WRITE_TRUNCATE copy job onto a table of another schema,
and returns view definitions from INFORMATION_SCHEMA.VIEWS without their string literals; it bills
nothing, so `maximum_bytes_billed` and dry-run byte counts are checked against the exact job
configuration sent, not against real bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent / "adapters"
REPO = HERE.parent.parent
LAUNCHER = HERE / "bqemu_launch.py"
PROJECT = "sqlassets-test"


def emulator_python() -> Path | None:
    explicit = os.environ.get("SQLASSETS_BQEMU_PYTHON")
    candidates = [Path(explicit)] if explicit else []
    candidates.append(REPO / ".venv-bqemu" / "bin" / "python")
    for c in candidates:
        if c.exists():
            return c
    return None


def missing(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"BigQuery emulator unavailable under CI: {reason}")
    pytest.skip(f"BigQuery emulator unavailable ({reason}); run `make bqemu-venv`")


class Emulator:
    """A running bqemulator child process; `endpoint` is its REST address."""

    def __init__(self, python: Path, log: Path) -> None:
        self.log = log
        self._log_fh = log.open("w")
        self.proc = subprocess.Popen(
            [str(python), str(LAUNCHER), "--port", "0", "--project", PROJECT, "--watch-stdin"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log_fh, text=True)
        self.port = self._wait_ready(timeout=120)
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def _wait_ready(self, timeout: float) -> int:
        found: list[str] = []

        def read() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("READY "):
                    found.append(line.split()[1])
                    return

        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(timeout)
        if not found:
            self.stop()
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"bqemulator did not start within {timeout:.0f} s: {tail}")
        return int(found[0])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_fh.close()

    def profile(self, dataset: str, **extra: object) -> dict[str, object]:
        """A dbt-bigquery profile output for this emulator."""
        out: dict[str, object] = {"type": "bigquery", "method": "oauth", "project": PROJECT, "dataset": dataset,
                                  "location": "US", "threads": 2, "api_endpoint": self.endpoint}
        out.update(extra)
        return out


def start_emulator(tmp_dir: Path) -> Iterator[Emulator]:
    python = emulator_python()
    if python is None:
        missing("no .venv-bqemu")
    try:
        import google.cloud.bigquery  # noqa: F401
    except ImportError:
        missing("google-cloud-bigquery is not installed in the test venv")
    started = time.monotonic()
    emu = Emulator(python, tmp_dir / "bqemulator.log")
    sys.stderr.write(f"[bqemulator on {emu.endpoint}, started in {time.monotonic() - started:.1f} s]\n")
    try:
        yield emu
    finally:
        emu.stop()
