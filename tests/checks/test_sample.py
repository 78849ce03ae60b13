"""On the real sample project (real dbt parse/compile, real DuckDB, real GX): dbt tests as checks with
severity / warn_if / error_if, partition-scoped test SQL, and the CI gate on two versions of the project
(a change that breaks a downstream column fails it; a harmless added column passes)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
from checks_support import built_sample  # noqa: F401  (session fixture)
from conftest import invoke

from sqlassets.checks.dbt_tests import restrict_to_partition
from sqlassets.model import Relation


def test_dbt_tests_severity_warn_if_error_if(built_sample: Path):  # noqa: F811
    res = invoke(["--project", str(built_sample), "check", "-s", "stg_customers", "-v"])
    assert res.exit_code == 0, res.stdout + res.stderr  # only warnings fail
    lines = {ln.split("test ")[-1].split()[0].rstrip(":"): ln for ln in res.stdout.splitlines() if "dbt test" in ln}
    email = lines["not_null_stg_customers_email"]  # warn_if >0, error_if >10, 3 nulls -> warning
    assert email.startswith("✗ FAIL  warning") and "observed 3 failing rows" in email and "error_if >10" in email
    rel = next(v for k, v in lines.items() if k.startswith("relationships_stg_customers_country_code"))
    assert rel.startswith("✗ FAIL  warning")  # severity: warn
    assert lines["unique_stg_customers_customer_id"].startswith("✓ PASS  critical")


def test_failing_error_test_blocks(built_sample: Path, tmp_path: Path):  # noqa: F811
    db = tmp_path / "copy"
    root = shutil.copytree(built_sample, db)
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"))
    con.execute("insert into main.product_performance select * from main.product_performance limit 2")
    con.close()
    res = invoke(["--project", str(root), "check", "-s", "product_performance"])
    assert res.exit_code == 1
    line = next(ln for ln in res.stdout.splitlines() if "unique_product_performance_product_id" in ln)
    assert "FAIL  critical product_performance" in line and "column product_id" in line
    assert "observed 2 failing rows; expected 0 failing rows" in line


def test_partition_scoped_test_sql():
    sql = 'select a from "warehouse"."main"."fct" f join "warehouse"."main"."dim" d on f.k = d.k'
    out = restrict_to_partition(sql, Relation("warehouse", "main", "fct"), "\"day\" = '2024-01-02'")
    assert out is not None and "WHERE (\"day\" = '2024-01-02')" in out and '"dim" AS d' in out
    assert restrict_to_partition(sql, Relation("warehouse", "main", "other"), "x = 1") is None


def _gate(root: Path, base: Path, tmp: Path, *extra: str):
    return invoke(["--project", str(root), "ci", "--base", str(base), "--junit", str(tmp / "ci.xml"),
                   "--markdown", str(tmp / "ci.md"), "--partitions", "2024-01-01..2024-01-03", *extra],
                  env={"GITHUB_ACTIONS": "true"})


def _prod_copy(built: Path, dest: Path) -> tuple[Path, Path]:
    root = shutil.copytree(built, dest)
    base = dest.parent / f"{dest.name}_prod_manifest.json"
    shutil.copyfile(root / "target" / "manifest.json", base)
    return root, base


def test_gate_fails_on_a_change_that_breaks_a_downstream_column(built_sample: Path, tmp_path: Path):  # noqa: F811
    root, base = _prod_copy(built_sample, tmp_path / "v2")
    prod = root / "data" / "warehouse.duckdb"
    before = prod.stat().st_mtime_ns, prod.read_bytes()
    model = root / "models" / "marts" / "customer_lifetime_value.sql"
    text = model.read_text()
    # retype avg_order_value (a decimal) to varchar; vip_customers reads it
    changed, n = re.subn(r"(?m)^(\s*)(.+) as avg_order_value,$", r"\1cast(\2 as varchar) as avg_order_value,", text)
    assert n == 1
    model.write_text(changed)
    res = _gate(root, base, tmp_path)
    out = res.stdout + res.stderr
    assert res.exit_code == 1, out
    assert "CI gate: FAIL" in out and "breaking column change" in out
    # the terminal (a CI log without GitHub annotations) names the column, its change and its readers
    assert ("  breaking: customer_lifetime_value.avg_order_value retyped DECIMAL(12,2) -> VARCHAR; "
            "read by vip_customers.avg_order_value") in res.stdout
    md = (tmp_path / "ci.md").read_text()
    assert "`customer_lifetime_value.avg_order_value` | retyped DECIMAL(12,2) -> VARCHAR" in md
    assert "`vip_customers.avg_order_value`" in md and "| `customer_lifetime_value` | modified |" in md
    assert any(ln.startswith("::error file=models/marts/customer_lifetime_value.sql") for ln in out.splitlines())
    assert (prod.stat().st_mtime_ns, prod.read_bytes()) == before  # production was never written
    assert (root / ".sqlassets" / "ci" / "warehouse.duckdb").exists()


def test_gate_passes_a_harmless_added_column(built_sample: Path, tmp_path: Path):  # noqa: F811
    root, base = _prod_copy(built_sample, tmp_path / "v2")
    model = root / "models" / "marts" / "customer_lifetime_value.sql"
    text = model.read_text()
    anchor = "as avg_order_value,"
    assert anchor in text
    model.write_text(text.replace(anchor, anchor + "\n    1 as loyalty_points,", 1))
    res = _gate(root, base, tmp_path)
    out = res.stdout + res.stderr
    assert res.exit_code == 0, out
    assert "CI gate: PASS" in out
    md = (tmp_path / "ci.md").read_text()
    assert "Breaking column changes" not in md and "customer_lifetime_value" in md
    # the demo's on-purpose warning is reported, not blocking
    assert "column_values_to_be_in_set(region)" in md


def test_gate_prints_why_the_build_failed(built_sample: Path, tmp_path: Path):  # noqa: F811
    root, base = _prod_copy(built_sample, tmp_path / "v2")
    model = root / "models" / "marts" / "customer_lifetime_value.sql"
    text = model.read_text()
    anchor = "as avg_order_value,"
    model.write_text(text.replace(anchor, anchor + "\n    cast('abc' as integer) as loyalty_points,", 1))
    res = _gate(root, base, tmp_path)
    assert res.exit_code == 1, res.stdout + res.stderr
    failed = [ln for ln in res.stdout.splitlines() if ln.startswith("  failed customer_lifetime_value")]
    assert failed and "Could not convert string 'abc'" in failed[0]
    assert "CI gate: FAIL - 1 partition(s) failed to build" in res.stdout


def test_gate_usage_errors(built_sample: Path, tmp_path: Path):  # noqa: F811
    res = invoke(["--project", str(built_sample), "ci", "--base", str(tmp_path / "missing.json")])
    assert res.exit_code == 2 and "no such manifest" in res.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    res = invoke(["--project", str(built_sample), "ci", "--base", str(bad)])
    assert res.exit_code == 2 and "not valid JSON" in res.stderr


def test_store_failures_writes_the_failing_rows_as_dbt_does(built_sample: Path, tmp_path: Path):  # noqa: F811
    root = shutil.copytree(built_sample, tmp_path / "copy")
    with (root / "dbt_project.yml").open("a") as f:
        f.write("\ndata_tests:\n  shop:\n    +store_failures: true\n")
    res = invoke(["--project", str(root), "check", "-s", "stg_customers"])
    assert res.exit_code == 0, res.stdout + res.stderr
    con = duckdb.connect(str(root / "data" / "warehouse.duckdb"), read_only=True)
    try:
        # dbt's audit schema (<target schema>_dbt_test__audit), one relation per test named by its alias
        stored = con.execute("select count(*) from main_dbt_test__audit.not_null_stg_customers_email").fetchone()
        passing = con.execute("select count(*) from main_dbt_test__audit.unique_stg_customers_customer_id").fetchone()
    finally:
        con.close()
    assert stored == (3,) and passing == (0,)  # the 3 null emails; a passing test stores an empty table
