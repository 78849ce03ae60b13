"""End to end on the BigQuery emulator: a dbt microbatch project (compiled by dbt-bigquery) backfilled for
366 days by the real CLI gives the rows of a raw loop; a re-run is a no-op; kill -9 + resume loses nothing.

The emulator runs DuckDB behind BigQuery's REST API; see bqemu_harness for what it does differently
(it is why this project's `partition_by` is not checked here: the emulator records none from DDL).
"""

from __future__ import annotations

import io
import sqlite3
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from run_support import popen_cli, run_cli

pytestmark = pytest.mark.slow

DAYS = 366  # 2024 is a leap year
MODEL = """{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='day',
          batch_size='day', begin='2024-01-01', partition_by={'field': 'day', 'data_type': 'date'},
          cluster_by=['customer_id'], meta={'sqlassets': {'partitions': {'end': '2025-01-01'}}}) }}
select date(event_ts) as day, customer_id, count(*) as n, sum(amount) as amount
from {{ source('raw', 'events') }}
group by 1, 2
"""


def _client(endpoint: str):
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project="sqlassets-test", credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=endpoint))


@pytest.fixture(scope="module")
def project(bq_emulator, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, object]:
    from google.cloud import bigquery

    uid = uuid.uuid4().hex[:8]
    raw, mart = f"raw_{uid}", f"mart_{uid}"
    root = tmp_path_factory.mktemp("bq_mb") / "mb"
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: mb\nversion: '1.0'\nconfig-version: 2\nprofile: mb\n"
                                          "model-paths: [models]\n")
    (root / "profiles.yml").write_text(
        "mb:\n  target: bq\n  outputs:\n    bq:\n      type: bigquery\n      method: oauth\n"
        f"      project: sqlassets-test\n      dataset: {mart}\n      location: US\n      threads: 2\n"
        f"      api_endpoint: {bq_emulator.endpoint}\n")
    (root / "models" / "sources.yml").write_text(
        f"version: 2\nsources:\n  - name: raw\n    schema: {raw}\n    tables:\n      - name: events\n"
        "        config:\n          event_time: event_ts\n")
    (root / "models" / "fct_daily.sql").write_text(MODEL)
    client = _client(bq_emulator.endpoint)
    client.create_dataset(f"sqlassets-test.{raw}")
    # Events every 61 minutes from 2023-12-31 20:00 into 2025: the edges of the year are outside the range.
    buf = io.StringIO("event_ts,customer_id,amount\n")
    buf.seek(0, io.SEEK_END)
    t0 = datetime(2023, 12, 31, 20)
    for i in range(DAYS * 24 + 10):
        buf.write(f"{t0 + timedelta(minutes=61 * i):%Y-%m-%d %H:%M:%S},{i % 7},{(i % 100) / 4}\n")
    cfg = bigquery.LoadJobConfig(source_format="CSV", skip_leading_rows=1, schema=[
        bigquery.SchemaField("event_ts", "TIMESTAMP"), bigquery.SchemaField("customer_id", "INT64"),
        bigquery.SchemaField("amount", "FLOAT64")])
    client.load_table_from_file(io.BytesIO(buf.getvalue().encode()), f"sqlassets-test.{raw}.events",
                                job_config=cfg).result()
    yield root, mart, client
    for ds in (raw, mart):
        client.delete_dataset(f"sqlassets-test.{ds}", delete_contents=True, not_found_ok=True)


def rows(client, mart: str) -> list[tuple]:
    return sorted(tuple(r.values()) for r in client.query(
        f"SELECT day, customer_id, n, amount FROM `sqlassets-test`.`{mart}`.`fct_daily`").result())


def raw_loop(client, root: Path, mart: str) -> list[tuple]:
    """What a loop of the model's SELECT over each day of 2024 returns. The model groups by day, so each
    day's query returns exactly that day's groups of one query over the year's window; one query keeps
    this test fast on the emulator (~0.2 s a query). bench/ runs the literal per-day loop."""
    raw = (root / "models" / "sources.yml").read_text().split("schema: ")[1].split()[0]
    return sorted(tuple(r.values()) for r in client.query(
        f"SELECT date(event_ts) AS day, customer_id, count(*) AS n, sum(amount) AS amount "
        f"FROM `sqlassets-test`.`{raw}`.`events` WHERE event_ts >= TIMESTAMP '2024-01-01' "
        f"AND event_ts < TIMESTAMP '2025-01-01' GROUP BY 1, 2").result())


def state(root: Path, sql: str) -> list[tuple]:
    db = root / ".sqlassets" / "state.db"
    if not db.exists():
        return []
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def done(root: Path) -> int:
    return state(root, "select count(*) from materializations where asset='fct_daily' and status='done'")[0][0] \
        if state(root, "select 1") else 0


def test_microbatch_backfill_matches_raw_loop_rerun_is_noop_kill9_resume(project) -> None:
    root, mart, client = project
    expected = raw_loop(client, root, mart)
    assert len({r[0] for r in expected}) == DAYS

    r = run_cli(root, "backfill", "--partitions", "2024-01-01..2024-12-31", "--batch-size", "14", timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{DAYS} done" in r.stdout, r.stdout
    assert rows(client, mart) == expected
    assert done(root) == DAYS

    r = run_cli(root, "backfill", "--partitions", "2024-01-01..2024-12-31", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "0 unit(s)" in r.stdout or "nothing to" in r.stdout.lower(), r.stdout
    assert rows(client, mart) == expected

    # kill -9 in the middle of a full rebuild, then resume: nothing lost, nothing doubled.
    proc = popen_cli(root, "backfill", "--full-refresh", "--batch-size", "7", "-j", "1")
    deadline = time.monotonic() + 300
    before = done(root)
    while time.monotonic() < deadline and proc.poll() is None:
        # --full-refresh forgets the asset's partitions first; kill once a few were rewritten.
        if 0 < done(root) < before and done(root) >= 14:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the rebuild finished before it could be killed: " + proc.communicate()[0][-500:]
    proc.kill()
    proc.communicate()
    partial = done(root)
    assert 14 <= partial < DAYS
    got = rows(client, mart)
    assert set(got) <= set(expected) and len(got) < len(expected)  # whole partitions only, no strays
    backfill_id = max(r[0] for r in state(root, "select id from backfills"))
    r = run_cli(root, "backfill", "resume", str(backfill_id), timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert rows(client, mart) == expected
    assert done(root) == DAYS
    r = run_cli(root, "runs")
    assert "crashed" in r.stdout, r.stdout
