"""Checks of many partitions in one grouped query give exactly the per-partition results.

`evaluate_grouped` judges a run's finished partitions together (one query, grouped by partition window);
every result it returns must equal what `evaluate` gives on that partition's own query - status,
observed value, counts, unexpected values, message - for every covered expectation type, on random
tables with nulls, ties, decimals, doubles, unicode, empty partitions, DATE and TIMESTAMP partition
columns. In a run, the grouped path must record the same per-partition results in state as checking
each partition on its own, and a failing blocking check must still stop its partition's downstream.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest
from checks_support import exp, make_shop_checks, suite, write_suite
from conftest import invoke
from sqlglot import exp as sx
from test_pushdown_differential import _suite, _table_rows, expectations_for

from sqlassets.checks.pushdown.evaluate import DuckDBAccess, evaluate, evaluate_grouped
from sqlassets.project import load_project
from sqlassets.run.state import StateStore

DAYS = 10


def _comparable(results: list[Any]) -> list[tuple]:
    """Everything a result records, except how long it took."""
    return [(r, {k: v for k, v in r.details.items() if k != "seconds"}) for r in results]


def _make_table(con: Any, name: str, rows: list[tuple]) -> None:
    """The differential test's table (same columns and conversions), loaded in one statement."""
    con.execute(f'create table "{name}" (i integer, d decimal(10, 2), f double, s varchar, ts timestamp, '
                'dt date, k1 integer, k2 varchar, j integer)')
    con.executemany(f'insert into "{name}" values (?, ?, ?, ?, to_timestamp(?)::timestamp, '
                    'cast(to_timestamp(?) as date), ?, ?, ?)',
                    [[i, d, f, s, ts, ts, k1, k2, j] for i, d, f, s, ts, k1, k2, j in rows])


def _scopes(kind: str) -> list[tuple[str, str, str, sx.Expression]]:
    out = []
    for i in range(DAYS):
        start, end = dt.date(2024, 1, 1) + dt.timedelta(i), dt.date(2024, 1, 2) + dt.timedelta(i)
        if kind == "TIMESTAMP":
            s, e = f"{start} 00:00:00", f"{end} 00:00:00"
            column = "ts"
        else:
            s, e = start.isoformat(), end.isoformat()
            column = "dt"
        c = sx.column(column, quoted=True)
        pred = sx.and_(sx.GTE(this=c, expression=sx.cast(sx.Literal.string(s), kind)),
                       sx.LT(this=c.copy(), expression=sx.cast(sx.Literal.string(e), kind)))
        out.append((start.isoformat(), s, e, pred))
    return out


@pytest.mark.parametrize("kind", ["DATE", "TIMESTAMP"])
def test_grouped_results_equal_per_partition_results(kind: str) -> None:
    con = duckdb.connect(config={"threads": 1})
    rng = random.Random(11 if kind == "DATE" else 12)
    compared = grouped = 0
    types: set[str] = set()
    try:
        for t in range(2):
            # ~12 rows a day over 40 days; one checked day emptied below
            rows = _table_rows(rng, 480)
            rows += rows[:40]  # ties
            name = f"g{t}"
            _make_table(con, name, rows)
            con.execute(f"delete from {name} where dt = date '2024-01-0{3 + t}'")  # an empty partition
            docs = [d for d in expectations_for(rng, rows) if "nope" not in str(d["kwargs"].get("column"))]
            suites = [_suite(name, docs)] + [_suite(name, [d]) for d in docs]
            table = sx.table_(name, quoted=True)
            column = "dt" if kind == "DATE" else "ts"
            scopes = _scopes(kind)
            for s in suites:
                access = DuckDBAccess(con, cache={})
                got = evaluate_grouped(s, s.expectations, access, table=table, column=column, kind=kind,
                                       scopes=[(label, a, b) for label, a, b, _ in scopes])
                for label, _a, _b, pred in scopes:
                    compared += 1
                    if label not in got:
                        continue  # left to its own query: `evaluate` itself, in the runner
                    grouped += 1
                    types.update(e.type for e in s.expectations)
                    want = evaluate(s, s.expectations, access, table=table, where=pred, partition=label)
                    assert _comparable(got[label]) == _comparable(want), (s.expectations, label)
    finally:
        con.close()
    # the grouped query must judge most partitions itself (the rest: no rows, or unexpected rows to list)
    assert grouped >= compared // 3, (grouped, compared)  # the rest have unexpected rows to list
    # the shapes with helper queries (duplicates, medians) are grouped too, not only plain aggregates
    assert {"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique",
            "expect_column_median_to_be_between", "expect_column_stdev_to_be_between"} <= types
    print(f"{kind}: {grouped} of {compared} partition checks judged by the grouped query")


def _check_rows(root: Path) -> list[tuple]:
    """Every stored check result in the order recorded, with its details except the time it took."""
    with StateStore(load_project(root).state_dir) as st:
        rows = st._q("select asset, check_name, partition, status, severity, blocking, column_name, observed, "
                     "expected, message, source, details from check_results order by id")
    out = []
    for r in rows:
        details = {k: v for k, v in json.loads(r[-1]).items() if k != "seconds"}
        out.append((*r[:-1], details))
    return out


def test_a_run_records_the_same_results_grouped_or_one_partition_at_a_time(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlassets.checks.pushdown.evaluate as evaluate_module
    from sqlassets.checks.runner import CheckRunner

    judged: list[str] = []
    original = evaluate_module.evaluate_grouped

    def counting(*args: Any, **kwargs: Any) -> dict:
        out = original(*args, **kwargs)
        judged.extend(out)
        return out

    monkeypatch.setattr(evaluate_module, "evaluate_grouped", counting)
    recorded = []
    for group in (64, 1):
        monkeypatch.setattr(CheckRunner, "group_size", group)
        root = make_shop_checks(tmp_path / f"g{group}")
        write_suite(root, "daily", suite(
            "daily",
            exp("expect_column_values_to_be_between", "warning", column="net", min_value=0),
            exp("expect_column_values_to_not_be_null", "critical", column="customer_id"),
            exp("expect_compound_columns_to_be_unique", "critical", column_list=["day", "customer_id"]),
            exp("expect_table_row_count_to_be_between", "critical", min_value=1),
            exp("expect_column_mean_to_be_between", "info", column="net", min_value=0),
            exp("expect_column_median_to_be_between", "info", column="net", min_value=-1000),
        ))
        res = invoke(["--project", str(root), "backfill", "--all"])
        assert res.exit_code == 0, res.stdout + res.stderr
        assert "WARN" in res.stdout + res.stderr and "2024-01-03" in res.stdout + res.stderr
        recorded.append(_check_rows(root))
    # grouped: the four clean days judged by the grouped query; day 3 (net < 0 to list) by its own query
    assert sorted(judged) == ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"]
    assert recorded[0] == recorded[1]
    assert len(recorded[0]) == 5 * 6 and {r[2] for r in recorded[0]} == {f"2024-01-0{d}" for d in range(1, 6)}


def test_a_failing_blocking_check_still_stops_downstream_when_grouped(tmp_path: Path) -> None:
    from sqlassets.checks.runner import CheckRunner

    assert CheckRunner.group_size > 1  # the default path is the grouped one
    root = make_shop_checks(tmp_path / "p")
    write_suite(root, "daily", suite(
        "daily", exp("expect_column_values_to_be_between", "critical", column="net", min_value=0),
        exp("expect_table_row_count_to_be_between", "critical", min_value=1)))
    res = invoke(["--project", str(root), "materialize"])
    out = res.stdout + res.stderr
    assert res.exit_code == 1, out
    assert "blocking check failed" in out and "2024-01-03" in out
    with StateStore(load_project(root).state_dir) as st:
        mats = st.materializations("daily")
        assert {k for k, m in mats.items() if m.done} == {"2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"}
        assert not any(m.done for m in st.materializations("summary").values())
        steps = st._q("select asset, partition, status from steps order by asset, partition")
    assert ("summary", "2024-01", "skipped") in {tuple(s) for s in steps} or \
        any(s[0] == "summary" and s[2] == "skipped" for s in steps)
