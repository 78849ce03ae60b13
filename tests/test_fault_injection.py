"""Fault injection, end to end with real processes, real DuckDB files and real state databases.

Faults land at named points in the code (`sqlassets.run.faults`, driven by SQLASSETS_FAULT) instead of
after a sleep, so a kill or a signal hits the same place on an idle laptop and on a loaded CI runner:
- kill -9 at 20 seeded points across backfill, batched backfill and materialize, each followed by a
  resume; after every kill no partition is half-written, and nothing is recorded done that is not in
  the table; the end state equals a clean run's, row for row;
- concurrent writers: a run holding the assets makes others refuse (and write nothing) or wait, while
  readers keep working;
- Ctrl-C and SIGTERM in every phase (planning, compiling, before / inside / after a unit's transaction,
  state writes, dbt compile, checks): exit 130 / 143, one clean message, the run recorded
  `interrupted`, and resume finishes the job.
"""

from __future__ import annotations

import random
import sqlite3
import time
from pathlib import Path

import duckdb
import pytest
from conftest import write_project
from run_support import checksum, make_project, popen_cli, run_cli

SEED = 8_2024
RANGE = "2024-01-01..2024-01-31"
DAYS = 31
# Points a unit passes through, in order; `planned` and `compile` are reached once per process.
UNIT_POINTS = ("unit", "commit", "written", "flush", "flushed")
ONCE_POINTS = ("planned", "compile")


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """A clean run's tables: per-day / per-month checksums of daily and monthly, and summary's."""
    root = make_project(tmp_path_factory.mktemp("ref") / "ref")
    r = run_cli(root, "backfill", "--partitions", RANGE)
    assert r.returncode == 0, r.stderr
    return _snapshot(root)


def _snapshot(root: Path) -> dict[str, dict[str, str]]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        out: dict[str, dict[str, str]] = {}
        for table, key in (("daily", "cast(day as varchar)"), ("monthly", "strftime(month, '%Y-%m')")):
            rows = con.execute(f"select {key}, * from {table}").fetchall() if table in tables else []
            groups: dict[str, list[str]] = {}
            for row in rows:
                groups.setdefault(row[0], []).append(repr(row[1:]))
            out[table] = {k: "|".join(sorted(v)) for k, v in groups.items()}
    finally:
        con.close()
    out["summary"] = {"": checksum(root / "warehouse.duckdb", "summary")} if "summary" in tables else {}
    return out


def _done(root: Path) -> dict[str, set[str]]:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return {}
    con = sqlite3.connect(db)
    try:
        out: dict[str, set[str]] = {}
        for asset, part in con.execute("select asset, partition from materializations where status='done'"):
            out.setdefault(asset, set()).add(part)
        return out
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


def _runs(root: Path) -> list[tuple[int, str]]:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute("select id, status from runs order by id").fetchall()
    except sqlite3.OperationalError:  # created, schema not yet written
        return []
    finally:
        con.close()


def _leases(root: Path) -> int:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("select count(*) from leases").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def _open_backfill(root: Path) -> int | None:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return None
    con = sqlite3.connect(db)
    try:
        row = con.execute("select id from backfills where status != 'success' order by id desc").fetchone()
        return row[0] if row else None
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def assert_consistent(root: Path, ref: dict[str, dict[str, str]]) -> None:
    """No half-written partition (every day / month in a table is whole), and done means written."""
    snap = _snapshot(root)
    done = _done(root)
    for table in ("daily", "monthly"):
        for key, rows in snap[table].items():
            assert rows == ref[table][key], f"{table} [{key}] is half-written or wrong"
        for key in done.get(table, ()):
            assert key in snap[table], f"{table} [{key}] recorded done but not in the table"


def _no_traceback(r) -> None:
    assert "Traceback" not in r.stderr, r.stderr


# -- kill -9 ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario,kills", [("backfill", 7), ("batched", 7), ("materialize", 6)])
def test_kill_9_at_seeded_points_then_resume(scenario: str, kills: int, tmp_path: Path, reference) -> None:
    """20 kills in all (7 + 7 + 6), each at a seeded (point, occurrence); then the run is resumed."""
    rng = random.Random(f"{SEED}-{scenario}")
    root = make_project(tmp_path / scenario)
    extra = ["--batch-size", "4"] if scenario == "batched" else []
    command = "materialize" if scenario == "materialize" else "backfill"
    landed: list[str] = []
    attempts = 0
    while len(landed) < kills:
        attempts += 1
        assert attempts <= kills * 3, f"only {len(landed)} of {kills} kills landed: {landed}"
        point = rng.choice(UNIT_POINTS + ONCE_POINTS)
        n = 1 if point in ONCE_POINTS else rng.randint(1, 3)
        bf = _open_backfill(root) if command == "backfill" else None
        if bf is not None:
            args = ["backfill", "resume", str(bf)]
        else:
            # Nothing left to do: rebuild the range (--all), so there is something to kill again.
            mode = ["--all"] if _done(root).get("daily") else []
            args = [command, "--partitions", RANGE, *extra, *mode]
        r = run_cli(root, *args, env={"SQLASSETS_FAULT": f"{point}:{n}"})
        if r.returncode == -9:
            landed.append(f"{point}:{n}")
        else:
            assert r.returncode == 0, (point, n, r.stderr)
        assert_consistent(root, reference)
    bf = _open_backfill(root) if command == "backfill" else None
    final = ["backfill", "resume", str(bf)] if bf is not None else [command, "--partitions", RANGE, *extra]
    r = run_cli(root, *final)
    assert r.returncode == 0, r.stderr
    r = run_cli(root, "materialize", "--partitions", RANGE)  # idempotent: nothing left
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout + r.stderr
    assert _snapshot(root) == reference
    assert len(_done(root)["daily"]) == DAYS
    assert any(status == "crashed" for _, status in _runs(root))


# -- concurrent writers -----------------------------------------------------------------------------------


def test_concurrent_writers_refuse_wait_and_readers_read(tmp_path: Path, reference) -> None:
    root = make_project(tmp_path / "p")
    # The first writer pauses (holding its lease and the warehouse) right after its 3rd unit commits.
    first = popen_cli(root, "backfill", "--partitions", RANGE, env={"SQLASSETS_FAULT": "written:3:SLEEP:4"})
    try:
        deadline = time.monotonic() + 120
        while not _leases(root) and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = run_cli(root, "materialize", "--partitions", RANGE)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "being written by backfill 1" in refused.stderr and "--wait" in refused.stderr
        assert [s for _, s in _runs(root)] == ["running"]  # the refusal left no trace
        status = run_cli(root, "status")
        assert status.returncode == 0 and "daily" in status.stdout, status.stderr
        waited = run_cli(root, "materialize", "--partitions", RANGE, "--wait")
        assert waited.returncode == 0, waited.stderr
    finally:
        out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert _snapshot(root) == reference
    # (the waiting run records a run of its own unless the first finished before it even planned)
    assert {s for _, s in _runs(root)} == {"success"}, (waited.stdout, _runs(root))


# -- interrupts in every phase ---------------------------------------------------------------------------


PHASES = [
    ("planned", 1, "INT", 1), ("compile", 1, "TERM", 1), ("unit", 2, "INT", 1), ("commit", 2, "TERM", 1),
    ("written", 3, "INT", 1), ("flush", 1, "TERM", 1), ("flushed", 1, "INT", 1),
    ("unit", 3, "TERM", 2), ("written", 4, "INT", 2),
]


@pytest.mark.parametrize("point,n,sig,jobs", PHASES, ids=[f"{p}-{s}-j{j}" for p, _, s, j in PHASES])
def test_interrupt_in_every_phase(point: str, n: int, sig: str, jobs: int, tmp_path: Path, reference) -> None:
    root = make_project(tmp_path / "p")
    r = run_cli(root, "backfill", "--partitions", RANGE, "-j", str(jobs),
                env={"SQLASSETS_FAULT": f"{point}:{n}:{sig}"})
    assert r.returncode == (130 if sig == "INT" else 143), (r.returncode, r.stderr)
    _no_traceback(r)
    assert_consistent(root, reference)
    runs = _runs(root)
    if point == "planned":
        assert runs == [] and not (root / ".sqlassets" / "state.db").exists()  # nothing written yet
        args = ["backfill", "--partitions", RANGE]
    else:
        assert runs == [(1, "interrupted")], runs
        assert "backfill resume 1" in r.stderr
        args = ["backfill", "resume", "1"]
    r = run_cli(root, *args)
    assert r.returncode == 0, r.stderr
    assert _snapshot(root) == reference


DBT_PROJECT = {
    "dbt_project.yml": "name: tiny\nversion: '1.0'\nprofile: tiny\n",
    "profiles.yml": "tiny:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n      - name: events\n",
    "models/by_day.sql": (
        "{{ config(materialized='incremental', meta={'sqlassets': {'partitions': {'type': 'daily', "
        "'column': 'day', 'start': '2024-01-01', 'end': '2024-01-04'}}}) }}\n"
        "select cast(event_ts as date) as day, count(*) as n from {{ source('raw', 'events') }}\n"
        "where event_ts >= '{{ var(\"window_start\") }}' and event_ts < '{{ var(\"window_end\") }}'\ngroup by 1\n"),
}


def test_interrupt_inside_dbt_compile_then_resume(tmp_path: Path) -> None:
    root = write_project(tmp_path / "tiny", DBT_PROJECT, "create schema raw; create table raw.events as select "
                         "timestamp '2024-01-01' + interval (i * 7) minute as event_ts from range(600) t(i)")
    assert run_cli(root, "list").returncode == 0  # parsed; the compile below is a cold one
    # The signal comes 0.4 s into the compile phase: inside dbt (its import alone takes longer).
    r = run_cli(root, "backfill", "--partitions", "2024-01-01..2024-01-03",
                env={"SQLASSETS_FAULT": "compile:1:INT:0.4"})
    assert r.returncode == 130, r.stdout + r.stderr
    _no_traceback(r)
    assert "dbt compile failed" not in r.stderr
    assert _runs(root) == [(1, "interrupted")]
    r = run_cli(root, "backfill", "resume", "1")
    assert r.returncode == 0, r.stderr
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*), sum(n) from by_day").fetchone() == (3, 600)
    finally:
        con.close()


GX_SUITE = """{"name": "daily", "expectations": [
  {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"},
   "meta": {"severity": "critical"}}]}
"""


@pytest.mark.parametrize("sig,jobs", [("INT", 1), ("TERM", 2)])
def test_interrupt_during_a_check_is_no_verdict(sig: str, jobs: int, tmp_path: Path) -> None:
    """Ctrl-C / SIGTERM as a unit's checks start: no failed check and no failed unit recorded, the unit not
    done, and resume writes and checks it again. With -j 2 the checks run on a worker thread and carry
    on against interrupted statements (which error): their outcome must be dropped, not recorded."""
    root = make_project(tmp_path / "p", monthly=False, summary=False, days=3, end="2024-01-04")
    (root / "checks").mkdir()
    (root / "checks" / "daily.json").write_text(GX_SUITE)
    r = run_cli(root, "backfill", "--partitions", "2024-01-01..2024-01-03", "-j", str(jobs),
                env={"SQLASSETS_FAULT": f"check:2:{sig}"})
    assert r.returncode == (130 if sig == "INT" else 143), r.stdout + r.stderr
    _no_traceback(r)
    assert _runs(root) == [(1, "interrupted")]
    con = sqlite3.connect(root / ".sqlassets" / "state.db")
    try:
        assert con.execute("select count(*) from check_results where status != 'pass'").fetchone()[0] == 0
        assert con.execute("select count(*) from steps where status = 'failed'").fetchone()[0] == 0
    finally:
        con.close()
    assert len(_done(root).get("daily", ())) < 3
    r = run_cli(root, "backfill", "resume", "1")
    assert r.returncode == 0, r.stderr
    assert _done(root)["daily"] == {"2024-01-01", "2024-01-02", "2024-01-03"}
