"""A project shaped like a real public DuckDB dbt project (tests/fixtures/jaffle_duck), never run by hand.

What it mirrors: a dbt_utils-style package in dbt_packages/ whose macros query the warehouse while
compiling (`star`, a date spine, `column_values`), sources without declared columns read through the
staging CTE pattern, a seed, semantic models, a metric and a MetricFlow time spine. Real `dbt parse`, real
`dbt compile`, real DuckDB; nothing mocked.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

import sqlassets.dbt.compile as compile_mod
from sqlassets.lineage.build import build_lineage
from sqlassets.lineage.stats import collect
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "jaffle_duck"
SECRET = "sekrit-token-4711"
RAW_TABLES = (FIXTURE.parent / "jaffle_duck_raw.sql").read_text()


def _copy(dest: Path) -> Path:
    import shutil

    shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("target", ".sqlassets", "*.duckdb*", "logs"))
    return dest


@pytest.fixture(scope="module")
def cold(tmp_path_factory: pytest.TempPathFactory):
    """One cold lineage build with no warehouse at all (no catalog, sources without columns)."""
    root = _copy(tmp_path_factory.mktemp("jd") / "jaffle_duck")
    project = load_project(root)
    graph = load_graph(project)
    built = build_lineage(project, graph)
    return root, project, graph, built


def _coverage(built, graph) -> tuple[int, int]:
    cg = built.columns
    models = {a.key for a in graph if a.kind == "model"}
    ok = total = 0
    for info in cg.info:
        if info.asset in models:
            total += 1
            ok += info.status in ("resolved", "inferred")
    for key in models:  # a model that could not be compiled counts as all-unresolved, whatever its size
        rec = cg.assets.get(key)
        if rec is not None and "*" in rec.unresolved and not rec.columns:
            total += 1
    return ok, total


def test_cold_lineage_without_warehouse_resolves_the_staging_pattern(cold) -> None:
    _root, _project, graph, built = cold
    cg = built.columns
    ok, total = _coverage(built, graph)
    assert ok / total >= 0.95, (ok, total)
    # the staging CTE pattern over a source without columns: inferred on the source, carried downstream
    up = {r.column: r.edge for r in cg.walk(cg.resolve("stg_customers.customer_name"), "upstream")}
    assert up == {"ecom.raw_customers.name": "copy"}
    assert cg.info[cg.resolve("ecom.raw_customers.name")].status == "inferred"
    assert cg.info[cg.resolve("stg_customers.customer_name")].status == "inferred"
    assert "read through 'source'" in cg.info[cg.resolve("stg_customers.customer_name")].note
    # a mart column computed from it is resolved by its own SQL, and its whole upstream reaches the source
    assert cg.info[cg.resolve("customers.lifetime_spend")].status == "resolved"
    far = {r.column for r in cg.walk(cg.resolve("customers.lifetime_spend"), "upstream")}
    assert {"orders.order_total", "stg_orders.order_total", "ecom.raw_orders.subtotal", "ecom.raw_orders.tax_paid"} <= far
    # a macro that queries the warehouse at compile time ran against the scratch catalog
    assert cg.info[cg.resolve("metricflow_time_spine.date_day")].status == "resolved"


def test_one_model_failing_to_compile_takes_no_other_down(cold) -> None:
    _root, _project, graph, built = cold
    data = collect(built)
    failed = {row["asset"]: row["reason"] for row in data["unresolved_assets"]}
    assert list(failed) == ["product_type_pivot"], failed
    assert "stg_products_snapshot" in failed["product_type_pivot"] and "does not exist" in failed["product_type_pivot"]
    # its child compiles (ref() to a view needs no compile of the parent) and its columns are followed
    assert built.columns.assets["product_type_report"].columns == ("product_id", "n")
    assert "product_type_pivot.product_id" in built.columns.index  # inferred from the child's SQL


def test_warm_run_does_not_retry_the_failure_and_no_cache_does(cold, monkeypatch) -> None:
    _root, project, graph, _built = cold
    calls: list[int] = []
    real = compile_mod._run_dbt_compile

    def counting(project_, assets, **kw):
        calls.append(len(assets))
        return real(project_, assets, **kw)

    monkeypatch.setattr(compile_mod, "_run_dbt_compile", counting)
    keys = [a.key for a in graph if a.kind == "model"]
    warm = compile_mod.compile_assets(project, graph, keys)
    assert calls == [] and "product_type_pivot" in warm.failed and len(warm.sql) == len(keys) - 1
    retried = compile_mod.compile_assets(project, graph, ["product_type_pivot"], use_cache=False)
    assert calls == [1] and "product_type_pivot" in retried.failed


def test_dialect_follows_the_adapter(cold) -> None:
    _root, _project, graph, _built = cold
    assert {a.dialect for a in graph} == {"duckdb"}


def _cli(root: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sqlassets", "--project", str(root), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_materialize_and_secrets_never_on_disk(tmp_path: Path) -> None:
    """Issue 8.2: a profile secret from env_var() is never written anywhere, and nothing is world-readable."""
    root = _copy(tmp_path / "jaffle_duck")
    con = duckdb.connect(str(root / "jaffle.duckdb"))
    con.execute(RAW_TABLES)
    con.close()
    env = {**os.environ, "JAFFLE_TOKEN": SECRET}
    env.pop("SQLASSETS_DEBUG", None)
    first = _cli(root, "materialize", "--exclude", "product_type_pivot+", env=env)
    assert first.returncode == 0, first.stderr + first.stdout
    # the warehouse now holds stg_products_snapshot: the failed model's inputs changed, so it compiles
    second = _cli(root, "materialize", "--select", "product_type_pivot+", env=env)
    assert second.returncode == 0, second.stderr + second.stdout
    con = duckdb.connect(str(root / "jaffle.duckdb"), read_only=True)
    cols = [r[0] for r in con.execute("describe product_type_pivot").fetchall()]
    n_customers = con.execute("select count(*) from customers").fetchone()[0]
    con.close()
    assert {"jaffle_price", "beverage_price"} <= set(cols) and n_customers == 20
    for args in (["lineage", "--stats"], ["lineage", "--report", str(root / "out" / "lineage.html")],
                 ["check", "--junit", str(root / "out" / "junit.xml")], ["runs"]):
        _cli(root, *args, env=env)  # outcome irrelevant here: only what they leave on disk
    hits, readable = [], []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            if SECRET.encode() in path.read_bytes():
                hits.append(str(path))
            if ".sqlassets" in path.parts or "out" in path.parts:
                if path.stat().st_mode & stat.S_IROTH:
                    readable.append(str(path))
    assert hits == [] and readable == []
    # the scratch profile keeps the expression, for dbt to render from the environment
    scratch = (root / ".sqlassets" / "compile" / "profiles.yml").read_text()
    assert "env_var(" in scratch and "JAFFLE_TOKEN" in scratch


def test_two_processes_compiling_at_once_do_not_collide(tmp_path: Path) -> None:
    """Issue 8.4: two runs needing `dbt compile` at once (scratch DuckDB lock) both succeed."""
    root = _copy(tmp_path / "jaffle_duck")
    load_graph(load_project(root))  # parse once, so both children go straight to compiling
    code = (
        "import sys; from sqlassets.project import load_project; from sqlassets.loaders import load_graph\n"
        "from sqlassets.dbt.compile import compile_assets\n"
        f"p = load_project({str(root)!r}); g = load_graph(p)\n"
        "r = compile_assets(p, g, [a.key for a in g if a.kind == 'model'], use_cache=False)\n"
        "print(len(r.sql), sorted(r.failed))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.strip() == "10 ['product_type_pivot']", out + err[-2000:]
