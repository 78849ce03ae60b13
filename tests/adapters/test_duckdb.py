"""The DuckDB adapter: capabilities, catalog reads, transactions, and another process holding the file."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from sqlglot import exp

from sqlassets.adapters.base import Adapter, adapter_for
from sqlassets.adapters.duckdb import DuckDBAdapter, WarehouseBusy
from sqlassets.errors import ConfigError
from sqlassets.model import Relation
from sqlassets.project import Warehouse


def make(tmp_path: Path, **kw) -> DuckDBAdapter:
    return DuckDBAdapter(Warehouse(type="duckdb", path=tmp_path / "wh.duckdb"), **kw)


def test_capabilities_and_factory(tmp_path: Path) -> None:
    a = adapter_for(Warehouse(type="duckdb", path=tmp_path / "wh.duckdb"))
    assert isinstance(a, DuckDBAdapter) and a.dialect == "duckdb"
    assert a.supports_transactions and a.supports_merge and a.supports_delete_insert
    assert not a.supports_insert_overwrite and issubclass(DuckDBAdapter, Adapter)
    with pytest.raises(ConfigError, match="'oracle' is not supported"):
        adapter_for(Warehouse(type="oracle"))


def test_catalog_reads(tmp_path: Path) -> None:
    a = make(tmp_path)
    s = a.session()
    rel = Relation("wh", "sales", "orders")
    a.ensure_schema(s, rel)
    assert a.relation_type(s, rel) is None
    s.execute(a.render(exp.Create(this=a.table(rel), kind="TABLE",
                                  expression=exp.select("1 AS id", "'x' AS name"))))
    assert a.relation_type(s, rel) == "table"
    assert [(c.name, c.type) for c in a.columns(s, rel)] == [("id", "INTEGER"), ("name", "VARCHAR")]
    assert [c.name for c in a.query_columns(s, "select 1.5 as x, current_date as d")] == ["x", "d"]
    assert a.render(a.table(rel)) == '"wh"."sales"."orders"'
    a.close()


def test_transactions_roll_back(tmp_path: Path) -> None:
    a = make(tmp_path)
    s = a.session()
    s.execute("create table t (i int)")
    with pytest.raises(RuntimeError), s.transaction():
        assert s.execute("insert into t values (1), (2)") == 2
        raise RuntimeError("boom")
    assert s.query("select count(*) from t") == [(0,)]
    a.close()


def test_cursor_per_thread(tmp_path: Path) -> None:
    import threading

    a = make(tmp_path)
    sessions = []
    t = threading.Thread(target=lambda: sessions.append(a.session()))
    t.start()
    t.join()
    assert sessions[0] is not a.session()
    a.close()


def test_another_process_holding_the_file_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "wh.duckdb"
    duckdb.connect(str(db)).close()
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb,time; c=duckdb.connect({str(db)!r}); "
                               "print('ready', flush=True); time.sleep(3)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(WarehouseBusy, match=rf"open in process {holder.pid}; .*--wait"):
            make(tmp_path).open()
        started = time.monotonic()
        waiting = make(tmp_path, wait=True)
        waiting.open()  # returns once the holder exits
        assert time.monotonic() - started > 0.5
        waiting.close()
    finally:
        holder.kill()
        holder.wait()


def test_transient_classification(tmp_path: Path) -> None:
    a = make(tmp_path)
    assert a.is_transient(duckdb.TransactionException("Transaction conflict: cannot update a table"))
    assert not a.is_transient(duckdb.ConversionException("Could not convert string 'x' to INT32"))
