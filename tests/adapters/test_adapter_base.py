"""The shared adapter base: registry by profile type, missing extras, query tags, retries, dry-run session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sqlassets.adapters.base import (
    ADAPTERS,
    Adapter,
    DryRunSession,
    MissingExtra,
    adapter_class,
    query_tag,
    redact,
    with_retries,
)
from sqlassets.errors import ConfigError
from sqlassets.project import Warehouse


def test_registry_names_every_supported_type_and_refuses_others() -> None:
    assert {"duckdb", "snowflake", "bigquery"} <= set(ADAPTERS)
    with pytest.raises(ConfigError, match="'oracle' is not supported.*duckdb, snowflake, bigquery"):
        adapter_class("oracle")


def test_missing_sdk_is_one_line_naming_the_extra() -> None:
    class Fake(Adapter):
        type = "fakewh"
        extra = "fakewh"

    with pytest.raises(MissingExtra) as e:
        Fake.require("no_such_sdk_module_xyz")
    msg = str(e.value)
    assert "\n" not in msg and "pip install 'sqlassets[fakewh]'" in msg and "no_such_sdk_module_xyz" in msg


def test_query_tag_names_asset_and_partition() -> None:
    assert json.loads(query_tag("fct_orders", ["2024-01-02"])) == {
        "app": "sqlassets", "asset": "fct_orders", "partition": "2024-01-02"}
    assert json.loads(query_tag("fct", ["2024-01-01", "2024-01-02", "2024-01-03"]))["partition"] == \
        "2024-01-01..2024-01-03"
    assert "partition" not in json.loads(query_tag("dim", [""]))


def test_redact_masks_profile_secrets_only() -> None:
    opts = {"password": "hunter22", "user": "bob", "private_key_passphrase": "pp-secret"}
    assert redact("login bob:hunter22 key pp-secret", opts) == "login bob:**** key ****"
    assert "hunter22" not in repr(Warehouse(type="snowflake", options=opts))


def test_retries_transient_errors_only_with_backoff() -> None:
    calls = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TimeoutError("lock wait")
        return "ok"

    assert with_retries(flaky, lambda e: isinstance(e, TimeoutError), attempts=3, backoff=0.001) == "ok"
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ValueError):
        with_retries(lambda: (_ for _ in ()).throw(ValueError("bad sql")), lambda e: isinstance(e, TimeoutError),
                     attempts=5, backoff=0.001)


def test_profile_threads_set_concurrency_only_on_remote_warehouses(tmp_path: Path) -> None:
    from sqlassets.adapters.duckdb import DuckDBAdapter

    class Remote(Adapter):
        remote = True

    assert DuckDBAdapter.default_concurrency(Warehouse(type="duckdb", options={"threads": 8})) == 1
    assert Remote.default_concurrency(Warehouse(type="x", options={"threads": 8})) == 8
    assert Remote.default_concurrency(Warehouse(type="x")) == 1
    with pytest.raises(ConfigError, match="threads"):
        Remote.default_concurrency(Warehouse(type="x", options={"threads": "many"}))


def test_dry_run_session_prints_writes_and_counts_round_trips() -> None:
    out: list[str] = []
    s = DryRunSession(None, out.append, multi_statement=False)
    s.set_query_tag('{"asset":"a"}')
    s.run_atomic(["DELETE FROM t WHERE d = 1", "INSERT INTO t SELECT 1"])
    assert (s.requests, s.statements) == (4, 2)
    assert out[1:] == ["DELETE FROM t WHERE d = 1;", "INSERT INTO t SELECT 1;"] and "query tag" in out[0]
    m = DryRunSession(None, out.append, multi_statement=True)
    m.run_atomic(["DELETE FROM t", "INSERT INTO t SELECT 1"])
    assert (m.requests, m.statements) == (1, 2)
    assert m.query("select 1") == []
