"""`materialize` on a project where one model cannot compile: that model fails with dbt's reason, what
reads it is skipped, and every other model is built (dbt run's behaviour), instead of refusing the run."""

from __future__ import annotations

from pathlib import Path

import duckdb
from conftest import invoke, write_project

FILES = {
    "dbt_project.yml": "name: iso\nversion: '1.0'\nprofile: iso\nmodels:\n  iso:\n    +materialized: table\n",
    "profiles.yml": "iso:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n",
    "models/good.sql": "select 1 as id\n",
    # Parses fine (execute is false at parse time), fails only when dbt compiles it.
    "models/broken.sql": "{% if execute %}{{ exceptions.raise_compiler_error('no such column mapping') }}{% endif %}\n"
                         "select 2 as id\n",
    "models/reads_broken.sql": "select * from {{ ref('broken') }}\n",
    "models/reads_good.sql": "select id + 1 as id from {{ ref('good') }}\n",
}


def test_one_model_that_cannot_compile_fails_alone(tmp_path: Path) -> None:
    root = write_project(tmp_path / "iso", FILES)
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 1, res.stdout + res.stderr
    assert "cannot compile 'broken': " in res.stdout and "no such column mapping" in res.stdout
    assert "2 done, 1 failed, 1 skipped" in res.stdout
    con = duckdb.connect(str(root / "wh.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
    finally:
        con.close()
    assert {"good", "reads_good"} <= tables and not {"broken", "reads_broken"} & tables
