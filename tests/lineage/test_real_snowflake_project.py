"""A Snowflake dbt project with no reachable account (tests/fixtures/snow_shop): lineage offline.

Real `dbt parse` and `dbt compile` with dbt-snowflake and a Snowflake profile whose account does not
exist: every model that compiles offline gets lineage in the Snowflake dialect (QUALIFY, LATERAL FLATTEN,
`:` paths, `::` casts, IFF, adapter-dispatched macros), sources without columns are inferred through the
staging CTE pattern, and the model whose macro queries the warehouse while compiling is listed with
that reason; nothing takes the other models down. The profile's password is never written anywhere.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sqlassets.lineage.build import build_lineage
from sqlassets.lineage.stats import collect
from sqlassets.loaders import load_graph
from sqlassets.project import load_project

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "snow_shop"
PASSWORD = "hunter2-snow-shop-4711"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    pytest.importorskip("dbt.adapters.snowflake", reason="dbt-snowflake (the snowflake extra) is not installed")
    root = tmp_path_factory.mktemp("snow") / "snow_shop"
    shutil.copytree(FIXTURE, root)
    mp = pytest.MonkeyPatch()
    mp.setenv("SNOW_SHOP_PASSWORD", PASSWORD)
    try:
        project = load_project(root)
        graph = load_graph(project)
        yield root, graph, build_lineage(project, graph)
    finally:
        mp.undo()


def test_dialect_comes_from_the_adapter(built) -> None:
    _root, graph, _b = built
    assert {a.dialect for a in graph} == {"snowflake"}


def test_offline_lineage_for_every_model_that_compiles(built) -> None:
    _root, graph, b = built
    cg = b.columns
    data = collect(b)
    failed = {row["asset"]: row["reason"] for row in data["unresolved_assets"]}
    assert list(failed) == ["orders_by_status"]
    assert failed["orders_by_status"].startswith("needs a live warehouse to compile")
    models = {a.key for a in graph if a.kind == "model"} - set(failed)
    statuses = [i.status for i in cg.info if i.asset in models]
    ok = sum(s in ("resolved", "inferred") for s in statuses)
    assert statuses and ok / len(statuses) >= 0.85, statuses
    # FLATTEN + `:` path + `::` cast, through the staging CTEs, to the source's inferred VARIANT column
    up = {r.column: r.edge for r in cg.walk(cg.resolve("stg_events.sku"), "upstream")}
    assert up == {"shop.events.payload": "transform"}
    # QUALIFY: the partition / order columns filter the rows
    up = {r.column: r.edge for r in cg.walk(cg.resolve("latest_orders.amount"), "upstream", depth=1)}
    assert up["stg_orders.amount"] == "copy" and up["stg_orders.ordered_at"] == "filter"
    # an adapter-dispatched macro compiled by dbt-snowflake (dateadd) parses as Snowflake SQL
    up = {r.column for r in cg.walk(cg.resolve("stg_orders.due_at"), "upstream")}
    assert up == {"shop.orders.created_at"}
    assert "not queried by lineage" in b.stats.catalog


def test_the_password_is_never_written(built) -> None:
    root, _graph, _b = built
    hits = [str(Path(d) / f) for d, _, files in os.walk(root) for f in files
            if PASSWORD.encode() in (Path(d) / f).read_bytes()]
    assert hits == []
