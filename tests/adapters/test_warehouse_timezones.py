"""A partition's timezone on Snowflake and BigQuery: what each is sent, and that it costs no request.

DuckDB runs `SET TimeZone` per unit (tests/run/test_timezone_windows.py proves the DST-day windows on a
real file). Snowflake gets the same through the `TIMEZONE` statement parameter on the unit's own requests,
BigQuery through `SET @@time_zone` at the head of the unit's script. fakesnow is UTC-only (its DuckDB is
pinned to UTC, it refuses `ALTER SESSION SET TIMEZONE`, and it ignores statement parameters), so no
engine here can show a New York day on Snowflake: the end-to-end test runs the real CLI against fakesnow
behind a recording proxy and checks what each request carries; the golden tests pin the exact text and
parameters real Snowflake and BigQuery are sent (recording cursor / client: no account can run here, and
the BigQuery emulator cannot parse `@@` variables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import invoke
from snowflake_support import SnowflakeProxy, fakesnow_server, load_events  # noqa: F401
from test_snowflake import real_snowflake_adapter

DB = "SQLA_TZ"
ASSET = """-- materialized: incremental
-- partitioned: daily
-- partition_column: day
-- partition_start: 2024-01-01
-- partition_end: 2024-01-10
-- partition_timezone: America/New_York
-- dialect: snowflake
select to_date(event_ts) as day, count(*) as n
from {db}.raw.events
where event_ts >= :window_start and event_ts < :window_end
group by 1
"""
PLAIN = """-- materialized: table
-- dialect: snowflake
select count(*) as n from {db}.raw.events
"""


def test_snowflake_units_carry_their_timezone_on_the_same_requests(fakesnow_port: int, tmp_path: Path) -> None:
    load_events(fakesnow_port, DB, days=9)
    proxy = SnowflakeProxy(fakesnow_port)
    try:
        root = tmp_path / "tz"
        (root / "sql").mkdir(parents=True)
        (root / "sqlassets.yml").write_text(
            "sql_paths: [sql]\nwarehouse: {type: snowflake, account: local, user: ci, password: not-a-secret-pw, "
            f"database: {DB}, schema: tz, host: 127.0.0.1, port: {proxy.port}, protocol: http}}\n")
        (root / "sql" / "ny_daily.sql").write_text(ASSET.format(db=DB))
        (root / "sql" / "event_count.sql").write_text(PLAIN.format(db=DB))
        r = invoke(["--project", str(root), "materialize", "--select", "ny_daily", "--partitions",
                    "2024-01-02..2024-01-04", "-j", "1"])
        assert r.exit_code == 0, r.stdout + r.stderr
        writes = [(t, p) for t, p in zip(proxy.texts, proxy.parameters, strict=True)
                  if t.lstrip().upper().startswith(("INSERT", "DELETE", "CREATE TABLE", "MERGE"))]
        assert len(writes) >= 3
        assert all(p.get("TIMEZONE") == "America/New_York" for _, p in writes), writes
        assert not any("ALTER SESSION" in t.upper() for t in proxy.texts)  # no extra round trip
        proxy.reset()
        r = invoke(["--project", str(root), "materialize", "--select", "event_count"])
        assert r.exit_code == 0, r.stdout + r.stderr
        assert proxy.texts and not any("TIMEZONE" in p for p in proxy.parameters)  # the session default
    finally:
        proxy.close()


def test_golden_snowflake_timezone_is_a_statement_parameter_not_a_request() -> None:
    a, s, log = real_snowflake_adapter()
    a.set_timezone(s, "America/New_York")
    s.set_query_tag('{"app":"sqlassets","asset":"fct","partition":"2024-03-10"}')
    s.run_atomic(["DELETE FROM ANALYTICS.DEV.FCT WHERE ts >= CAST('2024-03-10 00:00:00' AS TIMESTAMP)",
                  "INSERT INTO ANALYTICS.DEV.FCT SELECT ts FROM src"])
    assert s.requests == 1 and len(log) == 1
    assert log[0][0].startswith("EXECUTE IMMEDIATE $$")
    assert log[0][1] == {"QUERY_TAG": '{"app":"sqlassets","asset":"fct","partition":"2024-03-10"}',
                         "TIMEZONE": "America/New_York"}
    a.set_timezone(s, None)  # an unpartitioned unit next: the session's own default again
    s.set_query_tag(None)
    s.execute("CREATE OR REPLACE TABLE ANALYTICS.DEV.T AS SELECT CURRENT_DATE AS d")
    assert log[1] == ("CREATE OR REPLACE TABLE ANALYTICS.DEV.T AS SELECT CURRENT_DATE AS d", None)
    assert s.requests == 2


# -- BigQuery --------------------------------------------------------------------------------------------

def test_golden_bigquery_script_sets_the_time_zone_first() -> None:
    from sqlassets.adapters.bigquery import script, zoned

    unit = script(["DELETE FROM `p.d.fct` WHERE ts >= CAST('2024-03-10 00:00:00' AS TIMESTAMP) "
                   "AND ts < CAST('2024-03-11 00:00:00' AS TIMESTAMP)",
                   "INSERT INTO `p.d.fct` (ts) SELECT ts FROM `p.d.src`"])
    assert zoned(unit, "America/New_York") == (
        "SET @@time_zone = 'America/New_York';\n"
        "BEGIN TRANSACTION;\n"
        "DELETE FROM `p.d.fct` WHERE ts >= CAST('2024-03-10 00:00:00' AS TIMESTAMP) "
        "AND ts < CAST('2024-03-11 00:00:00' AS TIMESTAMP);\n"
        "INSERT INTO `p.d.fct` (ts) SELECT ts FROM `p.d.src`;\n"
        "COMMIT TRANSACTION;")
    merge = "MERGE `p.d.u` AS t USING (SELECT 1 AS id) AS s ON t.id = s.id WHEN NOT MATCHED THEN INSERT (id) VALUES (s.id)"
    assert zoned(merge, "Asia/Tokyo") == f"SET @@time_zone = 'Asia/Tokyo';\n{merge};"
    for utc in ("UTC", "Etc/UTC", None):  # every BigQuery script starts at UTC: nothing to send
        assert zoned(unit, utc) is unit
    assert zoned(merge, "it's") == "SET @@time_zone = 'it\\'s';\n" + merge + ";"  # quoted the BigQuery way


def test_bigquery_session_sends_one_zoned_job_per_unit() -> None:
    """The session's own path from `set_timezone` to `client.query`. A recording stand-in for the client,
    because nothing real can run it here: the bqemulator refuses `SET @@time_zone` ("Expected identifier,
    got AT_AT"); its golden tests run at UTC, where nothing is added."""
    pytest.importorskip("google.cloud.bigquery")
    from sqlassets.adapters.bigquery import BigQueryAdapter, BigQuerySession
    from sqlassets.project import Warehouse

    sent: list[str] = []

    class Job:
        num_dml_affected_rows = 3
        total_bytes_processed = 0

        def result(self, timeout: float | None = None) -> list[Any]:
            return []

    class Client:
        def query(self, sql: str, **_kw: Any) -> Job:
            sent.append(sql)
            return Job()

    a = BigQueryAdapter(Warehouse(type="bigquery", database="p", schema="d",
                                  options={"type": "bigquery", "project": "p", "dataset": "d", "method": "oauth",
                                           "row_counts": False}))  # the row-count script: test_bigquery_adapter
    a._client = Client()
    s = BigQuerySession(a)
    a.set_timezone(s, "America/New_York")
    s.run_atomic(["DELETE FROM `p.d.t` WHERE true", "INSERT INTO `p.d.t` SELECT 1"])
    a.set_timezone(s, "UTC")
    s.run_atomic(["DELETE FROM `p.d.t` WHERE true", "INSERT INTO `p.d.t` SELECT 1"])
    a.set_timezone(s, None)
    s.execute("CREATE OR REPLACE TABLE `p.d.x` AS SELECT CURRENT_DATE() AS d")
    assert s.requests == 3
    assert sent[0].startswith("SET @@time_zone = 'America/New_York';\nBEGIN TRANSACTION;\n")
    assert sent[1].startswith("BEGIN TRANSACTION;\n") and sent[2].startswith("CREATE OR REPLACE TABLE")
