"""Run Great Expectations 1.x suites against DuckDB tables, with the DuckDB trap handled.

The trap: GX's SQLAlchemy execution engine runs each metric query inside `with engine.connect()` and
fetches *after* that block. Leaving the block rolls back SQLAlchemy's auto-begun transaction, and
duckdb-engine runs every statement on the one DuckDB connection (its cursors are the connection), so the
ROLLBACK discards the pending result: every expectation "fails" with an IndexError hidden in
`exception_info`. GX avoids it for sqlite/mssql by keeping one persisted connection
(`_PERSISTED_CONNECTION_DIALECTS`). We fix it without patching GX: the engine GX gets is built on a
`creator` that hands out `_AutocommitConnection` - a duckdb-engine connection whose begin/commit/rollback are
no-ops, so DuckDB runs each (read-only) statement in its own autocommit transaction and nothing discards
the result before GX fetches it. The connection underneath is a `cursor()` of the caller's DuckDB
connection (the executor's, or the `check` command's read-only one): the same database instance and
config, so DuckDB never refuses a second connection to the file, and freshly committed partitions are
visible.

GX is imported here and only here; `import great_expectations` costs ~2.3 s, so nothing imports this
module unless a suite is about to run.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import decimal
import gc
import itertools
import logging
import os
import sys
import threading
import warnings
from collections.abc import Sequence
from typing import Any

from sqlassets.check_results import CheckResult
from sqlassets.checks.specs import Expectation, Suite

_LOCK = threading.Lock()  # one GX validation at a time: the ephemeral context is not thread-safe
_COUNTER = itertools.count()
_context: Any = None

# kwargs that only steer GX and say nothing about what is expected
_NOISE_KWARGS = {"column", "result_format", "catch_exceptions", "meta", "row_condition", "condition_parser",
                 "mostly", "batch_id", "notes", "description", "severity", "windows"}


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    first = "great_expectations" not in sys.modules
    import great_expectations as gx

    if first:
        # GX sets some of its loggers to INFO explicitly ("Created temporary directory ... docs site");
        # a check run should print check results, not GX housekeeping.
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("great_expectations"):
                logging.getLogger(name).setLevel(logging.ERROR)
        atexit.register(_release_duckdb_types)
    return gx


def _release_duckdb_types() -> None:
    """Drop DuckDB's module-level type objects at exit, before interpreter teardown.

    With GX loaded, duckdb 2.0's nanobind module is torn down while its `DuckDBPyType` constants are
    still referenced, and nanobind prints dozens of "leaked instance" lines to stderr at every exit.
    Nothing runs after this (atexit), so clearing those module attributes only silences the noise.
    """
    duckdb = sys.modules.get("duckdb")
    if duckdb is None:
        return
    try:
        pytype = type(duckdb.sqltypes.VARCHAR)
    except AttributeError:
        return
    for name, module in list(sys.modules.items()):
        if module is None or not (name.startswith("duckdb") or name.startswith("_duckdb")):
            continue
        namespace = vars(module)
        for attr, value in list(namespace.items()):
            if isinstance(value, pytype) or (isinstance(value, dict) and any(isinstance(k, pytype) for k in value)):
                namespace[attr] = None
    gc.collect()


def _get_context() -> Any:
    global _context
    if _context is None:
        gx = _gx()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        _context = ctx
    return _context


def _autocommit_connection_class() -> type:
    from duckdb_engine import ConnectionWrapper

    class _AutocommitConnection(ConnectionWrapper):
        """A duckdb-engine DBAPI connection in autocommit mode for read-only validation queries.

        SQLAlchemy's begin/commit/rollback become no-ops, so returning the connection to the pool no
        longer discards the result GX is about to fetch. `close()` leaves the shared cursor open; the
        caller closes it after the validation.
        """

        def begin(self) -> None:
            pass

        def commit(self) -> None:
            pass

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    return _AutocommitConnection


_PLAIN = frozenset({type(None), bool, int, float, str})


def _jsonable(value: Any) -> Any:
    """GX observed values (Decimal, dates, numpy scalars) as JSON-able Python values."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal):
        return float(value) if value != value.to_integral_value() else int(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, dict):  # (plain values inline: a backfill's checks make thousands of these)
        return {str(k): v if type(v) in _PLAIN else _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalar
        try:
            return _jsonable(value.item())
        except Exception:  # noqa: BLE001 - fall back to text
            pass
    return str(value)


def expected_text(exp: Expectation) -> str:
    """What the expectation asks for, in words a reader of a CI log understands."""
    k = exp.kwargs
    col = exp.column
    prefix = f"{col} " if col and exp.type.startswith("expect_column") else ""
    t = exp.type
    if "min_value" in k or "max_value" in k:
        lo, hi = k.get("min_value"), k.get("max_value")
        lo_op = ">" if k.get("strict_min") else ">="
        hi_op = "<" if k.get("strict_max") else "<="
        if lo is not None and hi is not None:
            body = f"{lo_op} {lo} and {hi_op} {hi}" if (k.get("strict_min") or k.get("strict_max")) else \
                f"between {lo} and {hi}"
        elif lo is not None:
            body = f"{lo_op} {lo}"
        else:
            body = f"{hi_op} {hi}"
        what = t.removeprefix("expect_").removeprefix("column_").removesuffix("_to_be_between")
        text = f"{prefix}{what.replace('_', ' ')} {body}"
    elif t == "expect_column_values_to_not_be_null":
        text = f"{prefix}not null"
    elif t == "expect_column_values_to_be_null":
        text = f"{prefix}null"
    elif t == "expect_column_values_to_be_unique":
        text = f"{prefix}unique"
    elif "value_set" in k:
        neg = "not " if "_not_" in t else ""
        values = k["value_set"]
        shown = ", ".join(repr(v) for v in values[:8]) + (", ..." if len(values) > 8 else "")
        text = f"{prefix}{neg}in [{shown}]"
    elif "regex" in k:
        neg = "not " if "_not_" in t else ""
        text = f"{prefix}{neg}matching /{k['regex']}/"
    elif "type_" in k:
        text = f"{prefix}of type {k['type_']}"
    elif "type_list" in k:
        text = f"{prefix}of type in {k['type_list']}"
    elif "column_list" in k:
        text = f"columns {k['column_list']}"
    elif "value" in k:
        text = f"{t.removeprefix('expect_').replace('_', ' ')} {k['value']}"
    else:
        rest = {kk: v for kk, v in k.items() if kk not in _NOISE_KWARGS}
        args = ", ".join(f"{kk}={v!r}" for kk, v in rest.items())
        text = f"{prefix}{t.removeprefix('expect_').replace('_', ' ')}" + (f" ({args})" if args else "")
    if isinstance(k.get("mostly"), int | float) and k["mostly"] < 1:
        text += f" for at least {k['mostly']:.0%} of rows"
    return text


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:300] or type(exc).__name__


def _error_results(suite: Suite, exps: Sequence[Expectation], message: str, partition: str | None, *,
                   engine: str = "gx") -> list[CheckResult]:
    return [
        CheckResult(asset=suite.asset, check=e.name, status="error", severity=e.severity, partition=partition,
                    column=e.column, expected=expected_text(e), message=message, source=f"gx:{suite.path}",
                    details={"expectation_type": e.type, "suite": suite.name, "engine": engine})
        for e in exps
    ]


def _to_result(suite: Suite, exp: Expectation, r: Any, partition: str | None) -> CheckResult:
    """One GX ExpectationValidationResult -> CheckResult; exceptions become status 'error'."""
    info = r.exception_info or {}
    messages: list[str] = []
    if "raised_exception" in info:
        if info.get("raised_exception"):
            messages.append(str(info.get("exception_message") or "expectation raised an exception"))
    else:
        for v in info.values():
            if isinstance(v, dict) and (v.get("raised_exception") or v.get("exception_message")):
                messages.append(str(v.get("exception_message") or "metric raised an exception"))
    details: dict[str, Any] = {"expectation_type": exp.type, "suite": suite.name}
    if messages:
        msg = "; ".join(dict.fromkeys(" ".join(m.split())[:200] for m in messages))[:300]
        return CheckResult(asset=suite.asset, check=exp.name, severity=exp.severity, partition=partition,
                           column=exp.column, expected=expected_text(exp), source=f"gx:{suite.path}",
                           status="error", message=f"expectation errored: {msg}",
                           details={**details, "engine": "gx"})
    return result_from_fields(suite, exp, bool(r.success), dict(r.result or {}), partition, engine="gx")


def result_from_fields(suite: Suite, exp: Expectation, success: bool, fields: dict[str, Any],
                       partition: str | None, *, engine: str) -> CheckResult:
    """A CheckResult from GX's result fields (observed value, counts, partial list), whichever engine ran it.

    Both engines go through here, so a check reads the same whether GX or the SQL evaluator judged it.
    """
    result = _jsonable(fields)
    details: dict[str, Any] = {"expectation_type": exp.type, "suite": suite.name, "engine": engine}
    expected = expected_text(exp)
    base = dict(asset=suite.asset, check=exp.name, severity=exp.severity, partition=partition, column=exp.column,
                expected=expected, source=f"gx:{suite.path}")
    if "unexpected_count" in result:
        count = result.get("unexpected_count")
        total = result.get("element_count")
        pct = result.get("unexpected_percent")
        sample = result.get("partial_unexpected_list") or []
        observed: Any = count
        text = f"{count} of {total} rows unexpected"
        if isinstance(pct, int | float):
            text += f" ({pct:.2f}%)"
        if sample and not success:
            text += ", e.g. " + ", ".join(repr(v) for v in sample[:5])
        details.update({k: result[k] for k in ("element_count", "unexpected_percent", "missing_count")
                        if k in result})
        if sample:
            details["sample"] = sample[:20]
    else:
        observed = result.get("observed_value")
        text = repr(observed) if isinstance(observed, str) else str(observed)
        if "details" in result:
            details["gx_details"] = result["details"]
    details["observed_text"] = text
    status = "pass" if success else "fail"
    message = "" if success else f"observed {text}; expected {expected}"
    return CheckResult(status=status, observed=observed, message=message, details=details, **base)


def validate_suite(suite: Suite, connection: Any, *, relation: tuple[str | None, str | None, str],
                   where: str | None = None, partition: str | None = None) -> list[CheckResult]:
    """Validate `suite` on `relation` (database, schema, table) through `connection` (a DuckDB connection).

    `where` is a SQL predicate (already rendered safely by the caller) that limits the rows to one
    partition; it turns the batch into a GX query asset. All expectations of the suite run in one GX
    validation, so GX can bundle their metrics into few queries.
    """
    with _LOCK:
        return _validate(suite, connection, relation=relation, where=where, partition=partition)


def _validate(suite: Suite, connection: Any, *, relation: tuple[str | None, str | None, str],
              where: str | None, partition: str | None) -> list[CheckResult]:
    gx = _gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from sqlalchemy.pool import StaticPool

    results: dict[int, CheckResult] = {}
    domain: list[Any] = []
    for exp in suite.expectations:
        try:
            conf = ExpectationConfiguration(type=exp.type, kwargs=dict(exp.kwargs),
                                            meta={**exp.meta, "_sqlassets_index": exp.index})
            domain.append(conf.to_domain_obj())
        except Exception as exc:  # noqa: BLE001 - unknown type / bad kwargs are the user's to fix
            results[exp.index] = _error_results(suite, [exp], f"invalid expectation: {_first_line(exc)}",
                                                partition)[0]
    by_index = {e.index: e for e in suite.expectations}
    if domain:
        ctx = _get_context()
        cursor = connection.cursor()
        wrapper_cls = _autocommit_connection_class()
        name = f"sqlassets_{os.getpid()}_{next(_COUNTER)}"
        ds = None
        try:
            ds = ctx.data_sources.add_sql(
                name=name, connection_string="duckdb:///:memory:",
                kwargs={"creator": lambda: wrapper_cls(cursor), "poolclass": StaticPool,
                        # no compiled-statement cache: it would keep DuckDB type objects alive past exit
                        "query_cache_size": 0},
            )
            database, schema, table = relation
            current_db = cursor.execute("select current_database()").fetchone()[0]
            if where is None and (database is None or database == current_db):
                with warnings.catch_warnings():  # schema_name is "deprecated" but the only way to say it
                    warnings.simplefilter("ignore", DeprecationWarning)
                    asset = ds.add_table_asset(name="t", table_name=table, schema_name=schema or "main")
            else:
                asset = ds.add_query_asset(name="t", query=f"select * from {_qualified(relation)}"
                                           + (f" where {where}" if where else ""))
            batch = asset.add_batch_definition_whole_table("all").get_batch()
            gx_suite = gx.ExpectationSuite(name=suite.name, expectations=domain)
            validation = batch.validate(gx_suite, result_format={"result_format": "SUMMARY",
                                                                 "partial_unexpected_count": 20})
            for r in validation.results:
                idx = (r.expectation_config.meta or {}).get("_sqlassets_index")
                if idx in by_index:
                    results[idx] = _to_result(suite, by_index[idx], r, partition)
        except Exception as exc:  # noqa: BLE001 - a missing table or a broken connection errors every check
            pending = [e for e in suite.expectations if e.index not in results]
            for r in _error_results(suite, pending, f"suite could not run: {_first_line(exc)}", partition):
                results[by_index_of(suite, r.check)] = r
        finally:
            if ds is not None:
                try:
                    # SQLAlchemy memoises result processors per DBAPI type object on the dialect; those
                    # DuckDB type objects would outlive the interpreter's DuckDB module (noise at exit).
                    for engine in (ds.get_execution_engine().engine, ds.get_engine()):
                        engine.dialect._type_memos.clear()
                    ds.get_engine().dispose()
                    ctx.data_sources.delete(name)
                except Exception:  # noqa: BLE001 - cleanup must not hide the results
                    pass
            cursor.close()
    missing = [e for e in suite.expectations if e.index not in results]
    for e in missing:  # GX returned no result for it: say so rather than pretend it passed
        results[e.index] = _error_results(suite, [e], "GX returned no result for this expectation", partition)[0]
    return [results[e.index] for e in suite.expectations]


def by_index_of(suite: Suite, check_name: str) -> int:
    return next(e.index for e in suite.expectations if e.name == check_name)


def _qualified(relation: tuple[str | None, str | None, str]) -> str:
    """The relation as a quoted DuckDB table name (identifiers quoted, never pasted raw)."""
    return ".".join('"' + p.replace('"', '""') + '"' for p in relation if p)
