"""A real PostgreSQL server for the tests: Debian's postgresql binaries, started once per test session.

initdb refuses to run as root, so as root the server runs as the `postgres` user (`runuser`) in a temp
dir it owns, on a free loopback port, with a password-protected role (scram) so tests see real auth.
Each test gets its own schema (the state store keeps its tables in one), so tests never share rows.
Without the binaries a test skips locally; under CI=true (where .ci/run installs postgresql) it fails.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "sqlassets"
PASSWORD = "pw-" + uuid.uuid4().hex[:12]  # a secret the tests grep for: it must never land on disk


@dataclass(frozen=True)
class PgServer:
    port: int
    dbname: str = "state"

    @property
    def url(self) -> str:
        return f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{self.dbname}"


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_owner(argv: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@contextmanager
def start_postgres() -> Iterator[PgServer]:
    """initdb + start on a free loopback port; stopped and removed on exit. Raises LookupError without binaries."""
    bindir = _bin_dir()
    if bindir is None:
        raise LookupError("PostgreSQL binaries not found (Debian: apt-get install postgresql; .ci/run installs it)")
    base = Path(tempfile.mkdtemp(prefix="sqlassets-pg-"))
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(base, "postgres")
        for p in (sock, pwfile):
            shutil.chown(p, "postgres")
    try:
        _as_owner([str(bindir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
                   "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8"])
        pwfile.unlink()
        port = _free_port()
        _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-w", "-t", "60", "-o",
                   f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
                   "start"])
        _as_owner([str(bindir / "createdb"), "-h", str(sock), "-p", str(port), "-U", USER, "state"])
        yield PgServer(port)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run((["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                           + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                           capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if _bin_dir() is None:
        msg = "PostgreSQL binaries not found (Debian: apt-get install postgresql; .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    with start_postgres() as server:
        yield server


@pytest.fixture
def pg_schema(pg_server: PgServer) -> str:
    """A fresh schema name for one test (created by the store on first use)."""
    return "t_" + uuid.uuid4().hex[:10]


def wait_for(predicate, timeout: float = 20.0, every: float = 0.05) -> bool:  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(every)
    return predicate()
