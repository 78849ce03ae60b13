"""Models whose compile queries the warehouse are compiled in the run, after their parents are built.

tests/fixtures/jaffle_duck (real dbt, a dbt_utils-style package, real DuckDB): `order_facts` selects
`tools.star(ref('orders'), except=[...])` and `product_type_pivot` pivots on
`tools.column_values(ref('stg_products_snapshot'), ...)`. Both parents are built by the same run. Compiled
up front, star would see no `orders` (and fall back to `*`, excepted columns included) and column_values
would fail (no table yet); compiled after their parents, as `dbt run` does, both see the real tables.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import duckdb
import pytest

import sqlassets.dbt.compile as compile_mod
from sqlassets.loaders import load_graph
from sqlassets.project import load_project
from sqlassets.run.executor import RunRequest, execute_request

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jaffle_duck"
RAW_TABLES = (FIXTURE.parent / "jaffle_duck_raw.sql").read_text()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    dest = tmp_path / "jaffle_duck"
    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("target", ".sqlassets", "*.duckdb*", "logs"))
    con = duckdb.connect(str(dest / "jaffle.duckdb"))
    con.execute(RAW_TABLES)
    con.close()
    return dest


def columns(root: Path, table: str) -> list[str]:
    con = duckdb.connect(str(root / "jaffle.duckdb"), read_only=True)
    try:
        return [r[0] for r in con.execute(f"describe {table}").fetchall()]
    finally:
        con.close()


def materialize(root: Path, monkeypatch: pytest.MonkeyPatch, **request: object) -> list[list[str]]:
    """One materialize, in-process; returns the models of each dbt compile it ran, in order."""
    calls: list[list[str]] = []
    real = compile_mod._run_dbt_compile

    def counting(project_, assets, **kw):
        calls.append(sorted(a.key for a in assets))
        return real(project_, assets, **kw)

    monkeypatch.setattr(compile_mod, "_run_dbt_compile", counting)
    project = load_project(root)
    lines: list[str] = []
    _plan, summary = execute_request(project, load_graph(project), RunRequest(**request), echo=lines.append)
    assert summary is not None and summary.status == "success", (summary, lines)
    return calls


def test_one_run_from_an_empty_warehouse_builds_every_model(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = materialize(root, monkeypatch)
    # one dbt compile for everything that does not introspect, then one per introspecting model, each
    # after its parents were built (DAG order: orders before order_facts' compile)
    late = [c for c in calls[1:]]
    assert sorted(late) == [["order_facts"], ["product_type_pivot"]], calls
    assert not {"order_facts", "product_type_pivot"} & set(calls[0]) and "orders" in calls[0]
    # star saw `orders` as built: every column but the excepted ones (the `*` fallback would keep them)
    facts = columns(root, "order_facts")
    assert "order_total" in facts and "tax_and_fees" in facts
    assert "subtotal_cents" not in facts and "tax_paid_cents" not in facts
    assert "subtotal_cents" in columns(root, "orders")
    # column_values read stg_products_snapshot as built in this run (it did not exist before)
    assert {"jaffle_price", "beverage_price"} <= set(columns(root, "product_type_pivot"))
    assert "product_type_report" in {r[0] for r in duckdb.connect(str(root / "jaffle.duckdb"), read_only=True)
                                     .execute("select table_name from information_schema.tables").fetchall()}


def test_a_column_added_to_a_parent_in_the_run_reaches_the_star(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    materialize(root, monkeypatch)
    path = root / "models" / "marts" / "orders.sql"
    time.sleep(0.01)
    path.write_text(path.read_text().replace("    regions.region\n", "    regions.region,\n    1 as loyalty_points\n"))
    calls = materialize(root, monkeypatch, select=["orders+"], mode="stale")
    assert ["order_facts"] in calls
    assert "loyalty_points" in columns(root, "orders")
    facts = columns(root, "order_facts")
    assert "loyalty_points" in facts and "subtotal_cents" not in facts


def test_nothing_introspecting_downstream_keeps_one_compile(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = materialize(root, monkeypatch, exclude=["order_facts", "product_type_pivot+"])
    assert len(calls) == 1  # the common path: one dbt compile up front, none during the run
