"""Golden tests: every statement and client call the BigQuery adapter makes, per strategy.

The calls go through a recording proxy to a real `bigquery.Client` pointed at the emulator, so each
golden statement was also accepted and run by an engine. Dataset names are per test run (shown as DS)
and the header comments of raw SQL assets (`/* materialized: ... */`, sent as comments) are left out.
"""

from __future__ import annotations

import re
import uuid

import pytest
from bq_recording import RecordingClient

from sqlassets.adapters.base import adapter_for
from sqlassets.loaders import load_graph
from sqlassets.model import Relation
from sqlassets.project import load_project
from sqlassets.run.executor import RunOptions, RunRequest, execute_request

pytestmark = pytest.mark.slow

DAILY = """-- materialized: incremental
-- partitioned: daily
-- partition_column: day
-- partition_start: 2024-01-01
-- partition_end: 2024-01-04
-- dialect: bigquery
select date(event_ts) as day, customer_id, count(*) as n
from `sqlassets-test`.{raw}.events
where event_ts >= :window_start and event_ts < :window_end
group by 1, 2
"""
LATEST = """-- materialized: incremental
-- unique_key: customer_id
-- dialect: bigquery
select customer_id, max(day) as last_day from daily group by 1
"""
SUMMARY = """-- materialized: table
-- dialect: bigquery
select customer_id, sum(n) as n from daily group by 1
"""
VIEW = """-- materialized: view
-- dialect: bigquery
select customer_id from summary where n > 1
"""

P = "`sqlassets-test`"
SRC = ("SELECT * FROM (SELECT date(event_ts) AS day, customer_id, count(*) AS n FROM `sqlassets-test`.RAW.events "
       "WHERE event_ts >= CAST('{a} 00:00:00' AS TIMESTAMP) AND event_ts < CAST('{b} 00:00:00' AS TIMESTAMP) "
       "GROUP BY 1, 2) AS _sqlassets_q WHERE CAST(day AS TIMESTAMP) >= CAST('{a} 00:00:00' AS TIMESTAMP) AND "
       "CAST(day AS TIMESTAMP) < CAST('{b} 00:00:00' AS TIMESTAMP)")


def replace_script(a: str, b: str) -> str:
    """The one request that replaces a day of `daily`: the DELETE bounds are DATE like the column."""
    return (f"BEGIN TRANSACTION;\nDELETE FROM {P}.`DS`.`daily` WHERE day >= CAST(CAST('{a} 00:00:00' AS TIMESTAMP) "
            f"AS DATE) AND day < CAST(CAST('{b} 00:00:00' AS TIMESTAMP) AS DATE);\n"
            f"INSERT INTO {P}.`DS`.`daily` (`day`, `customer_id`, `n`) SELECT `day`, `customer_id`, `n` FROM "
            f"({SRC.format(a=a, b=b)}) AS _s;\nCOMMIT TRANSACTION;")


@pytest.fixture(scope="module")
def env(bq_emulator, tmp_path_factory: pytest.TempPathFactory):
    uid = uuid.uuid4().hex[:8]
    ds, raw = f"gold_{uid}", f"graw_{uid}"
    root = tmp_path_factory.mktemp("bqgold") / "p"
    (root / "sql").mkdir(parents=True)
    (root / "sqlassets.yml").write_text(
        f"warehouse: {{type: bigquery, method: oauth, project: sqlassets-test, dataset: {ds}, location: US, "
        f"api_endpoint: '{bq_emulator.endpoint}', maximum_bytes_billed: 1000000000}}\nsql_paths: [sql]\n")
    for name, text in (("daily", DAILY.format(raw=raw)), ("latest", LATEST), ("summary", SUMMARY), ("v", VIEW)):
        (root / "sql" / f"{name}.sql").write_text(text)
    project = load_project(root)
    adapter = adapter_for(project.warehouse)
    client = adapter.client
    client.create_dataset(f"sqlassets-test.{raw}")
    client.query(f"CREATE TABLE `sqlassets-test`.{raw}.events AS SELECT TIMESTAMP '2024-01-01 10:00:00' AS event_ts, "
                 "1 AS customer_id UNION ALL SELECT TIMESTAMP '2024-01-02 10:00:00', 2 UNION ALL "
                 "SELECT TIMESTAMP '2024-01-02 11:00:00', 2 UNION ALL SELECT TIMESTAMP '2024-01-03 09:00:00', 1").result()
    adapter._client = RecordingClient(client)
    yield {"root": root, "project": project, "adapter": adapter, "ds": ds, "raw": raw}
    adapter.close()
    for d in (ds, raw):
        client.delete_dataset(f"sqlassets-test.{d}", delete_contents=True, not_found_ok=True)


def run(env, **kw):
    lines: list[str] = []
    env["adapter"].client.clear()
    graph = load_graph(env["project"])
    kw.setdefault("options", RunOptions(concurrency=1))
    plan, summary = execute_request(env["project"], graph, RunRequest(**kw),
                                    echo=lines.append, adapter=env["adapter"])
    calls = [normal(env, c) for c in env["adapter"].client.calls]
    return summary, calls, lines


def normal(env, call: tuple) -> tuple:
    def fix(x):
        if isinstance(x, str):
            x = re.sub(r"/\*.*?\*/ ?", "", x).replace(env["ds"], "DS").replace(env["raw"], "RAW")
        return x
    return tuple(fix(x) for x in call)


def q(sql: str, asset: str | None, partition: str | None = None, **extra) -> tuple:
    labels = {"app": "sqlassets"}
    if asset:
        labels["sqlassets_asset"] = asset
    if partition:
        labels["sqlassets_partition"] = partition
    return ("query", sql, {**extra, "maximum_bytes_billed": 1000000000, "labels": labels})


def test_golden_first_run_of_every_strategy(env) -> None:
    summary, calls, _ = run(env)
    assert summary.status == "success" and summary.done == 6
    assert calls == [
        # partition replace: dataset (API), does the table exist, the query's types (dry run, free), then the
        # first partition creates the table PARTITION BY its DATE column, and each later partition is ONE script.
        ("create_dataset", "DS"),
        ("get_table", "sqlassets-test.DS.daily"),
        ("get_table", "sqlassets-test.RAW.events"),
        q(SRC.format(a="2024-01-01", b="2024-01-02"), "daily", "2024-01-01", dry_run=True),
        q(f"CREATE TABLE {P}.`DS`.`daily` PARTITION BY `day` AS {SRC.format(a='2024-01-01', b='2024-01-02')}",
          "daily", "2024-01-01"),
        ("get_table", "sqlassets-test.DS.daily"),
        q(replace_script("2024-01-02", "2024-01-03"), "daily", "2024-01-02"),
        q(replace_script("2024-01-03", "2024-01-04"), "daily", "2024-01-03"),
        # merge (first run: created from the query)
        ("get_table", "sqlassets-test.DS.latest"),
        q("SELECT * FROM (SELECT customer_id, MAX(day) AS last_day FROM daily GROUP BY 1) AS _sqlassets_q", "latest",
          dry_run=True),  # the unique_key must be among the query's columns before a table is created
        q(f"CREATE TABLE {P}.`DS`.`latest` AS SELECT * FROM (SELECT customer_id, MAX(day) AS last_day FROM daily "
          "GROUP BY 1) AS _sqlassets_q", "latest"),
        ("get_table", "sqlassets-test.DS.latest"),
        # table: build a staging table, copy it over the target (atomic, free), drop the staging table
        ("get_table", "sqlassets-test.DS.summary"),
        q(f"CREATE OR REPLACE TABLE {P}.`DS`.`summary__sqlassets_new` AS SELECT customer_id, sum(n) AS n FROM daily "
          "GROUP BY 1", "summary"),
        ("copy_table", "sqlassets-test.DS.summary__sqlassets_new", "sqlassets-test.DS.summary", "WRITE_TRUNCATE"),
        ("delete_table", "sqlassets-test.DS.summary__sqlassets_new"),
        # view
        ("get_table", "sqlassets-test.DS.v"),
        q(f"CREATE OR REPLACE VIEW {P}.`DS`.`v` AS SELECT customer_id FROM summary WHERE n > 1", "v"),
        # after the run, the statement cache records what the incremental tables and queries look like
        ("get_table", "sqlassets-test.DS.daily"),
        q(SRC.format(a="2024-01-01", b="2024-01-02"), "v", dry_run=True),
        ("get_table", "sqlassets-test.DS.latest"),
        q("SELECT * FROM (SELECT customer_id, MAX(day) AS last_day FROM daily GROUP BY 1) AS _sqlassets_q", "v",
          dry_run=True),
    ]
    a = env["adapter"]
    s = a.session()
    assert sorted(s.query(f"SELECT day, customer_id, n FROM {P}.`{env['ds']}`.`daily`")) == [
        (__import__("datetime").date(2024, 1, 1), 1, 1), (__import__("datetime").date(2024, 1, 2), 2, 2),
        (__import__("datetime").date(2024, 1, 3), 1, 1)]
    assert sorted(s.query(f"SELECT customer_id FROM {P}.`{env['ds']}`.`v`")) == [(1,), (2,)]


def test_golden_steady_state_is_one_request_per_partition_and_merge(env) -> None:
    summary, calls, _ = run(env, mode="all", partitions="2024-01-02..2024-01-03", select=["daily", "latest"])
    assert summary.status == "success"
    writes = [c for c in calls if c[0] == "query" and not c[2].get("dry_run")]
    assert writes == [
        q(replace_script("2024-01-02", "2024-01-03"), "daily", "2024-01-02"),
        q(replace_script("2024-01-03", "2024-01-04"), "daily", "2024-01-03"),
        q(f"MERGE INTO {P}.`DS`.`latest` AS _t USING (SELECT * FROM (SELECT customer_id, MAX(day) AS last_day "
          "FROM daily GROUP BY 1) AS _sqlassets_q) AS _s ON `_t`.`customer_id` = `_s`.`customer_id` WHEN MATCHED "
          "THEN UPDATE SET `last_day` = `_s`.`last_day` WHEN NOT MATCHED THEN INSERT (`customer_id`, `last_day`) "
          "VALUES (`_s`.`customer_id`, `_s`.`last_day`)", "latest"),
    ]
    # Reads per asset per run: exists? (API), its columns (API), the query's columns (dry run).
    assert [c[0] for c in calls if c not in writes] == ["get_table", "get_table", "query"] * 2


def test_golden_full_refresh_drops_then_recreates_partitioned(env) -> None:
    summary, calls, _ = run(env, select=["daily"], options=RunOptions(full_refresh=True))
    assert summary.status == "success"
    writes = [c[1] for c in calls if c[0] == "query" and not c[2].get("dry_run")]
    assert writes[0] == f"DROP TABLE IF EXISTS {P}.`DS`.`daily`"
    assert writes[1].startswith(f"CREATE TABLE {P}.`DS`.`daily` PARTITION BY `day` AS ")
    assert writes[2:] == [replace_script("2024-01-02", "2024-01-03"), replace_script("2024-01-03", "2024-01-04")]


def test_golden_dry_run_prints_statements_and_bytes_and_sends_no_write(env) -> None:
    summary, calls, lines = run(env, mode="all", partitions="2024-01-02..2024-01-03", select=["daily"], dry_run=True)
    assert summary is None
    assert all(c[0] in ("get_table", "list_tables") or (c[0] == "query" and c[2].get("dry_run")) for c in calls), calls
    text = "\n".join(lines)
    assert "-- daily [2024-01-02]" in text and "DELETE FROM" in text and "COMMIT TRANSACTION" not in text
    assert text.count("-- would scan") == 2  # one estimate per partition (the emulator bills 0 bytes)
    assert "2 request(s)" in text


def test_golden_ci_gate_reads_and_writes_only_the_ci_dataset(env, tmp_path) -> None:
    """The gate's build on a project relocated to its CI dataset (`remote_ci_project`, the real thing):
    every API call and statement names the CI dataset (sources are read where they are), production's
    rows are unchanged, and `drop()` removes the CI dataset."""
    from sqlassets.checks.gate_remote import remote_ci_project

    a = env["adapter"]
    prod = {t: sorted(a.session().query(f"SELECT * FROM {P}.`{env['ds']}`.`{t}`"))
            for t in ("daily", "latest", "summary", "v")}
    graph = load_graph(env["project"])
    cproj, target, seeded = remote_ci_project(env["project"], graph, tmp_path / "ci")
    assert seeded and target.pairs == [(("sqlassets-test", env["ds"]), ("sqlassets-test", env["ds"] + "_sqlassets_ci"))]
    ci = adapter_for(cproj.warehouse)
    ci._client = RecordingClient(ci.client)
    try:
        _plan, summary = execute_request(cproj, graph, RunRequest(mode="all", partitions="2024-01-02..2024-01-03",
                                                                  options=RunOptions(concurrency=1)),
                                         echo=lambda _line: None, adapter=ci)
        assert summary.status == "success" and summary.done == 5, summary.failures
        calls = [normal(env, c) for c in ci.client.calls]
        kinds = {c[0] for c in calls}
        assert {"get_table", "query", "copy_table", "delete_table"} <= kinds
        for c in calls:
            text = " ".join(str(x) for x in c[1:])
            assert not re.search(r"\bDS\b(?!_sqlassets_ci)", text), c  # production's dataset is never named
        assert ci.client.default_datasets == {f"sqlassets-test.{env['ds']}_sqlassets_ci"}
        s = a.session()
        for t, rows in prod.items():
            assert sorted(s.query(f"SELECT * FROM {P}.`{env['ds']}`.`{t}`")) == rows, t
    finally:
        ci.close()
        target.drop()
    assert a.relation_type(a.session(), Relation("sqlassets-test", env["ds"] + "_sqlassets_ci", "daily")) is None
