"""Run a suite's covered expectations as one aggregate query per batch, in the warehouse's dialect.

    WITH batch AS (SELECT * FROM <relation> [WHERE <partition window>]),
         <helper CTEs: duplicate counts, median middles>
    SELECT <every aggregate the suite needs, deduplicated> FROM batch

Only when a map expectation finds unexpected rows does a second, small query fetch up to 20 of them (GX's
`partial_unexpected_list`); a passing suite costs one catalog read and one scan.

`evaluate_grouped` judges many time partitions of one table in one query: the same aggregates, grouped
by the partition window each row falls in (a join on a VALUES list of windows), the helper CTEs grouped
and their scalar subqueries correlated on it. A partition it cannot judge alone from its group's row (no
rows at all, unexpected rows to sample, a judge that raises) is left to `evaluate` on that partition's
own query, so every result is the one the per-partition query gives.

The warehouse is reached through `Access` (run a query, list a relation's columns), so the same code runs
on a DuckDB connection, or on any executor adapter's session (Snowflake, BigQuery).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from sqlassets.check_results import CheckResult
from sqlassets.checks.pushdown.expectations import (
    Columns,
    Compiled,
    MissingColumn,
    NotCovered,
    QueryBuilder,
    compile_expectation,
    covered,
    replaying,
)
from sqlassets.checks.specs import Expectation, Suite

if TYPE_CHECKING:
    from pathlib import Path


class _Sqlglot:
    """`sqlglot.expressions`, imported on first use: a replayed plan (`PlanStore`) never needs it."""

    def __getattr__(self, name: str) -> Any:
        from sqlglot import exp as real

        return getattr(real, name)


exp: Any = _Sqlglot()


@dataclass(frozen=True)
class TableRef:
    """A table by name, rendered quoted without sqlglot (DuckDB, Postgres and Snowflake quoting);
    `expression()` builds the sqlglot table when a query has to be built."""

    name: str
    db: str | None = None
    catalog: str | None = None

    def sql(self, dialect: str | None = None) -> str:
        return ".".join('"' + p.replace('"', '""') + '"' for p in (self.catalog, self.db, self.name) if p)

    def expression(self) -> Any:
        return exp.table_(self.name, db=self.db, catalog=self.catalog, quoted=True)


def _table(table: Any) -> Any:
    """The sqlglot table of `table` (a TableRef or already one)."""
    return table.expression() if isinstance(table, TableRef) else table

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
    # relation -> columns, shared by the runner across the partitions of a run (a run never changes a
    # table's columns between two of its partitions)
    cache: dict[str, Columns] | None = None

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self.connection.cursor()
        try:
            return cursor.execute(sql).fetchall()
        finally:
            cursor.close()

    def columns(self, table: exp.Table) -> Columns | None:
        name = table.sql(dialect=self.dialect)
        if self.cache is not None and name in self.cache:
            return self.cache[name]
        cursor = self.connection.cursor()
        try:
            rows = cursor.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()
        except Exception:  # noqa: BLE001 - missing relation: the caller reports it
            return None
        finally:
            cursor.close()
        cols = Columns(tuple(str(r[0]) for r in rows), tuple(str(r[1]).upper() for r in rows))
        if self.cache is not None:
            self.cache[name] = cols
        return cols


@dataclass
class AdapterAccess:
    """Any executor adapter (`sqlassets.adapters.base.Adapter`): its session and catalog read."""

    adapter: Any
    relation: Any

    @property
    def dialect(self) -> str:
        return self.adapter.dialect

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        # The CI gate's relocated schemas apply to checks too (no-op otherwise).
        return self.adapter.session().query(self.adapter.relocate_sql(sql))

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
    sel = exp.select("*").from_(_table(table).copy())
    return sel.where(where.copy()) if where is not None else sel


def _with(query: exp.Select, table: exp.Table, where: exp.Expression | None,
          ctes: Sequence[tuple[str, exp.Expression]]) -> exp.Select:
    """`query` over the batch: helper CTEs added, and every `batch` reference made the batch itself.

    The batch is inlined (the table aliased `batch`, or a filtered subquery) rather than a `WITH batch`
    CTE: engines materialize a CTE read more than once (DuckDB does), which would copy the whole batch.
    """
    for name, body in ctes:
        query = query.with_(name, as_=body.copy())
    source: exp.Expression
    if where is None:
        source = _table(table).copy()
        source.set("alias", exp.TableAlias(this=exp.to_identifier("batch")))
    else:
        source = batch_select(table, where).subquery("batch")

    def inline(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name == "batch" and not node.args.get("db"):
            return source.copy()
        return node

    return query.transform(inline, copy=False)


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


_FILTER = "__sqlassets_batch_filter__"


@dataclass
class _Plan:
    """A suite compiled for one relation and column list: reused for every partition of a run."""

    compiled: dict[int, Compiled]
    errors: dict[int, str]
    ctes: list[tuple[str, exp.Expression]]
    template: str | None  # the aggregate query, its partition predicate a placeholder
    selects: list[exp.Expression] = field(default_factory=list)
    # partition column -> the grouped query (windows a placeholder), or None when the shape is not groupable
    grouped: dict[str, str | None] = field(default_factory=dict)
    # replayed from a `PlanStore`: judges and query text only (no sqlglot trees: sampling unexpected
    # rows or grouping compiles the plan for real first)
    replayed: bool = False


_PLANS: dict[tuple[Any, ...], _Plan] = {}


class PlanStore:
    """Compiled check queries remembered between runs, one small JSON file per plan, so a warm `sqlassets
    check` judges without importing sqlglot: the query text, and for each expectation the positions of
    its aggregates (the compilers are replayed on them to rebuild the judges). Keyed by everything a plan
    is built from, the installed sqlglot and the source of the modules that build plans."""

    def __init__(self, root: Path) -> None:
        self.dir = root
        self._code: str | None = None

    def key(self, parts: Sequence[Any]) -> str:
        import hashlib

        import orjson

        if self._code is None:
            import importlib.util
            from pathlib import Path

            h = hashlib.sha256()
            here = Path(__file__).resolve().parent
            spec = importlib.util.find_spec("sqlglot")
            files = [here / "evaluate.py", here / "expectations.py"]
            if spec is not None and spec.origin:
                files.append(Path(spec.origin).parent / "_version.py")
            for f in files:
                try:
                    h.update(f.read_bytes())
                except OSError:
                    h.update(str(f).encode())
            self._code = h.hexdigest()
        return hashlib.sha256(orjson.dumps([*parts, self._code], default=str)).hexdigest()[:32]

    def load(self, key: str) -> dict[str, Any] | None:
        import orjson

        try:
            data = orjson.loads((self.dir / f"{key}.json").read_bytes())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) and data.get("key") == key else None

    def save(self, key: str, entry: dict[str, Any]) -> None:
        import orjson

        from sqlassets.private_files import save_cache

        save_cache(self.dir / f"{key}.json", orjson.dumps({**entry, "key": key}))  # read-only: compiles again


def _plan(expectations: Sequence[Expectation], columns: Columns, table: Any, filtered: bool,
          dialect: str, store: PlanStore | None = None, *, real: bool = False) -> _Plan:
    """Compile once per (expectations, relation, columns, dialect); a backfill then only renders the window.

    Building and rendering sqlglot trees costs milliseconds; per partition of a 366-day backfill that
    would be most of the checks' cost, so the rendered query is a template with the predicate spliced in.
    With `store`, a plan compiled by an earlier run is replayed from disk without sqlglot; `real`: a plan
    with its sqlglot trees (to sample unexpected rows, or to group partitions).
    """
    import orjson

    exps = tuple((e.index, e.type, orjson.dumps(e.kwargs, option=orjson.OPT_SORT_KEYS, default=str).decode())
                 for e in expectations)
    key = (exps, table.sql(), columns, filtered, dialect)
    plan = _PLANS.get(key)
    if plan is not None and not (real and plan.replayed):
        return plan
    disk = store.key([exps, table.sql(), columns.names, columns.types, filtered, dialect]) if store else None
    if not real and store is not None and disk is not None:
        entry = store.load(disk)
        plan = _replay(expectations, columns, entry) if entry is not None else None
        if plan is not None:
            _PLANS[key] = plan
            return plan
    builder = QueryBuilder()
    compiled: dict[int, Compiled] = {}
    errors: dict[int, str] = {}
    tapes: dict[str, list[Any]] = {}
    for e in expectations:
        start = len(builder.tape)
        try:
            compiled[e.index] = compile_expectation(e.type, e.kwargs, builder, columns)
            tapes[str(e.index)] = builder.tape[start:]
        except (MissingColumn, NotCovered) as exc:  # NotCovered: covered() said yes but the arguments are odd
            errors[e.index] = f"expectation errored: {exc}"
    template = None
    if builder.selects:
        placeholder = exp.column(_FILTER) if filtered else None
        template = _with(exp.select(*builder.selects).from_("batch"), table, placeholder,
                         builder.ctes).sql(dialect=dialect)
    if len(_PLANS) > 256:
        _PLANS.clear()
    plan = _PLANS[key] = _Plan(compiled, errors, builder.ctes, template, builder.selects)
    if store is not None and disk is not None:
        store.save(disk, {"template": template, "tapes": tapes, "errors": {str(k): v for k, v in errors.items()}})
    return plan


def _replay(expectations: Sequence[Expectation], columns: Columns, entry: dict[str, Any]) -> _Plan | None:
    """A stored plan's judges, rebuilt by replaying the compilers on the recorded aggregate positions."""
    errors = {int(k): str(v) for k, v in (entry.get("errors") or {}).items()}
    tapes = entry.get("tapes") or {}
    compiled: dict[int, Compiled] = {}
    try:
        with replaying():
            for e in expectations:
                if e.index in errors:
                    continue
                compiled[e.index] = compile_expectation(e.type, e.kwargs, QueryBuilder(replay=iter(tapes[str(e.index)])),
                                                        columns)
    except Exception:  # noqa: BLE001 - a stale or odd entry: compile for real instead
        return None
    return _Plan(compiled, errors, [], entry.get("template"), replayed=True)


def evaluate(suite: Suite, expectations: Sequence[Expectation], access: Access, *, table: Any,
             where: exp.Expression | None, partition: str | None,
             store: PlanStore | None = None) -> list[CheckResult]:
    """Judge `expectations` (all covered) of `suite` on one batch; results in the order given.

    `table`: a sqlglot table or a `TableRef`; `store`: where compiled plans are remembered between runs.
    """
    from sqlassets.checks.gx import _error_results

    started = time.perf_counter()
    out: dict[int, CheckResult] = {}
    columns = access.columns(table)
    if columns is None:
        for r in _error_results(suite, expectations, f"suite could not run: {table.sql(access.dialect)} does not "
                                "exist", partition, engine="sql"):
            out[_index(expectations, r.check)] = r
        return [out[e.index] for e in expectations]
    plan = _plan(expectations, columns, table, where is not None, access.dialect, store)
    for index, message in plan.errors.items():
        e = next(x for x in expectations if x.index == index)
        out[index] = _error_results(suite, [e], message, partition, engine="sql")[0]
    values: list[Any] = []
    error: str | None = None
    if plan.template is not None:
        sql = plan.template if where is None else \
            plan.template.replace(_FILTER, f"({where.sql(dialect=access.dialect)})")
        try:
            rows = access.query(sql)
            values = list(rows[0])
        except Exception as exc:  # noqa: BLE001 - a broken query errors its checks, it does not crash the run
            error = " ".join(str(exc).split())[:300]
            ok = [e for e in expectations if e.index in plan.compiled]
            if len(ok) > 1:
                # One expectation the data cannot take (a bound of the wrong type after a retype, ...) must
                # not error the others: as GX, which errors per metric, judge each on its own query.
                for e in ok:
                    out[e.index] = evaluate(suite, [e], access, table=table, where=where, partition=partition,
                                            store=store)[0]
                return [out[e.index] for e in expectations]
    for e in expectations:
        if e.index in out:
            continue
        c = plan.compiled[e.index]
        if error is not None:
            what = "expectation errored" if len(expectations) == 1 else "suite could not run"
            out[e.index] = _error_results(suite, [e], f"{what}: {error}", partition, engine="sql")[0]
            continue
        def sample(e: Expectation = e, c: Compiled = c) -> list[Any]:
            if plan.replayed:  # the unexpected-row predicate is a sqlglot tree: compile for real
                full = _plan(expectations, columns, table, where is not None, access.dialect, real=True)
                return _sample(full.compiled[e.index], table, where, full.ctes, access)
            return _sample(c, table, where, plan.ctes, access)

        try:
            out[e.index] = _judged(suite, e, c, values, partition, sample)
        except Exception as exc:  # noqa: BLE001 - as GX: an expectation that raises is an error result
            out[e.index] = _error_results(suite, [e], f"expectation errored: {' '.join(str(exc).split())[:300]}",
                                          partition, engine="sql")[0]
    share = (time.perf_counter() - started) / max(1, len(expectations))
    for r in out.values():
        r.details["seconds"] = share
    return [out[e.index] for e in expectations]


class _NeedsOwnQuery(Exception):
    """A grouped partition whose result needs its own query (unexpected rows to sample)."""


def _judged(suite: Suite, e: Expectation, c: Compiled, values: list[Any], partition: str | None,
            sample_rows: Any) -> CheckResult:
    """One expectation judged on the fetched aggregate values; `sample_rows()` fetches unexpected rows."""
    from sqlassets.checks.gx import result_from_fields

    success, fields = c.judge(values)
    count = fields.get("unexpected_count")
    if count and c.unexpected is not None:
        if c.unexpected_slot is None and len(c.sample_columns) == 1 and e.type.endswith("not_be_null"):
            sample: list[Any] = [None] * min(count, PARTIAL_UNEXPECTED_COUNT)
        else:
            sample = sample_rows()
        fields["partial_unexpected_list"] = sample
        counts = _partial_counts(sample)
        if counts is not None:
            fields["partial_unexpected_counts"] = counts
    elif count == 0 and c.unexpected is not None:
        fields["partial_unexpected_list"] = []
    return result_from_fields(suite, e, success, fields, partition, engine="sql")


_WINDOWS = "__sqlassets_batch_windows__"
_RANGE = "__sqlassets_batch_range__"
_PART = "__sqlassets_partition"


def _grouped_sql(plan: _Plan, table: exp.Table, column: str, dialect: str) -> str | None:
    """The plan's aggregate query over many partition windows, one result row per window that has rows.

        SELECT batch.p, <aggregates> FROM (SELECT t.*, <the label of the window t.<col> falls in> AS p
               FROM <table> t WHERE t.<col> >= <first start> AND t.<col> < <last end>) AS batch
        GROUP BY batch.p

    Helper CTEs get the partition as one more output and grouping key (and window partition), and the
    scalar subqueries reading them are correlated on it. None when a helper has a shape this does not
    know how to group (then every partition is judged on its own query).
    """
    if not plan.selects:
        return None
    part = exp.column(_PART, table="batch", quoted=True)
    names = {name for name, _ in plan.ctes}
    selects: list[exp.Expression] = [part.copy()]
    for s in plan.selects:
        s = s.copy()
        for sub in list(s.find_all(exp.Subquery)):
            inner = sub.this
            source = inner.args.get("from_") if isinstance(inner, exp.Select) else None
            target = source.this if source is not None else None
            if not isinstance(target, exp.Table) or target.name not in names or inner.args.get("joins"):
                return None
            inner.where(exp.EQ(this=exp.column(_PART, table=target.name, quoted=True), expression=part.copy()),
                        copy=False)
        if any(isinstance(n, exp.Select) and not isinstance(n.parent, exp.Subquery) for n in s.find_all(exp.Select)):
            return None
        selects.append(s)
    ctes: list[tuple[str, exp.Expression]] = []
    for name, body in plan.ctes:
        body = body.copy()
        for sel in list(body.find_all(exp.Select)):
            if sel.args.get("limit") or sel.args.get("offset") or sel.args.get("distinct") or sel.args.get("joins"):
                return None
            sel.select(exp.column(_PART, quoted=True), append=True, copy=False)
            if sel.args.get("group"):
                sel.group_by(exp.column(_PART, quoted=True), append=True, copy=False)
        for w in body.find_all(exp.Window):
            w.set("partition_by", [*(w.args.get("partition_by") or []), exp.column(_PART, quoted=True)])
        ctes.append((name, body))
    query = exp.select(*selects).from_("batch").group_by(part.copy())
    for name, body in ctes:
        query = query.with_(name, as_=body, copy=False)
    t = _table(table).copy()
    t.set("alias", exp.TableAlias(this=exp.to_identifier("t", quoted=True)))
    # The partition of a row is a CASE over the windows, not a join: a join would feed each group its rows
    # in another order than the table's, and floating-point sums/averages would differ in the last digit.
    source = (exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier("t", quoted=True)),
                         exp.alias_(exp.column(_WINDOWS), _PART, quoted=True))
              .from_(t).where(exp.column(_RANGE)).subquery("batch"))

    def inline(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and node.name == "batch" and not node.args.get("db"):
            return source.copy()
        return node

    return query.transform(inline, copy=False).sql(dialect=dialect)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def evaluate_grouped(suite: Suite, expectations: Sequence[Expectation], access: Access, *, table: Any,
                     column: str, kind: str, scopes: Sequence[tuple[str, str, str]],
                     store: PlanStore | None = None) -> dict[str, list[CheckResult]]:
    """Judge `expectations` (all covered) on many partitions of `table` in one query.

    `scopes`: (partition label, window start, window end), windows half-open on `column` and compared as
    `kind` (DATE or TIMESTAMP: what the per-partition predicate would compare with). Returns results for
    the partitions it could judge from their group's aggregates alone, in the order given; the caller
    runs `evaluate` on the others (no rows, unexpected rows to list, the grouped query failing).
    """
    from sqlassets.checks.gx import result_from_fields  # noqa: F401 - imported once, before the timing

    started = time.perf_counter()
    columns = access.columns(table)
    if columns is None or not scopes:
        return {}
    plan = _plan(expectations, columns, table, True, access.dialect, store)
    if plan.errors or plan.template is None:
        return {}
    if column not in plan.grouped and plan.replayed:  # grouping rewrites the sqlglot trees
        plan = _plan(expectations, columns, table, True, access.dialect, real=True)
    if column not in plan.grouped:
        try:
            plan.grouped[column] = _grouped_sql(plan, table, column, access.dialect)
        except Exception:  # noqa: BLE001 - a shape we cannot group: per-partition queries instead
            plan.grouped[column] = None
    sql = plan.grouped[column]
    if sql is None:
        return {}
    col_sql = exp.column(column, table="t", quoted=True).sql(dialect=access.dialect)

    def bound(value: str) -> str:
        return f"CAST({_quote(value)} AS {kind})"

    if kind == "DATE" and access.dialect == "duckdb" and all(_one_day(w) for w in scopes):
        label_sql = f"CAST({col_sql} AS VARCHAR)"  # daily partitions of a DATE column: the label is the date
    else:  # (a CASE costs about 3x the cast on DuckDB; a binary search of nested CASEs costs more still)
        label_sql = "CASE " + " ".join(f"WHEN {col_sql} >= {bound(start)} AND {col_sql} < {bound(end)} "
                                       f"THEN {_quote(label)}" for label, start, end in scopes) + " END"
    first, last = min(s for _, s, _ in scopes), max(e for _, _, e in scopes)
    try:
        rows = access.query(sql.replace(_WINDOWS, label_sql).replace(
            _RANGE, f"{col_sql} >= {bound(first)} AND {col_sql} < {bound(last)}"))
    except Exception:  # noqa: BLE001 - each partition's own query reports what is wrong
        return {}
    by_label = {row[0]: list(row[1:]) for row in rows if row[0] is not None}
    out: dict[str, list[CheckResult]] = {}
    for label, _start, _end in scopes:
        values = by_label.get(label)
        if values is None:
            continue  # no rows: the empty-batch rules are the per-partition query's
        try:
            out[label] = [_judged(suite, e, plan.compiled[e.index], values, label, _raise_needs_own_query)
                          for e in expectations]
        except Exception:  # noqa: BLE001 - unexpected rows to sample, or a judge error: its own query
            continue
    share = (time.perf_counter() - started) / max(1, len(scopes) * len(expectations))
    for results in out.values():
        for r in results:
            r.details["seconds"] = share
    return out


def _one_day(window: tuple[str, str, str]) -> bool:
    """A daily partition of a DATE column: labelled by its date, one day long."""
    import datetime as _dt

    label, start, end = window
    try:
        return label == start and _dt.date.fromisoformat(end) - _dt.date.fromisoformat(start) == _dt.timedelta(1)
    except ValueError:
        return False


def _raise_needs_own_query() -> list[Any]:
    raise _NeedsOwnQuery()


def _index(expectations: Sequence[Expectation], name: str) -> int:
    return next(e.index for e in expectations if e.name == name)
