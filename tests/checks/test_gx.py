"""Real GX 1.x validations on DuckDB: a failing suite reports real observed values, a passing one passes,
an erroring expectation is `error`, and the DuckDB trap (GX fetching after its connection closed) is shown
to exist with a plain GX datasource and to be handled by ours."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from checks_support import make_shop_checks

from sqlassets.checks.gx import validate_suite
from sqlassets.checks.specs import Expectation, Suite


def _suite(*exps: tuple[str, str, dict]) -> Suite:
    return Suite(asset="t", path="checks/t.json", name="t", expectations=tuple(
        Expectation(type=t, kwargs=kw, meta={}, severity=sev, name=f"{t}#{i}", index=i)
        for i, (t, sev, kw) in enumerate(exps)))


@pytest.fixture
def table(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """1,000 rows: id 0..999, k = id % 7 (0..6), s null on every 10th row."""
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("create table main.t as select range as id, cast(range % 7 as integer) as k, "
                "case when range % 10 = 0 then null else 'x' end as s from range(1000)")
    yield con
    con.close()


def test_failing_suite_reports_real_observed_values(table):
    results = validate_suite(_suite(
        ("expect_column_values_to_not_be_null", "critical", {"column": "s"}),
        ("expect_column_values_to_be_between", "warning", {"column": "k", "min_value": 0, "max_value": 5}),
        ("expect_column_max_to_be_between", "critical", {"column": "k", "min_value": 0, "max_value": 3}),
        ("expect_table_row_count_to_equal", "info", {"value": 999}),
    ), table, relation=(None, "main", "t"))
    assert [r.status for r in results] == ["fail"] * 4
    nulls, between, maxv, rows = results
    assert nulls.observed == 100 and nulls.details["element_count"] == 1000 and nulls.column == "s"
    assert nulls.blocking and nulls.expected == "s not null"
    assert between.observed == 142  # ids with id % 7 == 6
    assert set(between.details["sample"]) == {6} and not between.blocking
    assert "142 of 1000 rows unexpected" in between.message and "between 0 and 5" in between.message
    assert maxv.observed == 6 and maxv.blocking
    assert rows.observed == 1000 and rows.severity == "info"


def test_passing_suite_passes(table):
    results = validate_suite(_suite(
        ("expect_column_values_to_be_between", "critical", {"column": "k", "min_value": 0, "max_value": 6}),
        ("expect_column_values_to_be_unique", "critical", {"column": "id"}),
        ("expect_table_row_count_to_be_between", "critical", {"min_value": 1, "max_value": 5000}),
        ("expect_column_values_to_be_in_set", "critical", {"column": "s", "value_set": ["x"]}),
    ), table, relation=(None, "main", "t"))
    assert [r.status for r in results] == ["pass"] * 4
    assert results[0].observed == 0 and results[2].observed == 1000
    assert not any(r.blocking for r in results)


def test_erroring_expectations_are_errors_not_failures(table):
    results = validate_suite(_suite(
        ("expect_column_values_to_not_be_null", "critical", {"column": "no_such_column"}),
        ("expect_column_values_to_be_between", "critical", {"column": "k", "min_valu": 0}),  # bad kwarg
        ("expect_the_moon", "warning", {"column": "k"}),  # unknown type
        ("expect_column_values_to_not_be_null", "critical", {"column": "id"}),  # still runs and passes
    ), table, relation=(None, "main", "t"))
    assert [r.status for r in results] == ["error", "error", "error", "pass"]
    assert "no_such_column" in results[0].message
    assert "min_valu" in results[1].message
    assert "expect_the_moon not found" in results[2].message
    assert results[0].blocking and not results[2].blocking  # a critical error blocks, a warning one does not


def test_missing_table_errors_every_expectation(table):
    results = validate_suite(_suite(("expect_column_values_to_not_be_null", "critical", {"column": "x"})),
                             table, relation=(None, "main", "nope"))
    assert results[0].status == "error" and results[0].blocking


def test_partition_filter_limits_rows(table):
    results = validate_suite(_suite(("expect_table_row_count_to_equal", "critical", {"value": 100})),
                             table, relation=(None, "main", "t"), where='"id" < 100', partition="p")
    assert results[0].status == "pass" and results[0].observed == 100 and results[0].partition == "p"


def test_the_duckdb_trap_exists_with_a_plain_gx_datasource(tmp_path: Path):
    """Why gx.py exists: GX's own duckdb datasource reports every expectation failed with an IndexError,
    while ours, on the same file, passes with the real observed value."""
    import great_expectations as gx

    db = tmp_path / "trap.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table t as select range as id from range(10)")
    con.close()
    con = duckdb.connect(str(db), read_only=True)
    try:
        ours = validate_suite(_suite(("expect_table_row_count_to_equal", "critical", {"value": 10})), con,
                              relation=(None, "main", "t"))
    finally:
        con.close()
    assert ours[0].status == "pass" and ours[0].observed == 10
    ctx = gx.get_context(mode="ephemeral")
    ds = ctx.data_sources.add_sql(name="plain", connection_string=f"duckdb:///{db}")
    batch = ds.add_table_asset(name="t", table_name="t").add_batch_definition_whole_table("b").get_batch()
    res = batch.validate(gx.expectations.ExpectTableRowCountToEqual(value=10))
    assert not res.success
    assert "list index out of range" in str(res.exception_info)


def test_runs_on_a_cursor_of_a_writers_connection(tmp_path: Path):
    """The hook validates through the executor's own connection: committed rows are visible, no 2nd open."""
    root = make_shop_checks(tmp_path / "p", bad_day=None)
    con = duckdb.connect(str(root / "warehouse.duckdb"))  # read-write, as the executor holds it
    try:
        con.execute("create table main.fresh as select * from raw.events")
        results = validate_suite(_suite(("expect_table_row_count_to_equal", "critical", {"value": 200})), con,
                                 relation=(None, "main", "fresh"))
    finally:
        con.close()
    assert results[0].status == "pass"
