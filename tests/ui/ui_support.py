"""A real `sqlassets ui` server over a built copy of sample_project, for the UI tests.

The server is the CLI itself in a child process (`sqlassets --project X ui --port 0`), on a free
loopback port; the first line it prints names the URL. The project is the sample shop with January
2024 generated and its first week materialized, so pages show done, missing and partial assets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import _RUN_ARTIFACTS, SAMPLE_PROJECT

SQLASSETS = [sys.executable, "-m", "sqlassets"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
SECRET = "ui-test-profile-secret-7f3a"


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    root: Path
    first_line: str
    extra: dict = field(default_factory=dict)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        req = urllib.request.Request(self.url.rstrip("/") + path, headers=headers or {})
        return _open(req)

    def post(self, path: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        data = json.dumps(body).encode()
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        return _open(req)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003
        return None


def _open(req: urllib.request.Request) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def build_sample(dest: Path) -> Path:
    root = dest / "sample_project"
    shutil.copytree(SAMPLE_PROJECT, root, ignore=shutil.ignore_patterns(*_RUN_ARTIFACTS, "data"))
    # a sentinel in profiles.yml: no page or API answer may ever contain it
    with open(root / "profiles.yml", "a", encoding="utf-8") as fh:
        fh.write(f"# {SECRET}\n")
    subprocess.run([sys.executable, str(root / "generate_data.py"), "--path", str(root / "data" / "warehouse.duckdb"),
                    "--end", "2024-01-31"], check=True, capture_output=True)
    # in a child process: an in-process dbt compile would keep its DuckDB lock in the test process
    res = subprocess.run([*SQLASSETS, "--project", str(root), "materialize", "--partitions", "2024-01-01..2024-01-07"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return root


def start_server(root: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen([*SQLASSETS, "--project", str(root), "ui", "--port", "0", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env, start_new_session=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("sqlassets ui: "):
        proc.kill()
        raise AssertionError(f"server did not start: {line}{proc.stderr.read() if proc.stderr else ''}")
    url = line.split()[2]
    return Server(url=url, proc=proc, root=root, first_line=line)


def stop_server(server: Server) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGINT)
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()


@pytest.fixture(scope="session")
def ui_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SAMPLE_PROJECT / "dbt_project.yml").exists():
        pytest.skip("sample_project/ is not there")
    return build_sample(tmp_path_factory.mktemp("ui"))


@pytest.fixture(scope="session")
def ui_server(ui_root: Path) -> Iterator[Server]:
    server = start_server(ui_root)
    yield server
    stop_server(server)
