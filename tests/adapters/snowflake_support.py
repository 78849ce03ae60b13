"""A fakesnow server (real `fakesnow -s`, Snowflake's HTTP protocol on loopback) and a dbt project for it.

The project is a normal dbt-snowflake project whose profile points at the server with host / port /
protocol, as a user would point it at a local fake: a microbatch model over a raw source, a merge
model, a seed, a table and a view.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def make_project(root: Path, port: int, database: str, *, threads: int = 4) -> Path:
    (root / "models").mkdir(parents=True)
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


@pytest.fixture(scope="session")
def fakesnow_port(tmp_path_factory: pytest.TempPathFactory):
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
