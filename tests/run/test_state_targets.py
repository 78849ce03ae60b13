"""State per target, end to end through the CLI on a real dbt-duckdb project with two targets.

`--target prod` and `--target dev` write different schemas: a backfill on one must leave the other's
partitions missing, and going back to the first is a no-op. Two targets writing the same relations
(same database and schema) share their records, since they share the data.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from conftest import invoke, write_project

PROFILE = """mb:
  target: dev
  outputs:
    dev:  {type: duckdb, path: wh.duckdb, schema: dev}
    prod: {type: duckdb, path: wh.duckdb, schema: prod}
    prod_again: {type: duckdb, path: wh.duckdb, schema: prod, threads: 2}
"""
FILES = {
    "dbt_project.yml": "name: mb\nversion: '1.0'\nprofile: mb\n",
    "profiles.yml": PROFILE,
    "models/sources.yml": "version: 2\nsources:\n  - name: raw\n    schema: raw\n    tables:\n"
                          "      - name: events\n        config:\n          event_time: event_ts\n",
    "models/daily.sql": "{{ config(materialized='incremental', incremental_strategy='microbatch', "
                        "event_time='day', batch_size='day', begin='2024-01-01', "
                        "meta={'sqlassets': {'partitions': {'end': '2024-01-06'}}}) }}\n"
                        "select cast(event_ts as date) as day, count(*) as n from {{ source('raw', 'events') }} "
                        "group by 1\n",
}


def cli(root: Path, *args: str):  # noqa: ANN201
    return invoke(["--project", str(root), *args])


def done(root: Path, target: str) -> int:
    r = cli(root, "--target", target, "status", "-o", "json")
    assert r.exit_code == 0, r.stderr
    (row,) = (a for a in json.loads(r.stdout) if a["asset"] == "daily")
    return int(row["counts"]["done"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "mb", FILES, "create schema raw; create table raw.events as select "
                         "timestamp '2024-01-01' + to_minutes(i * 7) as event_ts from range(1000) t(i)")


def test_a_backfill_on_one_target_leaves_the_other_missing(project: Path) -> None:
    r = cli(project, "--target", "prod", "backfill")
    assert r.exit_code == 0, r.stderr
    assert done(project, "prod") == 5
    assert done(project, "dev") == 0  # dev's schema is empty: nothing there is done
    assert done(project, "prod_again") == 5  # same database and schema as prod: the same records

    r = cli(project, "--target", "dev", "backfill", "--missing")
    assert r.exit_code == 0, r.stderr
    assert done(project, "dev") == 5
    con = duckdb.connect(str(project / "wh.duckdb"), read_only=True)
    try:
        assert con.execute("select count(*) from dev.daily").fetchone()[0] == 5
        assert con.execute("select count(*) from prod.daily").fetchone()[0] == 5
    finally:
        con.close()

    r = cli(project, "--target", "prod", "backfill", "--missing")  # back on prod: nothing to do
    assert r.exit_code == 0, r.stderr
    assert "nothing to" in r.stdout.lower(), r.stdout

    r = cli(project, "--target", "dev", "backfill", "list", "-o", "json")
    (bf,) = json.loads(r.stdout)  # dev sees its own backfill only
    r = cli(project, "--target", "prod", "backfill", "resume", str(bf["id"]))
    assert r.exit_code == 2 and r.stderr.count("\n") == 1
    assert "resume it with the --target it was started on" in r.stderr


def test_target_key_is_where_the_target_writes(tmp_path: Path) -> None:
    from dataclasses import replace

    from sqlassets.project import load_project
    from sqlassets.run.state.config import target_key

    root = write_project(tmp_path / "k", FILES)
    prod, dev, again = (target_key(load_project(root, target=t)) for t in ("prod", "dev", "prod_again"))
    assert prod == again != dev
    assert prod == f"duckdb:{(root / 'wh.duckdb').resolve().as_posix()}/wh/prod"
    project = load_project(root, target="prod")
    ci = replace(project, warehouse=replace(project.warehouse, relocate=((("wh", "prod"), ("wh", "prod_ci")),)))
    assert target_key(ci) != prod  # the CI gate's clone keeps its own records
    sf = replace(project, warehouse=replace(project.warehouse, type="snowflake", path=None, database="ANALYTICS",
                                            schema="DBT_ALICE", options={"account": "XY12345"}))
    assert target_key(sf) == "snowflake:xy12345/analytics/dbt_alice"
