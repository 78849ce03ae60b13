"""Strategies on real DuckDB: partition replace, merge, table swap, view, seed, schema drift."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from sqlassets.adapters.duckdb import DuckDBAdapter
from sqlassets.errors import UserError
from sqlassets.model import Asset, Relation
from sqlassets.project import Warehouse
from sqlassets.run.partitions import make_time_def, partitions_def
from sqlassets.run.strategies import Materializer, type_compatible
from sqlassets.run.windows import prepare_select


@pytest.fixture
def adapter(tmp_path: Path):
    a = DuckDBAdapter(Warehouse(type="duckdb", path=tmp_path / "wh.duckdb"))
    s = a.session()
    s.execute("CREATE SCHEMA raw")
    s.execute("CREATE TABLE raw.src AS SELECT DATE '2024-01-01' + CAST(i % 5 AS INTEGER) AS day, i AS id, i * 10 AS v "
              "FROM range(50) t(i)")
    yield a
    a.close()


def materializer(adapter, key: str, sql: str, *, full_refresh: bool = False, tmp: Path | None = None, **config):
    mat = config.pop("materialized", "incremental")
    asset = Asset(key, "sql", Relation("wh", "main", key), mat, raw_sql=sql, config={"materialized": mat, **config},
                  path=config.pop("path", None))
    pdef = partitions_def(asset)
    prepared = prepare_select(asset, sql, pdef=pdef) if mat != "seed" else None
    return Materializer(asset, pdef, adapter, prepared, full_refresh=full_refresh, root=tmp)


DAILY = {"partitioned": "daily", "partition_column": "day", "partition_start": "2024-01-01",
         "partition_end": "2024-01-06"}


def write(adapter, m: Materializer, keys) -> int | None:
    s = adapter.session()
    m.prepare(s, keys)
    return m.write(s, keys).rows


def q(adapter, sql: str):
    return adapter.session().query(sql)


def test_partition_replace_creates_from_first_partition_and_replaces_windows(adapter) -> None:
    m = materializer(adapter, "t", "select day, id, v from raw.src where day >= :window_start and day < :window_end",
                     **DAILY)
    assert write(adapter, m, ["2024-01-02"]) == 10
    assert write(adapter, m, ["2024-01-03"]) == 10
    assert write(adapter, m, ["2024-01-02"]) == 10  # idempotent: replaced, not doubled
    assert q(adapter, "select count(*), count(distinct day) from t") == [(20, 2)]
    assert write(adapter, m, ["2024-01-01", "2024-01-02", "2024-01-03"]) == 30  # a batch in one statement
    assert q(adapter, "select count(*) from t") == [(30,)]


def test_partition_rows_are_confined_to_their_window(adapter) -> None:
    # The SQL ignores the window: each partition still receives only its own rows.
    m = materializer(adapter, "t", "select day, id from raw.src", **DAILY)
    for k in ("2024-01-01", "2024-01-02", "2024-01-02"):
        write(adapter, m, [k])
    assert q(adapter, "select day::varchar, count(*) from t group by 1 order by 1") == [
        ("2024-01-01", 10), ("2024-01-02", 10)]


def test_failed_statement_rolls_the_partition_back(adapter) -> None:
    m = materializer(adapter, "t", "select day, id, v from raw.src", **DAILY)
    write(adapter, m, ["2024-01-01"])
    bad = materializer(adapter, "t", "select day, id, cast('x' || v as integer) as v from raw.src", **DAILY)
    with pytest.raises(duckdb.ConversionException):
        write(adapter, bad, ["2024-01-01"])
    assert q(adapter, "select count(*) from t") == [(10,)]  # the DELETE did not survive


def test_merge_on_unique_key(adapter) -> None:
    m = materializer(adapter, "m", "select id, v from raw.src where id < 5", unique_key="id")
    assert m.strategy == "merge"
    write(adapter, m, [""])
    adapter.session().execute("UPDATE raw.src SET v = -1 WHERE id = 2")
    m2 = materializer(adapter, "m", "select id, v from raw.src where id < 7", unique_key="id")
    write(adapter, m2, [""])
    assert q(adapter, "select count(*), count(distinct id), sum(case when v = -1 then 1 else 0 end) from m") == [
        (7, 7, 1)]


def test_merge_without_merge_support_uses_delete_insert(adapter) -> None:
    class NoMerge(DuckDBAdapter):
        supports_merge = False

    a2 = NoMerge(adapter.warehouse)
    a2._conn = adapter.connection
    write(a2, materializer(a2, "m", "select id, v from raw.src where id < 5", unique_key="id"), [""])
    write(a2, materializer(a2, "m", "select id, v + 1 as v from raw.src where id < 8", unique_key="id"), [""])
    assert q(adapter, "select count(*), sum(v) from m") == [(8, sum(i * 10 + 1 for i in range(8)))]


def test_table_swap_never_shows_an_empty_table(adapter) -> None:
    m = materializer(adapter, "tbl", "select * from raw.src", materialized="table")
    write(adapter, m, [""])
    seen: list[int] = []
    stop = threading.Event()

    def reader():
        cur = adapter.connection.cursor()
        while not stop.is_set():
            seen.append(cur.execute("select count(*) from tbl").fetchone()[0])

    t = threading.Thread(target=reader)
    t.start()
    try:
        for _ in range(15):
            m2 = materializer(adapter, "tbl", "select * from raw.src, range(20)", materialized="table")
            write(adapter, m2, [""])
    finally:
        stop.set()
        t.join()
    assert seen and set(seen) <= {50, 1000}
    tables = {r[0] for r in q(adapter, "select table_name from information_schema.tables")}
    assert "tbl__sqlassets_new" not in tables


def test_view_and_view_to_table(adapter) -> None:
    write(adapter, materializer(adapter, "v", "select id from raw.src", materialized="view"), [""])
    assert adapter.relation_type(adapter.session(), Relation("wh", "main", "v")) == "view"
    write(adapter, materializer(adapter, "v", "select id from raw.src", materialized="table"), [""])
    assert adapter.relation_type(adapter.session(), Relation("wh", "main", "v")) == "table"


def test_seed_from_csv_with_column_types(adapter, tmp_path: Path) -> None:
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "codes.csv").write_text("code,name\n007,bond\n042,answer\n")
    asset = Asset("codes", "seed", Relation("wh", "main", "codes"), "seed", path="seeds/codes.csv",
                  config={"column_types": {"code": "varchar"}})
    m = Materializer(asset, None, adapter, None, root=tmp_path)
    assert write(adapter, m, [""]) == 2
    assert q(adapter, "select code from codes order by 1") == [("007",), ("042",)]
    # a column column_types does not name is loaded too (with its detected type), as dbt does
    assert q(adapter, "select name from codes order by 1") == [("answer",), ("bond",)]


def test_schema_drift_adds_columns_and_refuses_incompatible_types(adapter) -> None:
    write(adapter, materializer(adapter, "t", "select day, id from raw.src", **DAILY), ["2024-01-01"])
    write(adapter, materializer(adapter, "t", "select day, id, v from raw.src", **DAILY), ["2024-01-02"])
    assert q(adapter, "select count(*), count(v) from t") == [(20, 10)]
    bad = materializer(adapter, "t", "select day, cast(id as varchar) || 'x' as id, v from raw.src", **DAILY)
    bad_id = materializer(adapter, "t", "select day, [id] as id, v from raw.src", **DAILY)
    with pytest.raises(UserError, match="column 'id' changed type from BIGINT to .*--full-refresh"):
        write(adapter, bad, ["2024-01-03"])
    with pytest.raises(UserError, match="--full-refresh"):
        write(adapter, bad_id, ["2024-01-03"])
    fr = materializer(adapter, "t", "select day, cast(id as varchar) || 'x' as id from raw.src", full_refresh=True,
                      **DAILY)
    write(adapter, fr, ["2024-01-03"])
    assert q(adapter, "select count(*), min(id) from t") == [(10, "12x")]


def test_type_compatibility() -> None:
    assert type_compatible("BIGINT", "INTEGER") and not type_compatible("INTEGER", "BIGINT")
    assert type_compatible("DOUBLE", "INTEGER") and type_compatible("VARCHAR", "DATE")
    assert type_compatible("DECIMAL(14,2)", "DECIMAL(12,2)") and not type_compatible("DECIMAL(10,2)", "DECIMAL(14,4)")
    assert not type_compatible("DATE", "VARCHAR")


def test_make_time_def_used_by_strategies_is_validated() -> None:
    from sqlassets.errors import PartitionError

    with pytest.raises(PartitionError, match="not a plain column name"):
        make_time_def("daily", "2024-01-01", column="x y")
