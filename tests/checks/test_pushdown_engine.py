"""The SQL engine inside `sqlassets check` and materialize: engine attribution, one query per batch, the
`--engine gx` switch, and life without Great Expectations installed (import blocked in a subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from checks_support import exp, make_shop_checks, suite, write_suite
from conftest import invoke
from sqlglot import exp as sx

from sqlassets.checks.pushdown.evaluate import DuckDBAccess, evaluate
from sqlassets.checks.specs import Expectation, Suite

NO_GX = ("import sys\nsys.modules['great_expectations'] = None  # `import great_expectations` now fails\n"
         "from sqlassets.cli import main\nmain(sys.argv[1:])\n")


@pytest.fixture
def built(tmp_path: Path) -> Path:
    root = make_shop_checks(tmp_path / "p")
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 0, res.stdout + res.stderr
    write_suite(root, "daily", suite(
        "daily",
        exp("expect_column_values_to_be_between", "critical", column="net", min_value=0),
        exp("expect_column_values_to_not_be_null", "critical", column="customer_id"),
        exp("expect_column_mean_to_be_between", "warning", column="n", min_value=1, max_value=100),
    ))
    return root


def _no_gx(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", NO_GX, "--project", str(root), *args], capture_output=True,
                          text=True)


def test_covered_suites_run_without_great_expectations(built: Path):
    out = _no_gx(built, "check", "-v")
    assert out.returncode == 1, out.stdout + out.stderr  # the real failure (net < 0 on 2024-01-03), not an import
    assert "ModuleNotFoundError" not in out.stdout + out.stderr
    assert "FAIL  critical daily  gx/sql column_values_to_be_between(net)" in out.stdout
    assert "observed 1 of 40 rows unexpected" in out.stdout and "e.g. -" in out.stdout
    assert "PASS  warning  daily  gx/sql column_mean_to_be_between(n)" in out.stdout


def test_uncovered_expectation_without_gx_is_one_line_exit_2(built: Path):
    write_suite(built, "summary", suite("summary", exp("expect_column_kl_divergence_to_be_less_than",
                                                       column="net", partition_object={}, threshold=0.1)))
    for args in (["check"], ["check", "--engine", "gx", "-s", "daily"], ["materialize", "--all"]):
        out = _no_gx(built, *args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), out.stderr
        assert "pip install 'sqlassets[checks]'" in lines[0] and "Traceback" not in out.stderr


def test_engine_gx_and_auto_agree_and_say_who_ran(built: Path, tmp_path: Path):
    junit = tmp_path / "j.xml"
    auto = invoke(["--project", str(built), "check", "-v", "--junit", str(junit)])
    gx = invoke(["--project", str(built), "check", "-v", "--engine", "gx"])
    assert auto.exit_code == gx.exit_code == 1
    assert "gx/sql" in auto.stdout and "gx/sql" not in gx.stdout
    strip = [ln.replace("gx/sql", "gx") for ln in auto.stdout.splitlines() if ln.startswith(("✗", "✓ PASS"))]
    assert strip == [ln for ln in gx.stdout.splitlines() if ln.startswith(("✗", "✓ PASS"))]
    assert "engine: sql" in junit.read_text()


def test_a_batch_is_one_aggregate_query(tmp_path: Path):
    """All covered expectations of a passing suite: one catalog read plus one query, whatever their number."""
    con = duckdb.connect()
    con.execute("create table t as select range as id, range % 7 as k, 'x' || range as s from range(100)")
    kinds = [("expect_column_values_to_not_be_null", {"column": "id"}),
             ("expect_column_values_to_be_unique", {"column": "id"}),
             ("expect_column_values_to_be_between", {"column": "k", "min_value": 0, "max_value": 6}),
             ("expect_column_values_to_be_in_set", {"column": "k", "value_set": list(range(7))}),
             ("expect_column_median_to_be_between", {"column": "id", "min_value": 0}),
             ("expect_table_row_count_to_equal", {"value": 100}),
             ("expect_column_values_to_match_regex", {"column": "s", "regex": "^x[0-9]+$"}),
             ("expect_column_stdev_to_be_between", {"column": "id", "min_value": 0})]
    exps = tuple(Expectation(type=t, kwargs=k, meta={}, severity="critical", name=t, index=i)
                 for i, (t, k) in enumerate(kinds))
    queries: list[str] = []

    class Counting(DuckDBAccess):
        def query(self, sql: str):
            queries.append(sql)
            return super().query(sql)

    got = evaluate(Suite("t", "checks/t.json", "t", exps), exps, Counting(con),
                   table=sx.table_("t", quoted=True), where=None, partition=None)
    assert [r.status for r in got] == ["pass"] * len(kinds), [r.message for r in got]
    assert len(queries) == 1 and "AS batch" in queries[0]
    # the same suite in another dialect renders (Snowflake / BigQuery adapters run it there)
    from sqlassets.checks.pushdown.expectations import Columns, QueryBuilder, compile_expectation

    b = QueryBuilder()
    cols = Columns(("id", "k", "s"), ("BIGINT", "BIGINT", "VARCHAR"))
    for t, k in kinds:
        compile_expectation(t, k, b, cols)
    for dialect in ("snowflake", "bigquery"):
        sql = sx.select(*b.selects).from_("batch").sql(dialect=dialect)
        assert "FILTER" not in sql and "COUNT(CASE WHEN" in sql


def test_column_types_judged_from_the_catalog():
    """GX cannot read column types through its SQL engine on DuckDB (it errors); the SQL engine judges them
    from the warehouse's catalog, by exact name, name without parameters, or a common alias."""
    con = duckdb.connect()
    con.execute("create table t (i integer, d decimal(10, 2), s varchar, ts timestamp, b boolean, f double)")
    kinds = [("expect_column_values_to_be_of_type", {"column": "i", "type_": "INTEGER"}, "pass"),
             ("expect_column_values_to_be_of_type", {"column": "i", "type_": "int"}, "pass"),
             ("expect_column_values_to_be_of_type", {"column": "d", "type_": "NUMERIC"}, "pass"),
             ("expect_column_values_to_be_of_type", {"column": "d", "type_": "DECIMAL(10,2)"}, "pass"),
             ("expect_column_values_to_be_of_type", {"column": "d", "type_": "DECIMAL(12,2)"}, "fail"),
             ("expect_column_values_to_be_of_type", {"column": "s", "type_": "TEXT"}, "pass"),
             ("expect_column_values_to_be_of_type", {"column": "ts", "type_": "DATE"}, "fail"),
             ("expect_column_values_to_be_in_type_list", {"column": "f", "type_list": ["FLOAT8", "REAL"]}, "pass"),
             ("expect_column_values_to_be_in_type_list", {"column": "b", "type_list": ["INTEGER"]}, "fail"),
             ("expect_column_values_to_be_of_type", {"column": "nope", "type_": "INTEGER"}, "error")]
    exps = tuple(Expectation(type=t, kwargs=k, meta={}, severity="critical", name=f"{i}", index=i)
                 for i, (t, k, _) in enumerate(kinds))
    got = evaluate(Suite("t", "checks/t.json", "t", exps), exps, DuckDBAccess(con),
                   table=sx.table_("t", quoted=True), where=None, partition=None)
    assert [r.status for r in got] == [k[2] for k in kinds], [(r.status, r.message) for r in got]
    assert got[4].observed == "DECIMAL(10,2)" and "observed 'DECIMAL(10,2)'" in got[4].message
