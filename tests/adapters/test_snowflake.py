"""Snowflake end to end on fakesnow's server mode, plus golden tests of what fakesnow cannot run.

The end-to-end tests run the real `sqlassets` CLI on a dbt-snowflake project whose profile points at a
`fakesnow -s` server with host / port / protocol: dbt-snowflake compiles, snowflake-connector-python
talks Snowflake's HTTP protocol, fakesnow executes on DuckDB. fakesnow has no Snowflake Scripting, no
`SWAP WITH` and no schema CLONE, so the adapter's probe sends units statement by statement there; what
real Snowflake is sent instead is pinned by the golden tests at the bottom, which record the exact text
a session hands to the connector (a recording cursor: no Snowflake account can run here).
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from snowflake_support import PYTHON, connect, fakesnow_server, load_events, make_project  # noqa: F401

from sqlassets.errors import ConfigError

DB = "SQLA_E2E"


def cli(root: Path, *args: str, timeout: float = 300) -> Any:
    import subprocess

    return subprocess.run([PYTHON, "-m", "sqlassets", "--project", str(root), *args], capture_output=True,
                          text=True, timeout=timeout)


def rows(port: int, sql: str) -> list[tuple[Any, ...]]:
    conn = connect(port)
    try:
        return [tuple(r) for r in conn.cursor().execute(sql).fetchall()]
    finally:
        conn.close()


def done_count(root: Path) -> int:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return 0
    con = sqlite3.connect(db)
    try:
        return con.execute("select count(*) from materializations where asset='events_daily' "
                           "and status='done'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


RAW_LOOP = ("SELECT event_ts, user_id, amount FROM {db}.raw.events WHERE event_ts >= '{a}' AND event_ts < '{b}' "
            "ORDER BY 1, 2, 3")
TABLE = "SELECT event_ts, user_id, amount FROM {db}.dev.events_daily WHERE event_ts >= '{a}' AND event_ts < '{b}' ORDER BY 1, 2, 3"


@pytest.fixture(scope="module")
def project(fakesnow_port: int, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("sf") / "sfshop", fakesnow_port, DB, threads=4, raw_sql=True)
    assert load_events(fakesnow_port, DB, days=366) == 1098
    return root


def test_backfill_kill_9_resume_rerun_merge_seed_view_table(project: Path, fakesnow_port: int) -> None:
    import subprocess

    port = fakesnow_port
    # 1. A per-day backfill killed with SIGKILL mid-run, then resumed.
    proc = subprocess.Popen([PYTHON, "-m", "sqlassets", "--project", str(project), "backfill",
                             "--partitions", "2024-01-01..2024-02-29", "-j", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while done_count(project) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the backfill finished before it could be killed: " + (proc.stdout.read() or "")
    proc.kill()
    proc.wait()
    killed_at = done_count(project)
    assert 10 <= killed_at < 60
    r = cli(project, "backfill", "resume", "1")
    assert r.returncode == 0, r.stdout + r.stderr
    # 2. The rest of the year in batches of 16 contiguous days (one DELETE+INSERT per batch).
    r = cli(project, "backfill", "--select", "events_daily", "--partitions", "2024-03-01..2024-12-31",
            "--batch-size", "16")
    assert r.returncode == 0, r.stdout + r.stderr
    # 366 days: exactly the rows of a raw loop over the source, nothing lost or doubled by the kill.
    raw = rows(port, RAW_LOOP.format(db=DB, a="2024-01-01", b="2025-01-01"))
    assert len(raw) == 1098
    assert rows(port, TABLE.format(db=DB, a="2000-01-01", b="2100-01-01")) == raw
    # The raw SQL asset (Snowflake dialect) matches the same aggregate run directly, day by day.
    assert rows(port, f"SELECT day, big, load FROM {DB}.dev.daily_users ORDER BY 1") == rows(
        port, f"SELECT to_date(event_ts), count_if(amount > 50), iff(count(*) > 2, 'busy', 'quiet') FROM "
              f"{DB}.raw.events WHERE event_ts >= '2024-01-01' AND event_ts < '2024-03-01' GROUP BY 1 ORDER BY 1")
    # 3. A re-run is a no-op: nothing planned, nothing sent.
    r = cli(project, "backfill", "--select", "events_daily", "--partitions", "2024-01-01..2024-12-31")
    assert r.returncode == 0 and "nothing to do" in r.stdout, r.stdout + r.stderr
    # 4. Seed (stage + COPY INTO), view and table built on the way.
    assert rows(port, f"SELECT country_id, country_name FROM {DB}.dev.countries ORDER BY 1") == [
        (0, "Norway"), (1, "Chile, Republic of"), (2, None)]
    assert rows(port, f"SELECT COUNT(*) FROM {DB}.dev.user_countries")[0][0] == 11
    summary = rows(port, f"SELECT SUM(n) FROM {DB}.dev.summary")[0][0]
    assert summary is not None and summary >= 60 * 3
    # 5. Merge on unique_key: a changed source row updates its key, a new key is inserted.
    conn = connect(port)
    conn.cursor().execute(f"INSERT INTO {DB}.raw.events VALUES ('2025-01-05 10:00:00', 3, 100.00), "
                          "('2025-01-05 11:00:00', 42, 7.50)")
    conn.close()
    r = cli(project, "materialize", "--select", "users", "--all")
    assert r.returncode == 0, r.stdout + r.stderr
    expected = rows(port, f"SELECT user_id, SUM(amount), COUNT(*) FROM {DB}.raw.events GROUP BY 1 ORDER BY 1")
    assert rows(port, f"SELECT user_id, total, n FROM {DB}.dev.users ORDER BY 1") == expected
    assert (42, 7.5, 1) in [(a, float(b), c) for a, b, c in expected]
    # 6. Schema drift: a new column is added to the existing table, old rows keep theirs.
    (project / "models" / "users.sql").write_text(
        "{{ config(materialized='incremental', unique_key='user_id') }}\n"
        "select user_id, sum(amount) as total, count(*) as n, max(amount) as biggest\n"
        "from {{ source('raw', 'events') }}\ngroup by user_id\n")
    r = cli(project, "materialize", "--select", "users", "--all")
    assert r.returncode == 0, r.stdout + r.stderr
    cols = [c[0] for c in rows(port, f"SELECT column_name FROM {DB}.INFORMATION_SCHEMA.COLUMNS WHERE "
                                     "table_schema = 'DEV' AND table_name = 'USERS' ORDER BY ordinal_position")]
    assert cols == ["USER_ID", "TOTAL", "N", "BIGGEST"]
    assert rows(port, f"SELECT biggest FROM {DB}.dev.users WHERE user_id = 3")[0][0] == 100
    # 7. --full-refresh rebuilds it from scratch, same rows.
    r = cli(project, "materialize", "--select", "users", "--full-refresh")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(port, f"SELECT user_id, total, n FROM {DB}.dev.users ORDER BY 1") == expected
    # 8. The table model rebuilt (staging table + swap) with the new partitions in it.
    r = cli(project, "materialize", "--select", "summary", "--all")
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(port, f"SELECT SUM(n) FROM {DB}.dev.summary")[0][0] == 1098
    left = rows(port, f"SELECT table_name FROM {DB}.INFORMATION_SCHEMA.TABLES WHERE table_name LIKE '%SQLASSETS%'")
    assert left == [], f"staging tables left behind: {left}"


def test_dbt_tests_run_on_snowflake_on_demand_and_after_materialize(project: Path, fakesnow_port: int) -> None:
    r = cli(project, "check", "--select", "users")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 checks, 2 passed" in r.stdout
    # A duplicate key written behind the tool's back: the unique test fails with the real count.
    conn = connect(fakesnow_port)
    conn.cursor().execute(f"INSERT INTO {DB}.dev.users (user_id, total, n) VALUES (3, 1, 1)")
    conn.close()
    r = cli(project, "check", "--select", "users")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "unique_users_user_id" in r.stdout and "1 failing row" in r.stdout
    # The post-materialize hook runs them on the run's own Snowflake session: the merge updates both
    # rows of key 3, so the blocking test fails the unit and says why.
    r = cli(project, "materialize", "--select", "users", "--all")
    assert r.returncode == 1 and "unique_users_user_id" in r.stdout + r.stderr, r.stdout + r.stderr
    conn = connect(fakesnow_port)
    conn.cursor().execute(f"DELETE FROM {DB}.dev.users WHERE user_id = 3")
    conn.close()
    r = cli(project, "materialize", "--select", "users", "--all")
    assert r.returncode == 0, r.stdout + r.stderr


def test_dry_run_prints_every_statement_and_sends_no_write(project: Path, fakesnow_port: int) -> None:
    before = rows(fakesnow_port, f"SELECT COUNT(*) FROM {DB}.dev.events_daily")
    r = cli(project, "backfill", "--select", "events_daily countries", "--partitions", "2024-02-01..2024-02-02",
            "--all", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    assert out.count(f"DELETE FROM {DB}.dev.events_daily WHERE event_ts >=") == 2
    assert out.count(f"INSERT INTO {DB}.dev.events_daily") == 2
    assert '"partition":"2024-02-02"' in out  # the query tag each unit carries
    assert "PUT 'file://" in out and "COPY INTO" in out
    assert "statement(s) in" in out
    assert rows(fakesnow_port, f"SELECT COUNT(*) FROM {DB}.dev.events_daily") == before
    # No state was written by the dry run either: no new run, no backfill.
    con = sqlite3.connect(project / ".sqlassets" / "state.db")
    try:
        assert con.execute("select count(*) from backfills").fetchone()[0] == 2
    finally:
        con.close()


def test_bad_password_is_one_line_without_the_secret(tmp_path: Path, fakesnow_port: int) -> None:
    from sqlassets.adapters.snowflake import SnowflakeAdapter
    from sqlassets.errors import UserError
    from sqlassets.project import Warehouse

    opts = {"type": "snowflake", "account": "local", "user": "u", "password": "s3cret-pass", "database": "D",
            "schema": "S", "host": "127.0.0.1", "port": 1, "protocol": "http", "connect_timeout": 2}
    a = SnowflakeAdapter(Warehouse(type="snowflake", database="D", schema="S", options=opts))
    with pytest.raises(UserError) as e:
        a.open()
    assert "cannot connect to Snowflake 127.0.0.1" in str(e.value) and "s3cret-pass" not in str(e.value)
    assert "\n" not in str(e.value)


def test_ci_gate_builds_in_a_clone_and_never_touches_production(project: Path, fakesnow_port: int,
                                                                tmp_path: Path) -> None:
    import shutil

    port = fakesnow_port
    base = tmp_path / "base"
    base.mkdir()
    r = cli(project, "list")  # the manifest of what production runs
    assert r.returncode == 0, r.stdout + r.stderr
    shutil.copy(project / "target" / "manifest.json", base / "manifest.json")
    prod_before = rows(port, f"SELECT user_id, total, n FROM {DB}.dev.users ORDER BY 1")
    (project / "models" / "users.sql").write_text(
        "{{ config(materialized='incremental', unique_key='user_id') }}\n"
        "select user_id, sum(amount) as total, count(*) as n, max(amount) as biggest, min(amount) as smallest\n"
        "from {{ source('raw', 'events') }}\ngroup by user_id\n")
    try:
        r = cli(project, "ci", "--base", str(base), "--ci-dir", str(tmp_path / "ci"), "--keep")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "CI gate: PASS" in r.stdout and "users (modified)" in r.stdout
        ci_cols = [c[0] for c in rows(port, f"SELECT column_name FROM {DB}.INFORMATION_SCHEMA.COLUMNS WHERE "
                                            "table_schema = 'DEV_SQLASSETS_CI' AND table_name = 'USERS'")]
        assert "SMALLEST" in ci_cols
        prod_cols = [c[0] for c in rows(port, f"SELECT column_name FROM {DB}.INFORMATION_SCHEMA.COLUMNS WHERE "
                                              "table_schema = 'DEV' AND table_name = 'USERS'")]
        assert "SMALLEST" not in prod_cols
        assert rows(port, f"SELECT user_id, total, n FROM {DB}.dev.users ORDER BY 1") == prod_before
        # The view downstream was rebuilt in the clone, reading the clone.
        assert rows(port, f"SELECT COUNT(*) FROM {DB}.dev_sqlassets_ci.user_countries") == \
            rows(port, f"SELECT COUNT(*) FROM {DB}.dev.user_countries")
        # A column the view downstream reads, removed (users rebuilt as a table): the view fails to
        # build in the clone, so the gate fails; production is untouched; without --keep the clone is
        # dropped afterwards.
        (project / "models" / "users.sql").write_text(
            "{{ config(materialized='table') }}\n"
            "select user_id, count(*) as n from {{ source('raw', 'events') }} group by user_id\n")
        r = cli(project, "ci", "--base", str(base), "--ci-dir", str(tmp_path / "ci"))
        assert r.returncode == 1, r.stdout + r.stderr
        assert "CI gate: FAIL" in r.stdout and "failed user_countries" in r.stdout, r.stdout
        assert rows(port, f"SELECT user_id, total, n FROM {DB}.dev.users ORDER BY 1") == prod_before
        assert rows(port, f"SELECT COUNT(*) FROM {DB}.INFORMATION_SCHEMA.SCHEMATA "
                          "WHERE schema_name = 'DEV_SQLASSETS_CI'")[0][0] == 0
    finally:
        (project / "models" / "users.sql").write_text(
            "{{ config(materialized='incremental', unique_key='user_id') }}\n"
            "select user_id, sum(amount) as total, count(*) as n, max(amount) as biggest\n"
            "from {{ source('raw', 'events') }}\ngroup by user_id\n")


# -- connection from the dbt profile -------------------------------------------------------------------

def base_opts(**kw: Any) -> dict[str, Any]:
    return {"type": "snowflake", "account": "xy12345.eu-west-1", "user": "DBT", "database": "ANALYTICS",
            "schema": "DEV", "warehouse": "TRANSFORMING", "role": "TRANSFORMER", "threads": 8, **kw}


def test_connect_args_password_role_warehouse_host() -> None:
    from sqlassets.adapters.snowflake import SnowflakeAdapter

    args = SnowflakeAdapter.connect_args(base_opts(password="pw", host="localhost", port=8080, protocol="http",
                                                   query_tag="nightly"))
    assert args["account"] == "xy12345.eu-west-1" and args["user"] == "DBT" and args["password"] == "pw"
    assert (args["warehouse"], args["role"], args["database"], args["schema"]) == (
        "TRANSFORMING", "TRANSFORMER", "ANALYTICS", "DEV")
    assert (args["host"], args["port"], args["protocol"]) == ("localhost", 8080, "http")
    assert args["autocommit"] is True and args["session_parameters"] == {"QUERY_TAG": "nightly"}


def test_connect_args_key_pair_from_path_and_inline(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from sqlassets.adapters.snowflake import SnowflakeAdapter

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.BestAvailableEncryption(b"pp"))
    path = tmp_path / "rsa_key.p8"
    path.write_bytes(pem)
    args = SnowflakeAdapter.connect_args(base_opts(private_key_path=str(path), private_key_passphrase="pp"))
    assert args["private_key"] == der and args["authenticator"] == "SNOWFLAKE_JWT" and "password" not in args
    inline = SnowflakeAdapter.connect_args(base_opts(private_key=base64.b64encode(der).decode()))
    assert inline["private_key"] == der
    with pytest.raises(ConfigError, match="private key cannot be loaded") as e:
        SnowflakeAdapter.connect_args(base_opts(private_key_path=str(path), private_key_passphrase="wrong"))
    assert "wrong" not in str(e.value)


def test_connect_args_authenticators_and_missing_fields() -> None:
    from sqlassets.adapters.snowflake import SnowflakeAdapter

    assert SnowflakeAdapter.connect_args(base_opts(authenticator="externalbrowser"))["authenticator"] == \
        "externalbrowser"
    oauth = SnowflakeAdapter.connect_args(base_opts(authenticator="oauth", token="tok"))
    assert oauth["token"] == "tok" and oauth["authenticator"] == "oauth"
    with pytest.raises(ConfigError, match="needs a 'token'"):
        SnowflakeAdapter.connect_args(base_opts(authenticator="oauth"))
    with pytest.raises(ConfigError, match="missing account"):
        SnowflakeAdapter.connect_args({"type": "snowflake", "user": "u", "database": "d", "schema": "s"})


# -- golden: exactly what real Snowflake is sent ------------------------------------------------------

class RecordingCursor:
    """Stands in for the connector's cursor (no Snowflake account here): records text and parameters."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log
        self.rowcount = 5
        self.sfqid = None

    def execute(self, sql: str, params: Any = None, **kwargs: Any) -> RecordingCursor:
        self.log.append((sql, kwargs.get("_statement_params")))
        return self

    def fetchone(self) -> tuple[int]:
        return (5,)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return []


class RecordingConnection:
    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def cursor(self) -> RecordingCursor:
        return RecordingCursor(self.log)


def real_snowflake_adapter() -> Any:
    from sqlassets.adapters.snowflake import SnowflakeAdapter, SnowflakeSession
    from sqlassets.project import Warehouse

    a = SnowflakeAdapter(Warehouse(type="snowflake", database="ANALYTICS", schema="DEV", options=base_opts()))
    a.scripting = True  # what the probe finds on every Snowflake account
    conn = RecordingConnection()
    return a, SnowflakeSession(conn, a), conn.log


def test_golden_partition_unit_is_one_scripting_request_with_query_tag() -> None:
    _a, s, log = real_snowflake_adapter()
    s.set_query_tag('{"app":"sqlassets","asset":"fct","partition":"2024-01-02"}')
    rows_written = s.run_atomic(["DELETE FROM ANALYTICS.DEV.FCT WHERE d = '2024-01-02'",
                                 "INSERT INTO ANALYTICS.DEV.FCT (D) SELECT d FROM src"])
    assert rows_written == 5 and s.requests == 1 and s.statements == 2
    assert log == [(
        "EXECUTE IMMEDIATE $$\n"
        "BEGIN\n"
        "  BEGIN TRANSACTION;\n"
        "  DELETE FROM ANALYTICS.DEV.FCT WHERE d = '2024-01-02';\n"
        "  INSERT INTO ANALYTICS.DEV.FCT (D) SELECT d FROM src;\n"
        "  LET n INTEGER := SQLROWCOUNT;\n"
        "  COMMIT;\n"
        "  RETURN n;\n"
        "EXCEPTION\n"
        "  WHEN OTHER THEN\n"
        "    ROLLBACK;\n"
        "    RAISE;\n"
        "END;\n"
        "$$",
        {"QUERY_TAG": '{"app":"sqlassets","asset":"fct","partition":"2024-01-02"}'})]
    log.clear()
    s.run_atomic(["MERGE INTO ANALYTICS.DEV.U AS _t USING (SELECT 1 AS id) AS _s ON _t.id = _s.id "
                  "WHEN NOT MATCHED THEN INSERT (id) VALUES (_s.id)"])
    assert [sql for sql, _ in log] == ["MERGE INTO ANALYTICS.DEV.U AS _t USING (SELECT 1 AS id) AS _s ON "
                                       "_t.id = _s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (_s.id)"]


def test_golden_table_swap_uses_swap_with_not_drop_and_rename() -> None:
    from sqlassets.model import Relation

    a, s, log = real_snowflake_adapter()
    rel = Relation("ANALYTICS", "DEV", "summary")
    a.swap(s, a.table(rel, "summary__sqlassets_new"), a.table(rel), "table")
    assert [sql for sql, _ in log] == [
        "ALTER TABLE ANALYTICS.DEV.summary SWAP WITH ANALYTICS.DEV.summary__sqlassets_new",
        "DROP TABLE IF EXISTS ANALYTICS.DEV.summary__sqlassets_new",
    ]
    log.clear()
    a.swap(s, a.table(rel, "summary__sqlassets_new"), a.table(rel), "view")
    assert [sql for sql, _ in log] == [
        "DROP VIEW IF EXISTS ANALYTICS.DEV.summary",
        "ALTER TABLE ANALYTICS.DEV.summary__sqlassets_new RENAME TO ANALYTICS.DEV.summary",
    ]
    log.clear()
    a.clone_schema(s, ("ANALYTICS", "DEV"), ("ANALYTICS", "DEV_CI"))
    assert [sql for sql, _ in log] == ["CREATE OR REPLACE SCHEMA ANALYTICS.DEV_CI CLONE ANALYTICS.DEV"]


def test_query_tag_is_json_naming_asset_and_partition() -> None:
    a, _s, _log = real_snowflake_adapter()
    assert json.loads(a.query_tag("fct", ["2024-01-02"])) == {"app": "sqlassets", "asset": "fct",
                                                              "partition": "2024-01-02"}


def test_transient_errors_are_lock_waits_network_and_throttling_only() -> None:
    pytest.importorskip("snowflake.connector")
    from snowflake.connector import errors

    a, _s, _log = real_snowflake_adapter()
    lock = errors.ProgrammingError(msg="Statement 'x' has been aborted because the number of waiters for "
                                       "this lock exceeds the 20 statements limit.", errno=625)
    assert a.is_transient(lock)
    assert a.is_transient(errors.OperationalError(msg="HTTP 503: Service Unavailable", errno=250003))
    assert a.is_transient(errors.InterfaceError(msg="Failed to execute request: connection reset", errno=250001))
    assert not a.is_transient(errors.ProgrammingError(msg="Object 'T' does not exist or not authorized.",
                                                      errno=2003))
    assert not a.is_transient(errors.ProgrammingError(msg="SQL compilation error: timeout_x invalid identifier",
                                                      errno=904))
    assert not a.is_transient(ValueError("lock"))
