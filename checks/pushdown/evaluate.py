"""Run a suite's covered expectations as one aggregate query per batch, in the warehouse's dialect.

    WITH batch AS (SELECT * FROM <relation> [WHERE <partition window>]),
         <helper CTEs: duplicate counts, median middles>
    SELECT <every aggregate the suite needs, deduplicated> FROM batch

Only when a map expectation finds unexpected rows does a second, small query fetch up to 20 of them (GX's
`partial_unexpected_list`); a passing suite costs one catalog read and one scan.

The warehouse is reached through `Access` (run a query, list a relation's columns), so the same code runs
on a DuckDB connection, or on any executor adapter's session (Snowflake, BigQuery).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlglot import exp

from sqlassets.check_results import CheckResult
from sqlassets.checks.pushdown.expectations import (
    Columns,
    Compiled,
    MissingColumn,
    NotCovered,
    QueryBuilder,
    compile_expectation,
    covered,
)
from sqlassets.checks.specs import Expectation, Suite

PARTIAL_UNEXPECTED_COUNT = 20


class Access(Protocol):
    """What the evaluator needs from a warehouse."""

    dialect: str

    def query(self, sql: str) -> list[tuple[Any, ...]]: ...

    def columns(self, table: exp.Table) -> Columns | None:
        """The relation's columns in order, or None when it does not exist."""
        ...


@dataclass
class DuckDBAccess:
    """A DuckDB connection (the executor's or the read-only one of `sqlassets check`): cursors of it."""

    connection: Any
    dialect: str = "duckdb"

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            return cursor.execute(sql).fetchall()
        finally:
            cursor.close()

    def columns(self, table: exp.Table) -> Columns | None:
        cursor = self.connection.cursor()
        try:
            rows = cursor.execute(f"DESCRIBE SELECT * FROM {table.sql(dialect=self.dialect)}").fetchall()
        except Exception:  # noqa: BLE001 - missing relation: the caller reports it
            return None
        finally:
            cursor.close()
        return Columns(tuple(str(r[0]) for r in rows), tuple(str(r[1]).upper() for r in rows))


@dataclass
class AdapterAccess:
    """Any executor adapter (`sqlassets.adapters.base.Adapter`): its session and catalog read."""

    adapter: Any
    relation: Any

    @property
    def dialect(self) -> str:
        return self.adapter.dialect

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return self.adapter.session().query(sql)

    def columns(self, table: exp.Table) -> Columns | None:
        cols = self.adapter.columns(self.adapter.session(), self.relation)
        if not cols:
            return None
        return Columns(tuple(c.name for c in cols), tuple(str(c.type).upper() for c in cols))


def split(suite: Suite, engine: str) -> tuple[list[Expectation], list[Expectation]]:
    """(for the SQL engine, for GX): `engine` is auto (SQL where covered), sql (same) or gx (all GX)."""
    if engine == "gx":
        return [], list(suite.expectations)
    ours = [e for e in suite.expectations if covered(e.type, e.kwargs)]
    return ours, [e for e in suite.expectations if not covered(e.type, e.kwargs)]


def batch_select(table: exp.Table, where: exp.Expression | None) -> exp.Select:
    sel = exp.select("*").from_(table.copy())
    return sel.where(where.copy()) if where is not None else sel


def _with(query: exp.Select, table: exp.Table, where: exp.Expression | None,
          ctes: Sequence[tuple[str, exp.Expression]]) -> exp.Select:
    query = query.with_("batch", as_=batch_select(table, where))
    for name, body in ctes:
        query = query.with_(name, as_=body.copy())
    return query


def _sample(compiled: Compiled, table: exp.Table, where: exp.Expression | None,
            ctes: Sequence[tuple[str, exp.Expression]], access: Access) -> list[Any]:
    """Up to 20 unexpected values (one column) or rows as dicts (several columns), as GX lists them."""
    assert compiled.unexpected is not None
    cols = [exp.column(c, table="batch", quoted=True) for c in compiled.sample_columns]
    bad_sql = compiled.unexpected.sql()
    needed = [(n, b) for n, b in ctes if n in bad_sql]
    q = exp.select(*cols).from_("batch").where(compiled.unexpected.copy()).limit(PARTIAL_UNEXPECTED_COUNT)
    rows = access.query(_with(q, table, where, needed).sql(dialect=access.dialect))
    if len(compiled.sample_columns) == 1:
        return [r[0] for r in rows]
    if compiled.pairs:
        return [tuple(r) for r in rows]
    return [dict(zip(compiled.sample_columns, r, strict=True)) for r in rows]


def _partial_counts(values: list[Any]) -> list[dict[str, Any]] | None:
    items = [tuple(v.values()) if isinstance(v, dict) else v for v in values]
    try:
        return [{"value": k, "count": n} for k, n in
                sorted(Counter(items).most_common(PARTIAL_UNEXPECTED_COUNT), key=lambda x: (-x[1], x[0]))]
    except TypeError:
        return None


def evaluate(suite: Suite, expectations: Sequence[Expectation], access: Access, *, table: exp.Table,
             where: exp.Expression | None, partition: str | None) -> list[CheckResult]:
    """Judge `expectations` (all covered) of `suite` on one batch; results in the order given."""
    from sqlassets.checks.gx import _error_results, result_from_fields

    started = time.perf_counter()
    out: dict[int, CheckResult] = {}
    columns = access.columns(table)
    if columns is None:
        for r in _error_results(suite, expectations, f"suite could not run: {table.sql(access.dialect)} does not "
                                "exist", partition, engine="sql"):
            out[_index(expectations, r.check)] = r
        return [out[e.index] for e in expectations]
    builder = QueryBuilder()
    compiled: dict[int, Compiled] = {}
    for e in expectations:
        try:
            compiled[e.index] = compile_expectation(e.type, e.kwargs, builder, columns)
        except MissingColumn as exc:
            out[e.index] = _error_results(suite, [e], f"expectation errored: {exc}", partition, engine="sql")[0]
        except NotCovered as exc:  # covered() said yes but the arguments are odd: say so, do not guess
            out[e.index] = _error_results(suite, [e], f"expectation errored: {exc}", partition, engine="sql")[0]
    values: list[Any] = []
    error: str | None = None
    if builder.selects:
        query = _with(exp.select(*builder.selects).from_("batch"), table, where, builder.ctes)
        try:
            rows = access.query(query.sql(dialect=access.dialect))
            values = list(rows[0])
        except Exception as exc:  # noqa: BLE001 - a broken query errors its checks, it does not crash the run
            error = " ".join(str(exc).split())[:300]
    for e in expectations:
        if e.index in out:
            continue
        c = compiled[e.index]
        if error is not None:
            out[e.index] = _error_results(suite, [e], f"suite could not run: {error}", partition, engine="sql")[0]
            continue
        try:
            success, fields = c.judge(values)
            count = fields.get("unexpected_count")
            if count and c.unexpected is not None:
                if c.unexpected_slot is None and len(c.sample_columns) == 1 and e.type.endswith("not_be_null"):
                    sample: list[Any] = [None] * min(count, PARTIAL_UNEXPECTED_COUNT)
                else:
                    sample = _sample(c, table, where, builder.ctes, access)
                fields["partial_unexpected_list"] = sample
                counts = _partial_counts(sample)
                if counts is not None:
                    fields["partial_unexpected_counts"] = counts
            elif count == 0 and c.unexpected is not None:
                fields["partial_unexpected_list"] = []
            out[e.index] = result_from_fields(suite, e, success, fields, partition, engine="sql")
        except Exception as exc:  # noqa: BLE001 - as GX: an expectation that raises is an error result
            out[e.index] = _error_results(suite, [e], f"expectation errored: {' '.join(str(exc).split())[:300]}",
                                          partition, engine="sql")[0]
    share = (time.perf_counter() - started) / max(1, len(expectations))
    for r in out.values():
        r.details["seconds"] = share
    return [out[e.index] for e in expectations]


def _index(expectations: Sequence[Expectation], name: str) -> int:
    return next(e.index for e in expectations if e.name == name)
