"""Shared PostgreSQL state, end to end with the real `sqlassets` CLI in separate processes: two "machines"
(two project folders with their own state_dir, one warehouse, one PostgreSQL state) respect each other's
leases and see each other's partitions; export from SQLite / import into PostgreSQL keeps the history;
the state URL's password is never written anywhere."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import invoke
from pg_server import PASSWORD, PgServer, wait_for
from run_support import make_project, popen_cli, run_cli

from sqlassets.run.state import StateStore
from sqlassets.run.state.postgres import PostgresBackend

ENV = "SQLASSETS_STATE_URL"


def _machine(root: Path, warehouse: Path, schema: str) -> Path:
    """A second checkout of the project: same SQL, its own folder and state_dir, shared warehouse + state."""
    root.mkdir(parents=True)
    (root / "sql").symlink_to(warehouse.parent / "sql", target_is_directory=True)
    _settings(root, warehouse, schema)
    return root


def _settings(root: Path, warehouse: Path, schema: str) -> None:
    (root / "sqlassets.yml").write_text(
        f"warehouse: {{type: duckdb, path: {warehouse}}}\n"
        f"state: {{url: \"{{{{ env_var('{ENV}') }}}}\", schema: {schema}, lease_ttl: 5}}\n")


def cli(root: Path, *args: str, env: dict[str, str] | None = None):  # noqa: ANN201
    """The CLI in-process (the two-machine test uses real processes; here speed matters more)."""
    return invoke(["--project", str(root), *args], env=env)


def _grep_secret(*roots: Path) -> list[str]:
    hits = []
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file() and not p.is_symlink() and PASSWORD.encode() in p.read_bytes():
                hits.append(str(p))
    return hits


def test_two_machines_share_leases_and_partitions(tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    a = make_project(tmp_path / "a", start="2024-01-01", end="2024-04-01", days=91, rows_per_day=3000,
                     customers=500, monthly=False, summary=False, slow=True)
    warehouse = a / "warehouse.duckdb"
    _settings(a, warehouse, pg_schema)
    b = _machine(tmp_path / "b", warehouse, pg_schema)
    env = {ENV: pg_server.url}
    os.environ[ENV] = pg_server.url
    store = StateStore(backend=PostgresBackend(pg_server.url, pg_schema), readonly=True)
    args = ["backfill", "--select", "daily", "--partitions", "2024-01-01..2024-03-31"]
    first = popen_cli(a, *args, env=env)
    try:
        def leased() -> bool:
            store.close()
            store.__init__(backend=PostgresBackend(pg_server.url, pg_schema), readonly=True)
            return store.schema_version > 0 and bool(store.leases())

        assert wait_for(leased, timeout=60), "machine A never took its lease"
        waiter = popen_cli(b, *args, "--wait", env=env)  # started at once: it must find A still running
        second = run_cli(b, *args, env=env)
        assert first.poll() is None, "machine A finished before B started; make its backfill longer"
        assert second.returncode == 2, second.stdout + second.stderr
        assert "error: asset 'daily' is being written by backfill 1" in second.stderr
        assert "lease expires in" in second.stderr
        w_out, w_err = waiter.communicate(timeout=180)
        assert waiter.returncode == 0, w_err
        assert "waiting" in w_out and "after waiting: 0 unit(s) still to run" in w_out, w_out
    finally:
        out, err = first.communicate(timeout=180)
        store.close()
    assert first.returncode == 0, err
    # B sees what A wrote: every partition done, nothing left to run
    status = run_cli(b, "status", "--select", "daily", "-o", "json", env=env)
    assert status.returncode == 0, status.stderr
    daily = json.loads(status.stdout)[0]
    assert daily["asset"] == "daily" and daily["counts"]["done"] == 91 and daily["missing"] == ""
    again = run_cli(b, *args, env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr
    runs = run_cli(b, "runs", env=env)
    assert runs.stdout.count("backfill") >= 2, runs.stdout
    # the state lives in PostgreSQL only; neither machine has a state.db, and the password is nowhere
    assert not (a / ".sqlassets" / "state.db").exists() and not (b / ".sqlassets" / "state.db").exists()
    assert _grep_secret(a, b) == []


def test_export_from_sqlite_import_into_postgres(tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    root = make_project(tmp_path / "p", days=10, end="2024-01-11", monthly=False)
    r = cli(root, "backfill", "--partitions", "2024-01-01..2024-01-10")
    assert r.exit_code == 0, r.stderr
    assert cli(root, "materialize", "-s", "summary").exit_code == 0
    local_status = cli(root, "status").stdout
    local_runs = cli(root, "runs").stdout
    export = tmp_path / "state.jsonl"
    r = cli(root, "state", "export", str(export))
    assert r.exit_code == 0, r.stderr
    to_stdout = cli(root, "state", "export")  # no FILE: the same lines on stdout
    assert to_stdout.stdout.splitlines()[1:] == export.read_text().splitlines()[1:]
    assert oct(export.stat().st_mode & 0o777) == "0o600"
    # switch the project to the shared state and import
    env = {ENV: pg_server.url}
    (root / "sqlassets.yml").write_text(
        "warehouse: {type: duckdb, path: warehouse.duckdb}\n"
        f"state: {{url: \"{{{{ env_var('{ENV}') }}}}\", schema: {pg_schema}}}\n")
    with StateStore(root / ".sqlassets", readonly=True) as st:
        next_run = st.count("runs") + 1
    (root / ".sqlassets" / "state.db").rename(root / "old-state.db")
    r = cli(root, "state", "import", str(export), env=env)
    assert r.exit_code == 0, r.stderr
    assert cli(root, "status", env=env).stdout == local_status
    assert cli(root, "runs", env=env).stdout == local_runs
    # the export round-trips: exported from PostgreSQL, it is the SQLite export row for row
    again = tmp_path / "again.jsonl"
    assert cli(root, "state", "export", str(again), env=env).exit_code == 0
    assert again.read_text().splitlines()[1:] == export.read_text().splitlines()[1:]
    # ids continue after the imported ones, and a second import is refused (no mixed histories)
    r = cli(root, "materialize", "-s", "summary", "--all", env=env)
    assert r.exit_code == 0 and f"run {next_run} " in r.stdout, r.stdout + r.stderr
    r = cli(root, "state", "import", str(export), env=env)
    assert r.exit_code == 2 and "already holds" in r.stderr and r.stderr.count("\n") == 1
    assert not (root / ".sqlassets" / "state.db").exists()
    assert _grep_secret(root) == []


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("{\"format\": \"other\"}\n", "not a sqlassets state export"),
    ("{\"format\": \"sqlassets-state\", \"version\": 1, \"schema_version\": 99}\n", "newer than this"),
    ("{\"format\": \"sqlassets-state\", \"version\": 1, \"schema_version\": 2, \"counts\": {\"runs\": 2}}\n"
     "{\"table\": \"runs\", \"row\": {\"id\": 1, \"kind\": \"x\", \"status\": \"success\", \"started_at\": 1}}\n",
     "cut short"),
    ("{\"format\": \"sqlassets-state\", \"version\": 1, \"schema_version\": 2}\n{\"table\": \"runs\", \"row\": {\n",
     "line 2 is not JSON"),
])
def test_bad_import_file_is_one_line_and_writes_nothing(tmp_path: Path, text: str, words: str) -> None:
    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False, summary=False)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(text)
    r = cli(root, "state", "import", str(bad))
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
    assert "Traceback" not in r.stderr
    state = root / ".sqlassets" / "state.db"
    if state.exists():  # the cut-short file got as far as a transaction: it rolled back
        with StateStore(root / ".sqlassets", readonly=True) as st:
            assert st.count("runs") == 0


def test_status_while_the_state_server_is_down(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False, summary=False)
    _settings(root, root / "warehouse.duckdb", "sqlassets")
    t0 = time.monotonic()
    r = cli(root, "status", env={ENV: f"postgresql://u:{PASSWORD}@127.0.0.1:9/db"})
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "postgresql://u:***@127.0.0.1:9/db" in r.stderr and PASSWORD not in r.stderr
    assert time.monotonic() - t0 < 30
