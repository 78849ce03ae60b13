"""`sqlassets unlock`, `state info` and `state migrate` through the CLI (in-process), on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import invoke
from pg_server import PgServer
from run_support import make_project, project_store

from sqlassets.run.state import LeaseLost, StateStore, UnitRecord
from sqlassets.run.state.postgres import PostgresBackend

ENV = "SQLASSETS_STATE_URL"


def cli(root: Path, *args: str, **kw):  # noqa: ANN003, ANN201
    return invoke(["--project", str(root), *args], **kw)


def test_unlock_asks_then_clears_and_the_holder_stops(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False)
    with project_store(root) as st:
        run = st.start_run("backfill", command="holder", options={})
        st.acquire_leases(["daily", "summary"], run)
        info = cli(root, "state", "info")
        assert info.exit_code == 0 and "'daily' held by run 1" in info.stdout and "expires in" in info.stdout
        # no answer on stdin: refused, nothing cleared
        r = cli(root, "unlock", "daily")
        assert r.exit_code == 2 and "pass --yes" in r.stderr and r.stderr.count("\n") == 1
        assert "may still be running" in r.stdout
        r = cli(root, "unlock", "daily", input="n\n")
        assert r.exit_code == 1 and "nothing unlocked" in r.stdout
        assert {x["asset"] for x in st.leases()} == {"daily", "summary"}
        r = cli(root, "unlock", "daily", input="y\n")
        assert r.exit_code == 0 and "unlocked 1 lease(s): daily" in r.stdout
        assert {x["asset"] for x in st.leases()} == {"summary"}
        # the holder finds out at its next state write, and records nothing
        t = time.time()
        with pytest.raises(LeaseLost, match="lost its lease on 'daily'"):
            st.record_units(run, [UnitRecord("daily", "2024-01-01", "done", t, t)])
        r = cli(root, "unlock", "--run", str(run), "--yes")
        assert r.exit_code == 0 and "summary" in r.stdout and st.leases() == []
    r = cli(root, "unlock", "daily", "--yes")
    assert r.exit_code == 2 and "no lease on asset 'daily'" in r.stderr
    r = cli(root, "unlock")
    assert r.exit_code == 2 and "ASSET or --run" in r.stderr


def test_unlock_a_crashed_runs_lease_marks_it_crashed(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False, summary=False)
    with project_store(root, lease_ttl=1.0) as st:
        run = st.start_run("backfill", command="holder", options={})
        st.acquire_leases(["daily"], run)
        st._stop_heartbeat(run)  # as if its process froze: no more renewals
        st._s.execute("UPDATE leases SET host='elsewhere', host_id='elsewhere'")
        st._s.execute("UPDATE runs SET host='elsewhere', host_id='elsewhere'")
        time.sleep(1.2)
        r = cli(root, "state", "info")
        assert "expired" in r.stdout
    r = cli(root, "unlock", "daily", "--yes")
    assert r.exit_code == 0 and "may still be running" not in r.stdout
    with StateStore(root / ".sqlassets", readonly=True) as st:
        assert st.run(1)["status"] == "crashed"


def test_postgres_state_migrate_through_the_cli(tmp_path: Path, pg_server: PgServer, pg_schema: str) -> None:
    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False, summary=False)
    (root / "sqlassets.yml").write_text(
        "warehouse: {type: duckdb, path: warehouse.duckdb}\n"
        f"state: {{url: \"{{{{ env_var('{ENV}') }}}}\", schema: {pg_schema}}}\n")
    env = {ENV: pg_server.url}
    from sqlassets.run.state import SCHEMA_VERSION, schema, store

    with pytest.MonkeyPatch.context() as mp:  # a version-2 state, as sqlassets wrote it before targets
        mp.setattr(store, "MIGRATIONS", schema.MIGRATIONS[:2])
        mp.setattr(store, "SCHEMA_VERSION", 2)
        r = cli(root, "state", "migrate", env=env)
        assert r.exit_code == 0 and "created the state" in r.stdout and "schema version 2" in r.stdout
        assert "***" in r.stdout and pg_server.url not in r.stdout
        with StateStore(backend=PostgresBackend(pg_server.url, pg_schema)) as st:
            st._s.execute("INSERT INTO materializations (asset, partition, status, run_id, materialized_at, "
                          "attempted_at) VALUES ('daily', '2024-01-01', 'done', NULL, 1.0, 1.0)")
    r = cli(root, "status", env=env)  # reading works on the older schema
    assert r.exit_code == 0 and "missing  2024-01-02" in r.stdout and "missing  2024-01-01" not in r.stdout
    r = cli(root, "materialize", env=env)
    assert r.exit_code == 2 and "run `sqlassets state migrate`" in r.stderr
    r = cli(root, "state", "migrate", env=env)
    assert r.exit_code == 0 and f"from schema version 2 to {SCHEMA_VERSION}" in r.stdout
    r = cli(root, "status", env=env)  # the migrating target kept the record
    assert r.exit_code == 0 and "missing  2024-01-02" in r.stdout and "missing  2024-01-01" not in r.stdout
    r = cli(root, "materialize", env=env)
    assert r.exit_code == 0, r.stderr
    r = cli(root, "state", "migrate", env=env)
    assert "nothing to do" in r.stdout


def test_a_run_that_finishes_between_plan_and_leases_is_not_redone(tmp_path: Path) -> None:
    """Machine B plans, machine A finishes those partitions, then B takes its leases: B plans again instead
    of writing them a second time (an append would duplicate rows). The hook factory runs after the plan
    and before the leases; it records the partitions done through a second store, as A's run would."""
    from sqlassets.loaders import load_graph
    from sqlassets.project import load_project
    from sqlassets.run.executor import RunOptions, RunRequest, execute_request

    root = make_project(tmp_path / "p", days=3, end="2024-01-04", monthly=False, summary=False)
    project = load_project(root)
    graph = load_graph(project)

    def other_machine_finishes(keys: list[str]) -> None:
        with project_store(root) as other:
            run = other.start_run("backfill", command="machine A", options={})
            t = time.time()
            other.record_units(run, [UnitRecord("daily", f"2024-01-0{d}", "done", t, t, code_version=graph["daily"].code_version)
                                     for d in (1, 2)])
            other.finish_run(run, "success", planned=2, done=2, failed=0, skipped=0)
        return None

    lines: list[str] = []
    plan, summary = execute_request(project, graph, RunRequest(select=["daily"], options=RunOptions()),
                                    hook_factory=other_machine_finishes, echo=lines.append)
    assert "another run wrote these assets since the plan: 1 unit(s) still to run" in lines, lines
    assert summary is not None and summary.done == 1
    with StateStore(root / ".sqlassets", readonly=True) as st:
        ours = [s["partition"] for s in st.steps(2)]
    assert ours == ["2024-01-03"]
