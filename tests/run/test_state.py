"""The state store on both backends (SQLite file, real PostgreSQL): runs, steps, materializations,
backfills, leases with heartbeat and expiry, check results, schema versions."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pg_server import PgServer

from sqlassets.check_results import CheckResult
from sqlassets.run.state import LeaseConflict, LeaseLost, StateError, StateStore, UnitRecord
from sqlassets.run.state.postgres import PostgresBackend
from sqlassets.run.state.sqlite import SQLiteBackend

Opener = Callable[..., StateStore]


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens stores on one state (call it twice for two processes' views of the same state)."""
    return _opener(request.param, tmp_path, request)


def _opener(engine: str, tmp_path: Path, request: pytest.FixtureRequest) -> Opener:
    if engine == "sqlite":
        def opener(**kw: Any) -> StateStore:
            return StateStore(backend=SQLiteBackend(tmp_path), **kw)
    else:
        server: PgServer = request.getfixturevalue("pg_server")
        schema = request.getfixturevalue("pg_schema")

        def opener(**kw: Any) -> StateStore:
            return StateStore(backend=PostgresBackend(server.url, schema), **kw)
    return opener


def sql(st: StateStore, text: str, params: tuple = ()) -> list[tuple]:
    """Raw SQL on the store's own connection (autocommit), in either dialect."""
    return st._s.execute(text, params).fetchall() if text.lstrip().upper().startswith("SELECT") else \
        (st._s.execute(text, params) and [])


def rec(asset: str, key: str, status: str = "done", **kw) -> UnitRecord:
    t = time.time()
    return UnitRecord(asset, key, status, t, t + 0.01, **kw)


def dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sqlite_is_wal(tmp_path: Path) -> None:
    with StateStore(tmp_path) as st:
        assert sql(st, "SELECT * FROM pragma_journal_mode")[0][0] == "wal"


def test_units_round_trip(open_store: Opener) -> None:
    st = open_store()
    run = st.start_run("materialize", command="x", options={})
    st.record_units(run, [rec("a", "2024-01-01", rows=5, code_version="v1"),
                          rec("a", "2024-01-02", "failed", error="boom")])
    mats = st.materializations("a")
    assert mats["2024-01-01"].done and mats["2024-01-01"].rows == 5 and mats["2024-01-01"].code_version == "v1"
    assert mats["2024-01-02"].status == "failed" and mats["2024-01-02"].materialized_at is None
    # a later failure keeps the last successful write's time (the data is still there)
    st.record_units(run, [rec("a", "2024-01-01", "failed", error="again")])
    m = st.materializations("a")["2024-01-01"]
    assert m.status == "failed" and m.materialized_at is not None
    st.finish_run(run, "failed", planned=2, done=1, failed=1, skipped=0)
    assert st.run(run)["status"] == "failed"
    assert [s["status"] for s in st.steps(run)] == ["done", "failed", "failed"]
    assert st.all_materializations({"a"})["a"].keys() == {"2024-01-01", "2024-01-02"}
    st.close()


def test_backfill_progress_is_computed_from_materializations(open_store: Opener) -> None:
    with open_store() as st:
        bf = st.create_backfill("daily", {"daily": ["2024-01-01", "2024-01-02", "2024-01-03"]}, {"concurrency": 2})
        run = st.start_run("backfill", command="x", options={}, backfill_id=bf)
        st.record_units(run, [rec("daily", "2024-01-01"), rec("daily", "2024-01-02", "failed", error="x")])
        prog = st.backfill_progress(st.backfill(bf))
        assert prog == {"total": 3, "done": 1, "failed": 1, "missing": 1}
        assert st.backfill(bf)["options"] == {"concurrency": 2}
        assert [b["id"] for b in st.backfills()] == [bf]


def test_backfill_counts_only_partitions_written_since_it_started(open_store: Opener) -> None:
    keys = ["2024-01-01", "2024-01-02", "2024-01-03"]
    with open_store() as st:
        before = st.start_run("materialize", command="x", options={})
        st.record_units(before, [rec("daily", k) for k in keys])
        time.sleep(0.05)
        bf = st.create_backfill("daily", {"daily": keys}, {"mode": "all"})  # e.g. --all over done partitions
        assert st.backfill_progress(st.backfill(bf)) == {"total": 3, "done": 0, "failed": 0, "missing": 3}
        assert st.backfill_outstanding(st.backfill(bf)) == {"daily": keys}
        run = st.start_run("backfill", command="x", options={}, backfill_id=bf)
        st.record_units(run, [rec("daily", "2024-01-01"), rec("daily", "2024-01-02", "failed", error="x")])
        assert st.backfill_progress(st.backfill(bf)) == {"total": 3, "done": 1, "failed": 1, "missing": 1}
        assert st.backfill_outstanding(st.backfill(bf)) == {"daily": ["2024-01-02", "2024-01-03"]}


def test_leases_refuse_a_live_holder_and_take_over_a_dead_one(open_store: Opener) -> None:
    with open_store() as st:
        r1 = st.start_run("backfill", command="a", options={})
        st.acquire_leases(["daily"], r1, backfill_id=7)
        r2 = st.start_run("backfill", command="b", options={})
        with pytest.raises(LeaseConflict, match="asset 'daily' is being written by backfill 7"):
            st.acquire_leases(["other", "daily"], r2)
        # all or nothing: 'other' was not taken either
        assert sql(st, "SELECT count(*) FROM leases WHERE run_id=?", (r2,))[0][0] == 0
        st.finish_run(r1, "success", planned=0, done=0, failed=0, skipped=0)
        st.acquire_leases(["daily"], r2)
        # a holder in this PID namespace whose process is gone (kill -9) does not block anyone
        sql(st, "UPDATE leases SET pid=?, run_id=999 WHERE asset='daily'", (dead_pid(),))
        r3 = st.start_run("backfill", command="c", options={})
        notes: list[str] = []
        st.acquire_leases(["daily"], r3, on_wait=notes.append)
        assert notes and "took over the lease on 'daily' from run 999" in notes[0] and "is gone" in notes[0]


def test_expired_lease_from_another_host_is_taken_over_and_wait_returns(open_store: Opener) -> None:
    """A killed run on another machine (or a container's PID 1): its PID means nothing here, so only the
    expiry frees the lease. The holder is a real process that took the lease and was killed; the test
    then rewrites its host fields to another machine's (the one thing a single test machine cannot do)."""
    with open_store(lease_ttl=1.0) as st:
        holder = _lease_holder(st, "daily", ttl=1.0)
        holder.kill()
        holder.wait()
        sql(st, "UPDATE leases SET host='elsewhere', host_id='elsewhere/boot/pid:[1]', pid=1")
        sql(st, "UPDATE runs SET host='elsewhere', host_id='elsewhere/boot/pid:[1]', pid=1")
        mine = st.start_run("backfill", command="b", options={})
        lease = st.leases()[0]
        if lease["expires_at"] > lease["now"]:
            with pytest.raises(LeaseConflict, match=r"pid 1 on elsewhere, lease expires in \d+ s"):
                st.acquire_leases(["daily"], mine)
        t0 = time.monotonic()
        msgs: list[str] = []
        waited = st.acquire_leases(["daily"], mine, wait=True, poll=0.05, on_wait=msgs.append)
        assert time.monotonic() - t0 < 10
        assert sql(st, "SELECT run_id FROM leases WHERE asset='daily'") == [(mine,)]
        assert any("expired" in m for m in msgs), msgs
        assert waited or any("took over" in m for m in msgs)
        old = [r for r in st.runs() if r["id"] != mine][0]
        assert old["status"] == "crashed"


def test_a_live_runs_lease_is_never_taken(open_store: Opener) -> None:
    """A live holder in another process renews its lease: well past several lease times, still refused."""
    with open_store(lease_ttl=1.0) as st:
        holder = _lease_holder(st, "daily", ttl=1.0)
        try:
            sql(st, "UPDATE leases SET host='elsewhere', host_id='elsewhere/x'")  # no PID shortcut either
            mine = st.start_run("backfill", command="b", options={})
            deadline = time.monotonic() + 3.5
            while time.monotonic() < deadline:
                with pytest.raises(LeaseConflict):
                    st.acquire_leases(["daily"], mine)
                assert st.reap_crashed() == []
                time.sleep(0.3)
        finally:
            holder.kill()
            holder.wait()


def _lease_holder(st: StateStore, asset: str, ttl: float) -> subprocess.Popen:
    """A separate process holding `asset` through the real store (heartbeat included) until killed."""
    b = st.backend
    make = (f"SQLiteBackend({str(b.path.parent)!r})" if isinstance(b, SQLiteBackend)
            else f"PostgresBackend(os.environ['HOLDER_STATE_URL'], {b.schema!r})")
    code = (
        "import os, time\n"
        "from sqlassets.run.state import StateStore\n"
        "from sqlassets.run.state.sqlite import SQLiteBackend\n"
        "from sqlassets.run.state.postgres import PostgresBackend\n"
        f"st = StateStore(backend={make}, lease_ttl={ttl})\n"
        "run = st.start_run('backfill', command='holder', options={})\n"
        f"st.acquire_leases([{asset!r}], run)\n"
        "print('ready', flush=True)\n"
        "time.sleep(600)\n")
    env = {**os.environ, "HOLDER_STATE_URL": getattr(b, "_url", "")}  # a password stays off the command line
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def test_lost_lease_stops_the_run_at_its_next_write(open_store: Opener) -> None:
    with open_store() as st:
        run = st.start_run("backfill", command="a", options={})
        st.acquire_leases(["daily"], run)
        other = open_store()
        try:
            assert [r["asset"] for r in other.unlock(asset="daily")] == ["daily"]
        finally:
            other.close()
        with pytest.raises(LeaseLost, match="lost its lease on 'daily'"):
            st.record_units(run, [rec("daily", "2024-01-01")])
        assert st.materializations("daily") == {}


def test_heartbeat_renews_leases(open_store: Opener) -> None:
    with open_store(lease_ttl=1.0) as st:
        run = st.start_run("backfill", command="a", options={})
        st.acquire_leases(["daily"], run)
        first = st.leases()[0]["expires_at"]
        time.sleep(1.5)
        lease = st.leases()[0]
        assert lease["expires_at"] > first and lease["expires_at"] > lease["now"]
        assert st.run(run)["expires_at"] > lease["now"]
        st.finish_run(run, "success", planned=0, done=0, failed=0, skipped=0)
        assert st.leases() == [] and st.run(run)["expires_at"] is None


def test_reap_crashed_marks_dead_runs(open_store: Opener) -> None:
    with open_store() as st:
        run = st.start_run("backfill", command="a", options={})
        st._stop_heartbeat(run)  # as if it were another process's run
        sql(st, "UPDATE runs SET pid=? WHERE id=?", (dead_pid(), run))
        assert st.reap_crashed() == [run]
        assert st.run(run)["status"] == "crashed"


def test_check_results_round_trip(open_store: Opener) -> None:
    with open_store() as st:
        r = CheckResult(asset="daily", check="not_null(day)", status="fail", severity="critical",
                        partition="2024-01-01", column="day", observed={"nulls": 3}, expected=0, message="3 nulls")
        st.record_check_results(1, [r])
        st.record_check_results(2, [CheckResult(asset="daily", check="not_null(day)", status="pass",
                                                partition="2024-01-01")])
        latest = st.latest_check_results(["daily"])
        assert len(latest) == 1 and latest[0].status == "pass"
        first = st.latest_check_results(run_id=1)[0]
        assert first.observed == {"nulls": 3} and first.blocking and first.column == "day"


def test_bad_json_row_is_a_one_line_error(open_store: Opener) -> None:
    with open_store() as st:
        bf = st.create_backfill("daily", {"daily": ["2024-01-01"]}, {})
        sql(st, "UPDATE backfills SET requested='{\"daily\": [' WHERE id=?", (bf,))
        with pytest.raises(StateError, match=rf"backfills row {bf} has a bad JSON requested"):
            st.backfills()


def test_schema_newer_than_the_code_is_refused_not_rewritten(open_store: Opener) -> None:
    with open_store() as st:
        sql(st, "INSERT INTO schema_migrations (version, description, applied_at) VALUES (99, 'future', 0)")
    for readonly in (False, True):
        with pytest.raises(StateError, match="schema version 99 is newer than this sqlassets"):
            open_store(readonly=readonly)
    with _raw(open_store) as st:
        assert sql(st, "SELECT max(version) FROM schema_migrations")[0][0] == 99


class _raw:
    """Look at a state without the version check (to see that a refused state was left alone)."""

    def __init__(self, open_store: Opener) -> None:
        import sqlassets.run.state.store as mod

        self.mod, self.saved = mod, mod.SCHEMA_VERSION
        mod.SCHEMA_VERSION = 1000
        self.st = open_store(readonly=True)

    def __enter__(self) -> StateStore:
        return self.st

    def __exit__(self, *exc: object) -> None:
        self.st.close()
        self.mod.SCHEMA_VERSION = self.saved


def test_version_1_database_migrates(tmp_path: Path) -> None:
    """A state.db written by the version-1 code (meta table only) gains the heartbeat columns."""
    import sqlite3

    from sqlassets.run.state.schema import MIGRATIONS

    con = sqlite3.connect(tmp_path / "state.db")
    for stmt in MIGRATIONS[0][2]:
        con.execute(SQLiteBackend.dialect.ddl(stmt))
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO leases VALUES ('daily', 1, NULL, 1, 'h', 0)")
    con.commit()
    con.close()
    with StateStore(tmp_path) as st:
        assert st.schema_version == 3
        assert [r[0] for r in sql(st, "SELECT version FROM schema_migrations ORDER BY version")] == [1, 2, 3]
        assert st.leases()[0]["expires_at"] is None  # an old lease: no expiry, only unlock or a dead PID frees it


def version_2_state(monkeypatch: pytest.MonkeyPatch, opener: Callable[[], StateStore]) -> None:
    """A real version-2 state (what sqlassets wrote before state per target), made by the store itself with
    the later migrations held back, holding one done partition and one check result."""
    from sqlassets.run.state import schema, store

    monkeypatch.setattr(store, "MIGRATIONS", schema.MIGRATIONS[:2])
    monkeypatch.setattr(store, "SCHEMA_VERSION", 2)
    with opener() as st:
        assert st.schema_version == 2
        sql(st, "INSERT INTO materializations (asset, partition, status, run_id, materialized_at, attempted_at) "
                "VALUES ('daily', '2024-01-01', 'done', 1, 1.0, 1.0)")
        sql(st, "INSERT INTO check_results (run_id, asset, partition, check_name, status, severity, blocking, "
                "recorded_at) VALUES (1, 'daily', '', 'not_null', 'passed', 'error', 1, 1.0)")
    monkeypatch.undo()


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
def test_version_2_state_goes_to_the_target_that_migrates(engine: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          request: pytest.FixtureRequest) -> None:
    opener = _opener(engine, tmp_path, request)
    version_2_state(monkeypatch, opener)
    if engine == "postgresql":  # a shared state is migrated on purpose (`sqlassets state migrate`)
        with pytest.raises(StateError, match="run `sqlassets state migrate`"):
            opener(target="duckdb:wh/prod")
        with opener(readonly=True, target="duckdb:wh/prod") as st:
            assert st.schema_version == 2
            assert list(st.materializations("daily")) == ["2024-01-01"]  # the older schema still reads
            assert st.migrate() == (2, 3)
    with opener(target="duckdb:wh/prod") as prod:  # SQLite migrates on open
        assert prod.schema_version == 3
        assert list(prod.materializations("daily")) == ["2024-01-01"]
        assert [r.check for r in prod.latest_check_results()] == ["not_null"]
    with opener(target="duckdb:wh/dev") as dev:
        assert dev.materializations("daily") == {} and dev.latest_check_results() == []
        assert dev.all_materializations() == {}


def test_state_is_per_target(open_store: Opener) -> None:
    """Two targets keep their own partition records, backfills, check results and leases."""
    a, b = open_store(target="snowflake:acct/db/prod"), open_store(target="snowflake:acct/db/dev")
    try:
        ra = a.start_run("backfill", command="x", options={})
        a.acquire_leases(["daily"], ra)
        rb = b.start_run("backfill", command="y", options={})
        b.acquire_leases(["daily"], rb)  # another target's relation: no conflict
        a.record_units(ra, [rec("daily", "2024-01-01")])
        bf = a.create_backfill("daily", {"daily": ["2024-01-01", "2024-01-02"]}, {})
        a.record_check_results(ra, [CheckResult(asset="daily", check="not_null", status="passed")])
        assert list(a.materializations("daily")) == ["2024-01-01"] and b.materializations("daily") == {}
        assert [x["id"] for x in a.backfills()] == [bf] and b.backfills() == []
        assert len(a.latest_check_results()) == 1 and b.latest_check_results() == []
        b.record_units(rb, [rec("daily", "2024-01-01", "failed", error="boom")])
        assert a.materializations("daily")["2024-01-01"].done  # dev's failure leaves prod's record alone
        b.forget_asset("daily")
        assert list(a.materializations("daily")) == ["2024-01-01"]
        with open_store(target="snowflake:acct/db/dev") as b2:  # same target, another process: conflict
            with pytest.raises(LeaseConflict):
                b2.acquire_leases(["daily"], b2.start_run("backfill", command="z", options={}))
        with open_store() as whole:  # a store opened without a project sees every target
            assert sorted(whole.all_materializations()["daily"]) == ["2024-01-01"]
            assert {r["target"] for r in whole.table_rows("materializations")} == {"snowflake:acct/db/prod"}
    finally:
        a.close()
        b.close()


def test_readonly_store_on_missing_db_writes_nothing(tmp_path: Path) -> None:
    st = StateStore(tmp_path / "nope", readonly=True)
    assert st.all_materializations() == {} and not (tmp_path / "nope").exists()


def test_readonly_postgres_store_creates_nothing(pg_server: PgServer, pg_schema: str) -> None:
    for kw in ({"readonly": True}, {"create": False}):  # status / runs, backfill list, unlock
        with StateStore(backend=PostgresBackend(pg_server.url, pg_schema), **kw) as st:
            assert st.all_materializations() == {} and st.runs() == [] and st.schema_version == 0
            assert st.reap_crashed() == [] and st.leases() == []
            assert st.backend.table_names(st._s.raw) == set()
