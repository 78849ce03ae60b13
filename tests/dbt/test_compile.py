"""dbt models compiled once (real dbt), cached in the state dir, never per partition; then run for real."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from conftest import write_project

import sqlassets.dbt.compile as compile_mod
from sqlassets.loaders import load_graph
from sqlassets.project import load_project
from sqlassets.run.executor import RunRequest, execute_request

PROJECT = {
    "dbt_project.yml": "name: mb\nversion: '1.0'\nprofile: mb\nmodels:\n  mb:\n    +materialized: view\n",
    "profiles.yml": "mb:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n"
                    "      threads: 1\n",
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
                          "      - name: events\n        config:\n          event_time: event_ts\n",
    "models/stg_events.sql": "select event_ts, customer_id, amount from {{ source('raw', 'events') }}",
    "models/fct_daily.sql": (
        "{{ config(materialized='incremental', incremental_strategy='microbatch', event_time='day', "
        "batch_size='day', begin='2024-01-01', lookback=1) }}\n"
        "select cast(event_ts as date) as day, customer_id, sum(amount) as net, count(*) as n\n"
        "from {{ source('raw', 'events') }}\n{% if is_incremental() %}where true{% endif %}\ngroup by 1, 2\n"),
    "models/by_window.sql": (
        "{{ config(materialized='incremental', meta={'sqlassets': {'partitions': {'type': 'daily', "
        "'column': 'day', 'start': '2024-01-01', 'end': '2024-01-08'}}}) }}\n"
        "select day, sum(net) as net from {{ ref('fct_daily') }}\n"
        "where day >= '{{ var(\"window_start\", \"2024-01-01\") }}' and day < '{{ var(\"window_end\", \"2100-01-01\") }}'\n"
        "group by 1\n"),
    "models/totals.sql": "{{ config(materialized='table') }}\nselect customer_id, sum(net) as net from {{ ref('fct_daily') }} group by 1\n",
}


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("mb") / "mb", PROJECT,
                         "create schema raw; create table raw.events as select timestamp '2024-01-01' + interval "
                         "(i * 17) minute as event_ts, i % 7 as customer_id, (i % 100) / 4.0 as amount "
                         "from range(5000) t(i)")


def test_compiled_once_then_cached_and_no_warehouse_lock(project_root: Path, monkeypatch) -> None:
    project = load_project(project_root)
    graph = load_graph(project)
    calls: list[list[str]] = []
    real = compile_mod._run_dbt_compile

    def counting(project_, assets, **kw):
        calls.append(sorted(a.key for a in assets))
        return real(project_, assets, **kw)

    monkeypatch.setattr(compile_mod, "_run_dbt_compile", counting)
    # Another process holds the warehouse: compiling must not need it.
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(project_root / 'wh.duckdb')!r}); "
                               "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        sql = compile_mod.compiled_sql(project, graph, ["fct_daily", "by_window", "totals", "stg_events"])
    finally:
        holder.kill()
        holder.wait()
    assert calls == [["by_window", "fct_daily", "stg_events", "totals"]]  # one dbt invocation for all
    assert '"wh"."raw"."events"' in sql["fct_daily"] and "where true" not in sql["fct_daily"]  # --full-refresh
    assert "'__sqlassets_window_start__'" in sql["by_window"]
    again = compile_mod.compiled_sql(project, graph, ["fct_daily", "by_window", "totals", "stg_events"])
    assert again == sql and len(calls) == 1
    # a changed model recompiles that model only
    path = project_root / "models" / "totals.sql"
    path.write_text(path.read_text().replace("sum(net)", "sum(net) * 1"))
    graph2 = load_graph(load_project(project_root))
    compile_mod.compiled_sql(load_project(project_root), graph2, ["fct_daily", "totals"])
    assert calls[-1] == ["totals"]


def test_materialize_dbt_models_by_partition(project_root: Path) -> None:
    project = load_project(project_root)
    graph = load_graph(project)
    lines: list[str] = []
    plan, summary = execute_request(project, graph, RunRequest(partitions="2024-01-01..2024-01-07"),
                                    echo=lines.append)
    assert summary.status == "success", summary.failures
    con = duckdb.connect(str(project_root / "wh.duckdb"), read_only=True)
    got = con.execute("select day, customer_id, net, n from fct_daily order by 1, 2").fetchall()
    want = con.execute("select cast(event_ts as date), customer_id, sum(amount), count(*) from raw.events "
                       "where event_ts < timestamp '2024-01-08' group by 1, 2 order by 1, 2").fetchall()
    by_window = con.execute("select count(*), sum(net) from by_window").fetchone()
    total = con.execute("select sum(net) from totals").fetchone()[0]
    con.close()
    assert got == want
    assert by_window == (7, sum(r[2] for r in want)) and total == sum(r[2] for r in want)


def test_package_models_compile_too(shop_copy: Path) -> None:
    """A package model's path is relative to its package, so `path:` alone never selects it in dbt."""
    project = load_project(shop_copy)
    graph = load_graph(project)
    assert graph["calendar_days"].package == "shared_pkg"
    sql = compile_mod.compiled_sql(project, graph, ["calendar_days", "shared_pkg.stg_customers", "shop.stg_customers"])
    assert "range(" in sql["calendar_days"].lower()
    assert "'shared' as origin" in sql["shared_pkg.stg_customers"]
    assert "'shared'" not in sql["shop.stg_customers"]


def test_whole_project_compile_caches_every_model(project_root: Path, monkeypatch) -> None:
    """Past the threshold dbt compiles the whole project in one selection; every model lands in the cache."""
    project = load_project(project_root)
    graph = load_graph(project)
    monkeypatch.setattr(compile_mod, "_SELECT_ALL_FROM", 1)
    calls: list[bool] = []
    real = compile_mod._run_dbt_compile

    def spy(project_, assets, **kw):
        calls.append(kw.get("whole_project", False))
        return real(project_, assets, **kw)

    monkeypatch.setattr(compile_mod, "_run_dbt_compile", spy)
    got = compile_mod.compile_assets(project, graph, ["totals"], use_cache=False)
    assert calls == [True] and set(got.sql) == {"totals"} and not got.failed
    rest = compile_mod.compile_assets(project, graph, ["fct_daily", "by_window", "stg_events"])
    assert calls == [True] and set(rest.origin.values()) == {"cache"}
