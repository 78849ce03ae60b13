"""A fakesnow server (real `fakesnow -s`, Snowflake's HTTP protocol on loopback) and a dbt project for it.

The project is a normal dbt-snowflake project whose profile points at the server with host / port /
protocol, as a user would point it at a local fake: a microbatch model over a raw source, a merge
model, a seed, a table and a view.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

PYTHON = sys.executable


def have_fakesnow() -> bool:
    try:
        import fakesnow.server  # noqa: F401
        import snowflake.connector  # noqa: F401
    except ImportError:
        return False
    return True


def require_fakesnow() -> None:
    """Skip locally when fakesnow[server] is missing; under CI=true that is a failure."""
    if not have_fakesnow():
        if os.environ.get("CI") == "true":
            pytest.fail("fakesnow[server] / snowflake-connector-python are not installed (make install)")
        pytest.skip("fakesnow[server] not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_fakesnow(log: Path, port: int | None = None) -> tuple[subprocess.Popen, int]:
    """`fakesnow -s -p PORT` on loopback; returns once it accepts connections."""
    port = port or free_port()
    out = open(log, "wb")  # noqa: SIM115 - the server's log lives as long as the server
    proc = subprocess.Popen([PYTHON, "-m", "fakesnow", "-s", "-p", str(port), "--host", "127.0.0.1"],
                            stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"fakesnow exited: {log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("fakesnow did not start in 60 s")


def connect(port: int, database: str | None = None, schema: str | None = None):
    import snowflake.connector

    return snowflake.connector.connect(account="local", user="ci", password="not-a-secret-pw", host="127.0.0.1",
                                       port=port, protocol="http", database=database, schema=schema,
                                       autocommit=True)


def profile(port: int, database: str, schema: str = "dev", threads: int = 4, password: str = "not-a-secret-pw") -> str:
    return f"""sfshop:
  target: snowflake
  outputs:
    snowflake:
      type: snowflake
      account: local
      user: ci
      password: "{password}"
      role: transformer
      warehouse: compute_wh
      database: {database}
      schema: {schema}
      host: 127.0.0.1
      port: {port}
      protocol: http
      threads: {threads}
"""


MICROBATCH = """{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='event_ts',
          begin='2024-01-01', batch_size='day', lookback=0) }}
select event_ts, user_id, amount, cast(event_ts as date) as event_date
from {{ source('raw', 'events') }}
"""
USERS = """{{ config(materialized='incremental', unique_key='user_id') }}
select user_id, sum(amount) as total, count(*) as n
from {{ source('raw', 'events') }}
group by user_id
"""
SUMMARY = """{{ config(materialized='table') }}
select event_date, count(*) as n, sum(amount) as amount from {{ ref('events_daily') }} group by event_date
"""
VIEW = """{{ config(materialized='view') }}
select u.user_id, u.total, c.country_name
from {{ ref('users') }} u left join {{ ref('countries') }} c on c.country_id = u.user_id % 3
"""
SOURCES = """version: 2
sources:
  - name: raw
    schema: raw
    tables:
      - name: events
        config:
          event_time: event_ts
models:
  - name: users
    columns:
      - name: user_id
        data_tests: [not_null, unique]
"""
SEED = 'country_id,country_name\n0,"Norway"\n1,"Chile, Republic of"\n2,\n'


RAW_SQL = """-- materialized: incremental
-- partitioned: daily
-- partition_column: day
-- partition_start: 2024-01-01
-- partition_end: 2025-01-01
-- description: a raw SQL asset in Snowflake's dialect (IFF, COUNT_IF, TO_DATE)
select to_date(event_ts) as day, count_if(amount > 50) as big, iff(count(*) > 2, 'busy', 'quiet') as load
from raw.events
where event_ts >= :window_start and event_ts < :window_end
group by to_date(event_ts)
"""


def make_project(root: Path, port: int, database: str, *, threads: int = 4, raw_sql: bool = False) -> Path:
    (root / "models").mkdir(parents=True)
    if raw_sql:
        (root / "sql").mkdir()
        (root / "sql" / "daily_users.sql").write_text(RAW_SQL)
    (root / "seeds").mkdir()
    (root / "dbt_project.yml").write_text(
        "name: sfshop\nversion: '1.0'\nprofile: sfshop\nconfig-version: 2\n"
        "flags:\n  require_batched_execution_for_custom_microbatch_strategy: false\n")
    (root / "profiles.yml").write_text(profile(port, database, threads=threads))
    (root / "models" / "events_daily.sql").write_text(MICROBATCH)
    (root / "models" / "users.sql").write_text(USERS)
    (root / "models" / "summary.sql").write_text(SUMMARY)
    (root / "models" / "user_countries.sql").write_text(VIEW)
    (root / "models" / "sources.yml").write_text(SOURCES)
    (root / "seeds" / "countries.csv").write_text(SEED)
    return root


def load_events(port: int, database: str, *, start: str = "2024-01-01", days: int = 366, per_day: int = 3) -> int:
    """raw.events: `per_day` deterministic rows per day (plus one row outside the range); returns rows."""
    conn = connect(port)
    cur = conn.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {database}")
    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {database}.raw")
    cur.execute(f"CREATE OR REPLACE TABLE {database}.raw.events (event_ts TIMESTAMP_NTZ, user_id INTEGER, "
                "amount NUMBER(12,2))")
    day0 = dt.datetime.fromisoformat(start)
    values = []
    for d in range(days):
        for i in range(per_day):
            ts = day0 + dt.timedelta(days=d, hours=(i * 7) % 24, minutes=i)
            values.append(f"('{ts:%Y-%m-%d %H:%M:%S}', {(d * 7 + i) % 11}, {((d * 13 + i * 5) % 997) / 10:.2f})")
    values.append("('2023-12-31 23:59:59', 1, 1.00)")
    for i in range(0, len(values), 2000):
        cur.execute(f"INSERT INTO {database}.raw.events VALUES " + ", ".join(values[i:i + 2000]))
    conn.close()
    return len(values) - 1


@pytest.fixture(scope="session", name="fakesnow_port")
def fakesnow_server(tmp_path_factory: pytest.TempPathFactory):
    """One fakesnow server per test session (import this fixture into the test module)."""
    require_fakesnow()
    log = tmp_path_factory.mktemp("fakesnow") / "server.log"
    proc, port = start_fakesnow(log)
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- a latency-injecting, request-counting proxy in front of fakesnow ---------------------------------

_BLOCK = re.compile(r"^\s*EXECUTE\s+IMMEDIATE\s+\$\$\s*BEGIN\s+BEGIN\s+TRANSACTION;(.*?)\s*LET\s+n\s+INTEGER\s*:=\s*"
                    r"SQLROWCOUNT;\s*COMMIT;\s*RETURN\s+n;\s*EXCEPTION.*\$\$\s*$", re.S | re.I)


class SnowflakeProxy:
    """Forwards Snowflake's HTTP protocol to a fakesnow server, sleeping `latency` seconds per request
    (a cloud round trip) and counting query requests.

    `scripting=True` also runs the one kind of Snowflake Scripting block sqlassets sends (BEGIN
    TRANSACTION; statements; COMMIT, see `sqlassets.adapters.snowflake.scripting_block`), which fakesnow
    cannot parse: its statements are executed on the server side, behind the one client round trip,
    as Snowflake does. `rewrite` maps statement prefixes fakesnow cannot run to ones it can (same
    number of requests), e.g. dbt-snowflake's `create or replace temporary view` -> `... view`.
    """

    def __init__(self, upstream_port: int, *, latency: float = 0.0, scripting: bool = False,
                 rewrite: dict[str, str] | None = None) -> None:
        import http.server

        self.upstream = upstream_port
        self.latency = latency
        self.scripting = scripting
        self.rewrite = {re.compile(re.escape(k), re.I): v for k, v in (rewrite or {}).items()}
        self.queries = 0
        self.requests = 0
        self.texts: list[str] = []
        self.parameters: list[dict[str, Any]] = []  # each query request's statement parameters
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = proxy.handle(self.command, self.path, dict(self.headers), body)
                self.send_response(status)
                for k, v in headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.queries = self.requests = 0
            self.texts.clear()
            self.parameters.clear()

    def _send(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.upstream, timeout=600)
        try:
            fwd = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
            fwd["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=fwd)
            resp = conn.getresponse()
            payload = resp.read()
            if resp.getheader("Content-Encoding") == "gzip":
                payload = gzip.decompress(payload)
            return resp.status, resp.getheaders(), payload
        finally:
            conn.close()

    def _query(self, path: str, headers: dict[str, str], req: dict[str, Any], sql: str) -> tuple[int, list, bytes]:
        body = json.dumps({**req, "sqlText": sql}).encode()
        h = {k: v for k, v in headers.items() if k.lower() != "content-encoding"}
        return self._send("POST", path, h, body)

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list, bytes]:
        time.sleep(self.latency)
        with self._lock:
            self.requests += 1
        if not path.startswith("/queries/v1/query-request"):
            return self._send(method, path, headers, body)
        raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
        req = json.loads(raw)
        sql = req.get("sqlText", "")
        with self._lock:
            self.queries += 1
            self.texts.append(sql)
            self.parameters.append(dict(req.get("parameters") or {}))
        for pattern, repl in self.rewrite.items():
            sql = pattern.sub(repl, sql)
        m = _BLOCK.match(sql) if self.scripting else None
        if m is None:
            return self._query(path, headers, req, sql)
        # Server side of one scripting request: BEGIN, each statement, COMMIT (ROLLBACK on error).
        inner = {k: v for k, v in req.items() if k not in ("bindings", "describeOnly")}
        self._query(path, headers, inner, "BEGIN TRANSACTION")
        result = None
        for stmt in [s.strip() for s in m.group(1).split(";\n") if s.strip()]:
            result = self._query(path, headers, inner, stmt.rstrip(";"))
            if not json.loads(result[2]).get("success", False):
                self._query(path, headers, inner, "ROLLBACK")
                return result
        self._query(path, headers, inner, "COMMIT")
        assert result is not None
        return result
