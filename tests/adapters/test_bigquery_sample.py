"""The sample project on the BigQuery emulator, end to end through the real CLI: its main job (a few days of
partitions), `sqlassets check` (suites pushed down as BigQuery SQL, dbt tests through the adapter) with a
passing and a failing verdict, and the CI gate building into a CI dataset that is dropped afterwards while
production stays exactly as it was.

The profile is the sample's own `bigquery` output, pointed at the test's emulator through the environment
variables it reads (as a user would point it at a real project); each module run uses a project id of its
own, so nothing it writes meets another test's datasets.

What the emulator cannot do stays out of here (see bqemu_harness): `weekly_segment_kpis` truncates dates to
Monday weeks, which BigQuery writes `DATE_TRUNC(d, WEEK(MONDAY))` and the emulator cannot translate, so
the main job runs without it here (test_bigquery_golden pins the statement instead).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from run_support import run_cli

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_project"
DAYS = ("2024-01-01", "2024-01-02")
SPAN = f"{DAYS[0]}..{DAYS[1]}"
EMULATOR_CANNOT = "weekly_segment_kpis"  # WEEK(MONDAY): see the module docstring


def _client(endpoint: str, project: str) -> Any:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=endpoint))


class Sample:
    def __init__(self, root: Path, env: dict[str, str], client: Any, project: str) -> None:
        self.root, self.env, self.client, self.project = root, env, client, project

    def cli(self, *args: str, timeout: float = 300) -> Any:
        return run_cli(self.root, "--target", "bigquery", *args, timeout=timeout, env=self.env)

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(r.values()) for r in self.client.query(sql.replace("P.", f"`{self.project}`.")).result()]

    def datasets(self) -> set[str]:
        return {d.dataset_id for d in self.client.list_datasets(self.project)}

    def snapshot(self, dataset: str) -> dict[str, tuple[Any, ...]]:
        """Every table and view of a dataset: when it was last modified, its schema, its rows (sorted) and
        its definition."""
        out: dict[str, tuple[Any, ...]] = {}
        for item in self.client.list_tables(f"{self.project}.{dataset}"):
            t = self.client.get_table(f"{self.project}.{dataset}.{item.table_id}")
            schema = tuple((f.name, f.field_type) for f in t.schema)
            if t.table_type == "VIEW":
                out[item.table_id] = ("VIEW", t.modified, schema, t.view_query)
            else:
                data = sorted((tuple(r.values()) for r in self.client.query(
                    f"SELECT * FROM `{self.project}`.`{dataset}`.`{item.table_id}`").result()), key=repr)
                out[item.table_id] = ("TABLE", t.modified, schema, tuple(data))
        return out


@pytest.fixture(scope="module")
def sample(bq_emulator, tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = f"sample-{uuid.uuid4().hex[:8]}"
    root = tmp_path_factory.mktemp("bq_sample") / "shop"
    shutil.copytree(SAMPLE, root, ignore=shutil.ignore_patterns("data", ".sqlassets", "target", "logs",
                                                                 "__pycache__"))
    env = {"SQLASSETS_BQ_ENDPOINT": bq_emulator.endpoint, "SQLASSETS_BQ_PROJECT": project}
    loaded = subprocess.run([sys.executable, str(root / "load_bigquery.py"), "--rows-per-day", "60",
                             "--start", DAYS[0], "--end", DAYS[1]], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=120)
    assert loaded.returncode == 0, loaded.stdout + loaded.stderr
    assert "rows loaded into the bigquery target" in loaded.stdout, loaded.stdout
    client = _client(bq_emulator.endpoint, project)
    s = Sample(root, env, client, project)
    yield s
    for ds in s.datasets():
        client.delete_dataset(f"{project}.{ds}", delete_contents=True, not_found_ok=True)


def test_main_job_on_the_emulator_then_a_rerun_is_a_noop(sample: Sample) -> None:
    # The demo's main job (backfill the fact, then materialize the rest) as one materialize: every asset
    # of the sample, its days' partitions, and the checks after each unit.
    r = sample.cli("materialize", "--partitions", SPAN, "--exclude", EMULATOR_CANNOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "success" in r.stdout and "15 done" in r.stdout, r.stdout
    # The fact holds every staged event of the three days, once.
    got = sample.rows("SELECT event_date, SUM(events_count) FROM P.main.fct_daily_customer_events GROUP BY 1")
    want = sample.rows("SELECT event_date, COUNT(*) FROM P.main.stg_events GROUP BY 1")
    assert sorted(got) == sorted(want) and len(got) == 2, (got, want)
    # Every asset of the job is in the dataset: seeds (load jobs), views, tables, the raw SQL assets.
    tables = {t.table_id for t in sample.client.list_tables(f"{sample.project}.main")}
    for name in ("channels", "customers", "stg_events", "stg_customers", "fct_daily_customer_events",
                 "customer_lifetime_value", "product_performance", "daily_segment_kpis", "vip_customers"):
        assert name in tables, (name, sorted(tables))
    assert not [t for t in tables if "sqlassets" in t], f"staging tables left behind: {sorted(tables)}"
    kpis = sample.rows("SELECT COUNT(DISTINCT event_date) FROM P.main.daily_segment_kpis")
    assert kpis == [(2,)]
    r = sample.cli("materialize", "--partitions", SPAN, "--exclude", EMULATOR_CANNOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "nothing to" in r.stdout.lower() or "0 unit(s)" in r.stdout, r.stdout


def test_check_passes_then_fails_on_a_bad_row_suite_and_dbt_test(sample: Sample) -> None:
    # 12 checks: 8 suite expectations in BigQuery SQL, 4 dbt tests. One warns on the sample's data
    # (a customer in region 'Unknown'), as on DuckDB; none blocks.
    r = sample.cli("check", "--select", "customer_lifetime_value")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 checks, 11 passed, 1 failed, 0 blocking" in r.stdout, r.stdout
    # A duplicate customer with a tier outside the set, written behind the tool's back.
    sample.rows("INSERT INTO P.main.customer_lifetime_value (customer_id, value_tier) VALUES (1, 'diamond')")
    try:
        r = sample.cli("check", "--select", "customer_lifetime_value")
        assert r.returncode == 1, r.stdout + r.stderr
        out = r.stdout
        assert "unique_customer_lifetime_value_customer_id" in out and "1 failing row" in out, out  # dbt test
        assert "'diamond'" in out, out  # the suite's in-set expectation, with the real observed value
        assert "blocking" in out and "0 blocking" not in out, out
    finally:
        sample.rows("DELETE FROM P.main.customer_lifetime_value WHERE value_tier = 'diamond'")


def state_rows(root: Path, sql: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(root / ".sqlassets" / "state.db")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_ci_gate_builds_in_a_ci_dataset_and_never_touches_production(sample: Sample, tmp_path: Path) -> None:
    base = tmp_path / "base"  # production's dbt manifest, as the main job left it
    base.mkdir()
    shutil.copy(sample.root / "target" / "manifest.json", base / "manifest.json")
    before = {ds: sample.snapshot(ds) for ds in ("main", "raw")}
    model = sample.root / "models" / "marts" / "customer_lifetime_value.sql"
    original = model.read_text()
    runs_before = state_rows(sample.root, "select count(*) from runs")
    try:
        # Names upper-cased: the model is rebuilt in the CI dataset, and vip_customers (raw SQL reading
        # `main.customer_lifetime_value`, downstream) is rebuilt there from the CI copy. (A new column
        # would do too on BigQuery; the emulator's copy job cannot change a table's schema.)
        model.write_text(original.replace("        c.full_name,", "        upper(c.full_name) as full_name,", 1))
        r = sample.cli("ci", "--base", str(base), "--ci-dir", str(tmp_path / "ci"), "--keep",
                       "--partitions", SPAN)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "CI gate: PASS" in r.stdout and "customer_lifetime_value (modified)" in r.stdout, r.stdout
        assert "main_sqlassets_ci" in sample.datasets()
        ci_names = sample.rows("SELECT full_name FROM P.main_sqlassets_ci.vip_customers")
        prod_names = sample.rows("SELECT full_name FROM P.main.vip_customers")
        assert ci_names and sorted(n.upper() for (n,) in prod_names) == sorted(n for (n,) in ci_names)
        assert any(n != n.upper() for (n,) in prod_names)
        # A change that fails a blocking check (a duplicate customer): the gate fails, production is
        # unchanged, and without --keep the CI dataset is dropped.
        model.write_text(original.replace("from customers as c", "from (select * from customers union all "
                                          "select * from customers where customer_id = 1) as c", 1))
        r = sample.cli("ci", "--base", str(base), "--ci-dir", str(tmp_path / "ci"), "--partitions", SPAN)
        assert r.returncode == 1, r.stdout + r.stderr
        assert "CI gate: FAIL" in r.stdout and "unique" in r.stdout, r.stdout
        assert not [d for d in sample.datasets() if d.endswith("_sqlassets_ci")], sample.datasets()
        # After both gate runs: every production table and view as it was (modified time, schema, rows).
        assert {ds: sample.snapshot(ds) for ds in ("main", "raw")} == before
        assert state_rows(sample.root, "select count(*) from runs") == runs_before  # CI state lives apart
    finally:
        model.write_text(original)
