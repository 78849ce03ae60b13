"""Great Expectations expectations compiled to sqlglot expressions, judged the way GX judges them.

Each covered expectation type has a compiler that adds what it needs to one shared aggregate query
(`QueryBuilder`: select-list aggregates, deduplicated, plus helper CTEs for medians and duplicate
counts) and returns a `Compiled`: a judge that turns the fetched values into GX's `(success, result)`
pair, and, for map expectations, the predicate of an unexpected row (to fetch GX's
`partial_unexpected_list` when something is unexpected).

The SQL mirrors GX's own SQLAlchemy metrics (`avg(1.0 * col)`, `stddev_samp`, `count(distinct)`,
the median as the two middle values averaged in Python, nulls left out of map expectations ...), and the
judging mirrors GX's `_validate` methods (vacuous success on empty batches, `mostly` on the non-null rows,
`_validate_metric_value_between`). Anything we do not cover exactly - unknown kwargs such as
`row_condition`, odd argument shapes - raises `NotCovered` and GX runs it instead.

Expressions are built as sqlglot trees and rendered in the warehouse's dialect; nothing here is
DuckDB-specific.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_REPLAY = threading.local()


class _Nothing:
    """Stands in for every sqlglot expression while a compile is replayed: builds nothing, costs nothing."""

    def __getattr__(self, name: str) -> _Nothing:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Nothing:
        return self


_NOTHING = _Nothing()


class _Expressions:
    """`sqlglot.expressions`, imported on first use (a warm `sqlassets check` never imports sqlglot).

    Inside `replaying()` (this thread only) every attribute is `_Nothing`: the compilers then only
    validate their arguments and build their judges, taking the positions of their aggregates from a tape
    recorded when the query was first compiled (see `QueryBuilder`).
    """

    def __getattr__(self, name: str) -> Any:
        if getattr(_REPLAY, "active", False):
            return _NOTHING
        from sqlglot import exp as real

        return getattr(real, name)


exp: Any = _Expressions()


@contextmanager
def replaying() -> Iterator[None]:
    _REPLAY.active = True
    try:
        yield
    finally:
        _REPLAY.active = False


class NotCovered(Exception):
    """This expectation (type or arguments) is left to Great Expectations."""


# kwargs every expectation may carry that do not change what is computed
_COMMON = {"result_format", "catch_exceptions", "meta", "notes", "description", "severity", "id",
           "batch_id", "rendered_content", "windows"}

Judge = Callable[[list[Any]], tuple[bool, dict[str, Any]]]


@dataclass
class Compiled:
    """One expectation, compiled: how to judge the fetched aggregate values, and how to sample failures."""

    judge: Judge
    # the row predicate of an unexpected row and the columns to show (map expectations only)
    unexpected: exp.Expression | None = None
    sample_columns: tuple[str, ...] = ()
    # a map expectation's unexpected count, to know whether sampling is needed (index into the values)
    unexpected_slot: int | None = None
    pairs: bool = False  # GX lists a column pair's unexpected values as [A, B], several columns as dicts


@dataclass
class QueryBuilder:
    """The one aggregate query of a batch: `WITH batch AS (...), helpers SELECT aggregates FROM batch`.

    Every position and name it hands out is also appended to `tape`; a builder made with `replay` (a
    recorded tape) hands them out again without building anything, for a compile replayed without sqlglot.
    """

    selects: list[exp.Expression] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)
    ctes: list[tuple[str, exp.Expression]] = field(default_factory=list)
    _cte_index: dict[str, str] = field(default_factory=dict)
    tape: list[Any] = field(default_factory=list)
    replay: Iterator[Any] | None = None

    def agg(self, expression: exp.Expression) -> int:
        """Add a select-list expression (once) and return its position in the fetched row."""
        if self.replay is not None:
            return next(self.replay)
        key = expression.sql()
        if key not in self._index:
            self._index[key] = len(self.selects)
            self.selects.append(expression)
        self.tape.append(self._index[key])
        return self._index[key]

    def cte(self, hint: str, select: exp.Expression) -> str:
        """Add a helper CTE (once per distinct body) and return its name."""
        if self.replay is not None:
            return next(self.replay)
        key = select.sql()
        if key not in self._cte_index:
            name = f"sqlassets_{hint}_{len(self.ctes)}"
            self._cte_index[key] = name
            self.ctes.append((name, select))
        self.tape.append(self._cte_index[key])
        return self._cte_index[key]


@dataclass(frozen=True)
class Columns:
    """The batch's columns as the warehouse reports them: names in order, and types (upper-case text)."""

    names: tuple[str, ...]
    types: tuple[str, ...]

    def resolve(self, name: Any) -> str:
        """The column as the warehouse spells it (exact, else case-insensitive); KeyError when absent."""
        if not isinstance(name, str):
            raise NotCovered("column is not a string")
        if name in self.names:
            return name
        folded = [n for n in self.names if n.lower() == name.lower()]
        if len(folded) == 1:
            return folded[0]
        raise KeyError(name)


class MissingColumn(Exception):
    """GX errors an expectation whose column does not exist; so do we (same wording)."""


# -- small SQL helpers -------------------------------------------------------------------------------------

def col(name: str) -> exp.Column:
    return exp.column(name, quoted=True)


def count_if(cond: exp.Expression) -> exp.Expression:
    """COUNT(CASE WHEN cond THEN 1 END): portable (no FILTER clause, which BigQuery lacks)."""
    return exp.Count(this=exp.Case(ifs=[exp.If(this=cond, true=exp.Literal.number(1))]))


def literal(value: Any) -> exp.Expression:
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float) and not (isinstance(value, float) and not math.isfinite(value)):
        return exp.Literal.number(repr(value) if isinstance(value, float) else str(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    raise NotCovered(f"literal of type {type(value).__name__}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- judging as GX does ------------------------------------------------------------------------------------

def _parse_dt(text: str) -> Any:
    try:
        from dateutil.parser import parse  # what GX uses
    except ImportError:  # pragma: no cover - GX not installed: ISO strings only
        return _dt.datetime.fromisoformat(text)
    return parse(text)


def comparable(value: Any) -> Any:
    """A bound as GX's pydantic `Comparable` field reads it: a number, a date ('YYYY-MM-DD') or a datetime.

    Anything else makes GX reject the expectation: NotCovered, so GX reports it in its own words.
    """
    if value is None or _number(value):
        return value
    if isinstance(value, str):
        try:
            return _dt.date.fromisoformat(value) if len(value) == 10 else _dt.datetime.fromisoformat(value)
        except ValueError:
            pass
    raise NotCovered("bound is not a number, date or datetime")


def between(value: Any, kw: dict[str, Any], *, exact_decimal: bool = False) -> tuple[bool, dict[str, Any]]:
    """GX's `_validate_metric_value_between` on an observed metric value.

    GX on DuckDB reads temporal aggregates as text; the bound's type then decides what the observed value
    becomes (a date bound: the date; a datetime bound: the datetime; a number: GX errors comparing text).
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False, {"observed_value": None}
    lo, hi = comparable(kw.get("min_value")), comparable(kw.get("max_value"))
    if isinstance(value, decimal.Decimal) and not exact_decimal:
        value = float(value)  # GX's aggregate metrics hand decimals on as floats (its median does not)
    if isinstance(value, _dt.date):
        value = str(value)
    if isinstance(lo, _dt.datetime) or isinstance(hi, _dt.datetime):
        value = _parse_dt(value) if not isinstance(value, _dt.datetime) else value
    elif isinstance(lo, _dt.date) or isinstance(hi, _dt.date):
        value = _parse_dt(value).date() if not isinstance(value, _dt.date) else value
    above = True if lo is None else (value > lo if kw.get("strict_min") else value >= lo)
    below = True if hi is None else (value < hi if kw.get("strict_max") else value <= hi)
    return bool(above and below), {"observed_value": value}


def _mostly(kw: dict[str, Any]) -> float:
    mostly = kw.get("mostly", 1.0)
    if not _number(mostly) or not 0 <= mostly <= 1:
        raise NotCovered("mostly outside [0, 1]: GX reports it")
    return float(mostly)


def map_output(success: bool, element_count: int, nonnull_count: int | None, unexpected_count: int | None
               ) -> dict[str, Any]:
    """GX's `_format_map_output` (SUMMARY), without the unexpected list (added after sampling)."""
    result: dict[str, Any] = {"element_count": element_count, "unexpected_count": unexpected_count}
    counted = unexpected_count is not None and element_count > 0
    pct_total = unexpected_count / element_count * 100 if counted else None
    if nonnull_count is None:
        result["unexpected_percent"] = pct_total
        return result
    missing = element_count - nonnull_count
    pct_nonmissing = unexpected_count / nonnull_count * 100 if counted and nonnull_count > 0 else None
    result["unexpected_percent"] = pct_nonmissing
    result["missing_count"] = missing
    result["missing_percent"] = missing / element_count * 100 if counted else None
    result["unexpected_percent_total"] = pct_total
    result["unexpected_percent_nonmissing"] = pct_nonmissing
    return result


def _ratio_success(considered: int, unexpected: int, mostly: float) -> bool:
    if considered == 0:
        return True  # vacuously true, as GX
    return (float(considered) - float(unexpected)) / float(considered) >= mostly


# -- compilers ---------------------------------------------------------------------------------------------

Compiler = Callable[[dict[str, Any], QueryBuilder, Columns], Compiled]
COMPILERS: dict[str, tuple[frozenset[str], Compiler]] = {}


def compiler(etype: str, *kwargs: str) -> Callable[[Compiler], Compiler]:
    def register(fn: Compiler) -> Compiler:
        COMPILERS[etype] = (frozenset(kwargs), fn)
        return fn

    return register


def _column(kw: dict[str, Any], cols: Columns, key: str = "column") -> str:
    try:
        return cols.resolve(kw.get(key))
    except KeyError:
        raise MissingColumn(f'Error: The column "{kw.get(key)}" in BatchData does not exist.') from None


def _column_map(kw: dict[str, Any], b: QueryBuilder, cols: Columns,
                expected: Callable[[exp.Column], exp.Expression]) -> Compiled:
    """A column map expectation: nulls are left out; `mostly` applies to the non-null rows."""
    name = _column(kw, cols)
    mostly = _mostly(kw)
    c = col(name)
    bad = exp.and_(exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null())),
                   exp.Not(this=exp.Paren(this=expected(c.copy()))))
    total = b.agg(exp.Count(this=exp.Star()))
    nonnull = b.agg(exp.Count(this=c.copy()))
    unexpected = b.agg(count_if(bad))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, nn = int(v[total]), int(v[nonnull])
        u = int(v[unexpected]) if n else None  # GX: no rows, no unexpected count
        success = True if not n else _ratio_success(nn, u, mostly)
        return success, map_output(success, n, nn, u)

    return Compiled(judge, unexpected=bad, sample_columns=(name,), unexpected_slot=unexpected)


def _null_map(kw: dict[str, Any], b: QueryBuilder, cols: Columns, *, want_null: bool) -> Compiled:
    name = _column(kw, cols)
    mostly = _mostly(kw)
    c = col(name)
    is_null = exp.Is(this=c.copy(), expression=exp.Null())
    bad = exp.Not(this=is_null) if want_null else is_null
    total = b.agg(exp.Count(this=exp.Star()))
    nonnull = b.agg(exp.Count(this=c.copy()))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, nn = int(v[total]), int(v[nonnull])
        if not n:
            return True, map_output(True, 0, None, None)
        u = nn if want_null else n - nn
        success = (n - u) / n >= mostly
        return success, map_output(success, n, None, u)

    # not_null's unexpected count is derived: sample when count(*) > count(col)
    return Compiled(judge, unexpected=bad, sample_columns=(name,), unexpected_slot=None)


@compiler("expect_column_values_to_not_be_null", "column", "mostly")
def _not_null(kw, b, cols):
    return _null_map(kw, b, cols, want_null=False)


@compiler("expect_column_values_to_be_null", "column", "mostly")
def _be_null(kw, b, cols):
    return _null_map(kw, b, cols, want_null=True)


def _bounds(c: exp.Expression, kw: dict[str, Any]) -> exp.Expression:
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is None and hi is None:
        raise NotCovered("min_value and max_value both None: GX reports it")
    for v in (lo, hi):
        comparable(v)
    if _number(lo) and _number(hi) and lo > hi:
        raise NotCovered("min_value > max_value: GX reports it")
    parts = []
    if lo is not None:
        parts.append((exp.GT if kw.get("strict_min") else exp.GTE)(this=c.copy(), expression=literal(lo)))
    if hi is not None:
        parts.append((exp.LT if kw.get("strict_max") else exp.LTE)(this=c.copy(), expression=literal(hi)))
    return exp.and_(*parts)


@compiler("expect_column_values_to_be_between", "column", "mostly", "min_value", "max_value", "strict_min",
          "strict_max")
def _values_between(kw, b, cols):
    return _column_map(kw, b, cols, lambda c: _bounds(c, kw))


def _value_set(kw: dict[str, Any]) -> list[exp.Expression]:
    values = kw.get("value_set")
    if not isinstance(values, list) or not values:
        raise NotCovered("value_set must be a non-empty list")
    if any(v is None for v in values):
        raise NotCovered("null in value_set")
    return [literal(v) for v in values]


@compiler("expect_column_values_to_be_in_set", "column", "mostly", "value_set")
def _in_set(kw, b, cols):
    values = _value_set(kw)
    return _column_map(kw, b, cols, lambda c: exp.In(this=c, expressions=[v.copy() for v in values]))


@compiler("expect_column_values_to_not_be_in_set", "column", "mostly", "value_set")
def _not_in_set(kw, b, cols):
    values = _value_set(kw)
    return _column_map(kw, b, cols, lambda c: exp.Not(this=exp.In(this=c, expressions=[v.copy() for v in values])))


def _text(c: exp.Expression) -> exp.Expression:
    return exp.cast(c, exp.DataType.build("text"))


def _regex(kw: dict[str, Any]) -> exp.Expression:
    regex = kw.get("regex")
    if not isinstance(regex, str):
        raise NotCovered("regex must be a string")
    return exp.Literal.string(regex)


@compiler("expect_column_values_to_match_regex", "column", "mostly", "regex")
def _match_regex(kw, b, cols):
    rx = _regex(kw)
    return _column_map(kw, b, cols, lambda c: exp.RegexpLike(this=_text(c), expression=rx.copy()))


@compiler("expect_column_values_to_not_match_regex", "column", "mostly", "regex")
def _not_match_regex(kw, b, cols):
    rx = _regex(kw)
    return _column_map(kw, b, cols, lambda c: exp.Not(this=exp.RegexpLike(this=_text(c), expression=rx.copy())))


def _like(kw: dict[str, Any]) -> exp.Expression:
    pattern = kw.get("like_pattern")
    if not isinstance(pattern, str):
        raise NotCovered("like_pattern must be a string")
    return exp.Literal.string(pattern)


@compiler("expect_column_values_to_match_like_pattern", "column", "mostly", "like_pattern")
def _match_like(kw, b, cols):
    pattern = _like(kw)
    return _column_map(kw, b, cols, lambda c: exp.Like(this=c, expression=pattern.copy()))


@compiler("expect_column_values_to_not_match_like_pattern", "column", "mostly", "like_pattern")
def _not_match_like(kw, b, cols):
    pattern = _like(kw)
    return _column_map(kw, b, cols, lambda c: exp.Not(this=exp.Like(this=c, expression=pattern.copy())))


@compiler("expect_column_value_lengths_to_be_between", "column", "mostly", "min_value", "max_value",
          "strict_min", "strict_max")
def _lengths_between(kw, b, cols):
    for v in (kw.get("min_value"), kw.get("max_value")):
        if v is not None and not isinstance(v, int):
            raise NotCovered("length bounds must be integers")
    return _column_map(kw, b, cols, lambda c: _bounds(exp.Length(this=c), kw))


@compiler("expect_column_value_lengths_to_equal", "column", "mostly", "value")
def _lengths_equal(kw, b, cols):
    if not isinstance(kw.get("value"), int) or isinstance(kw.get("value"), bool):
        raise NotCovered("value must be an integer")
    return _column_map(kw, b, cols, lambda c: exp.EQ(this=exp.Length(this=c), expression=literal(kw["value"])))


@compiler("expect_column_values_to_be_unique", "column", "mostly")
def _unique(kw, b, cols):
    name = _column(kw, cols)
    mostly = _mostly(kw)
    c = col(name)
    # the duplicated values, as GX's column_values.unique: a value that occurs at least twice
    dups = (exp.select(c.copy()).from_("batch").where(exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null())))
            .group_by(c.copy()).having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1))))
    counted = (exp.select(exp.alias_(exp.Count(this=exp.Star()), "n")).from_("batch")
               .where(exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null())))
               .group_by(c.copy()).having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1))))
    name_cte = b.cte("dup", counted)
    total = b.agg(exp.Count(this=exp.Star()))
    nonnull = b.agg(exp.Count(this=c.copy()))
    dup_rows = b.agg(exp.Subquery(this=exp.select(exp.Sum(this=exp.column("n"))).from_(name_cte)))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, nn, u = int(v[total]), int(v[nonnull]), int(v[dup_rows] or 0)
        success = True if not n else _ratio_success(nn, u, mostly)
        return success, map_output(success, n, nn, u)

    bad = c.copy().isin(query=dups)
    return Compiled(judge, unexpected=bad, sample_columns=(name,), unexpected_slot=dup_rows)


@compiler("expect_compound_columns_to_be_unique", "column_list", "mostly", "ignore_row_if")
def _compound_unique(kw, b, cols):
    names = kw.get("column_list")
    if not isinstance(names, list) or len(names) < 2:
        raise NotCovered("column_list must list two or more columns")
    ignore = kw.get("ignore_row_if", "all_values_are_missing")
    if ignore not in ("all_values_are_missing", "any_value_is_missing", "never"):
        raise NotCovered("unknown ignore_row_if")
    mostly = _mostly(kw)
    try:
        resolved = [cols.resolve(n) for n in names]
    except KeyError as exc:
        raise MissingColumn(f'Error: The column "{exc.args[0]}" in BatchData does not exist.') from None
    cs = [col(n) for n in resolved]
    nulls = [exp.Is(this=c.copy(), expression=exp.Null()) for c in cs]
    if ignore == "all_values_are_missing":
        keep: exp.Expression | None = exp.Not(this=exp.Paren(this=exp.and_(*nulls)))
    elif ignore == "any_value_is_missing":
        keep = exp.Not(this=exp.Paren(this=exp.or_(*nulls)))
    else:
        keep = None
    # GX counts each value tuple and joins the counts back on equality: a row holding a null never joins,
    # so only rows without nulls can be duplicates.
    complete = exp.and_(*[exp.Not(this=n.copy()) for n in nulls])
    grouped = (exp.select(*[c.copy() for c in cs], exp.alias_(exp.Count(this=exp.Star()), "n")).from_("batch")
               .where(complete.copy()).group_by(*[c.copy() for c in cs])
               .having(exp.GT(this=exp.Count(this=exp.Star()), expression=exp.Literal.number(1))))
    cte = b.cte("cdup", grouped)
    total = b.agg(exp.Count(this=exp.Star()))
    considered = b.agg(count_if(keep.copy()) if keep is not None else exp.Count(this=exp.Star()))
    dup_rows = b.agg(exp.Subquery(this=exp.select(exp.Sum(this=exp.column("n"))).from_(cte)))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, f, u = int(v[total]), int(v[considered]), int(v[dup_rows] or 0)
        success = True if not n or f == 0 else _ratio_success(f, u, mostly)
        return success, map_output(success, n, f, u)

    match = exp.Exists(this=exp.select("1").from_(exp.alias_(exp.to_table(cte), "d")).where(exp.and_(*[
        exp.EQ(this=exp.column(n, table="d", quoted=True), expression=exp.column(n, table="batch", quoted=True))
        for n in resolved])))
    return Compiled(judge, unexpected=match, sample_columns=tuple(resolved), unexpected_slot=dup_rows)


@compiler("expect_column_pair_values_to_be_equal", "column_A", "column_B", "mostly", "ignore_row_if")
def _pair_equal(kw, b, cols):
    ignore = kw.get("ignore_row_if", "both_values_are_missing")
    if ignore not in ("both_values_are_missing", "either_value_is_missing", "neither"):
        raise NotCovered("unknown ignore_row_if")
    mostly = _mostly(kw)
    a, bb = col(_column(kw, cols, "column_A")), col(_column(kw, cols, "column_B"))
    a_null = exp.Is(this=a.copy(), expression=exp.Null())
    b_null = exp.Is(this=bb.copy(), expression=exp.Null())
    if ignore == "both_values_are_missing":
        keep: exp.Expression | None = exp.Not(this=exp.Paren(this=exp.and_(a_null.copy(), b_null.copy())))
    elif ignore == "either_value_is_missing":
        keep = exp.Not(this=exp.Paren(this=exp.or_(a_null.copy(), b_null.copy())))
    else:
        keep = None
    # GX: A = B AND NOT (A IS NULL OR B IS NULL); a row is unexpected when that is not true
    equal = exp.and_(exp.EQ(this=a.copy(), expression=bb.copy()),
                     exp.Not(this=exp.Paren(this=exp.or_(a_null.copy(), b_null.copy()))))
    not_equal = exp.Not(this=exp.Paren(this=exp.Coalesce(this=exp.Paren(this=equal),
                                                         expressions=[exp.Boolean(this=False)])))
    bad = exp.and_(keep.copy(), not_equal) if keep is not None else not_equal
    total = b.agg(exp.Count(this=exp.Star()))
    considered = b.agg(count_if(keep.copy()) if keep is not None else exp.Count(this=exp.Star()))
    unexpected = b.agg(count_if(bad.copy()))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, f, u = int(v[total]), int(v[considered]), int(v[unexpected])
        success = True if not n or f == 0 else _ratio_success(f, u, mostly)
        return success, map_output(success, n, f, u)

    names = (kw["column_A"], kw["column_B"])
    return Compiled(judge, unexpected=bad, sample_columns=(cols.resolve(names[0]), cols.resolve(names[1])),
                    unexpected_slot=unexpected, pairs=True)


# -- table-level and aggregate expectations ------------------------------------------------------------

@compiler("expect_table_row_count_to_be_between", "min_value", "max_value", "strict_min", "strict_max")
def _row_count_between(kw, b, cols):
    total = b.agg(exp.Count(this=exp.Star()))
    return Compiled(lambda v: between(int(v[total]), kw))


@compiler("expect_table_row_count_to_equal", "value")
def _row_count_equal(kw, b, cols):
    if not isinstance(kw.get("value"), int) or isinstance(kw.get("value"), bool):
        raise NotCovered("value must be an integer")
    total = b.agg(exp.Count(this=exp.Star()))
    return Compiled(lambda v: (int(v[total]) == kw["value"], {"observed_value": int(v[total])}))


@compiler("expect_table_column_count_to_equal", "value")
def _column_count_equal(kw, b, cols):
    if not isinstance(kw.get("value"), int) or isinstance(kw.get("value"), bool):
        raise NotCovered("value must be an integer")
    n = len(cols.names)
    return Compiled(lambda v: (n == kw["value"], {"observed_value": n}))


@compiler("expect_table_column_count_to_be_between", "min_value", "max_value", "strict_min", "strict_max")
def _column_count_between(kw, b, cols):
    n = len(cols.names)
    return Compiled(lambda v: between(n, kw))


@compiler("expect_column_to_exist", "column", "column_index")
def _column_exists(kw, b, cols):
    name, index = kw.get("column"), kw.get("column_index")
    if not isinstance(name, str) or (index is not None and (not isinstance(index, int) or isinstance(index, bool))):
        raise NotCovered("column must be a string, column_index an integer")
    names = list(cols.names)
    if index:
        ok = 0 <= index < len(names) and names[index] == name if index >= 0 else \
            (-index <= len(names) and names[index] == name)
    else:
        ok = name in names
    return Compiled(lambda v: (bool(ok), {}))


@compiler("expect_table_columns_to_match_ordered_list", "column_list")
def _ordered_list(kw, b, cols):
    expected = kw.get("column_list")
    if expected is not None and not isinstance(expected, list):
        raise NotCovered("column_list must be a list")
    actual = list(cols.names)

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        if expected is None or actual == list(expected):
            return True, {"observed_value": actual}
        from itertools import zip_longest

        size = max(len(expected), len(actual))
        mismatched = [{"Expected Column Position": i, "Expected": k, "Found": f}
                      for i, k, f in zip_longest(range(size), list(expected), actual) if k != f]
        return False, {"observed_value": actual, "details": {"mismatched": mismatched}}

    return Compiled(judge)


@compiler("expect_table_columns_to_match_set", "column_set", "exact_match")
def _match_set(kw, b, cols):
    expected = kw.get("column_set")
    exact = kw.get("exact_match", True)
    if not isinstance(expected, list) or not isinstance(exact, bool | type(None)):
        raise NotCovered("column_set must be a list")
    actual = list(cols.names)

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        want, got = set(expected), set(actual)
        unexpected = sorted(got - want)
        missing = sorted(want - got)
        result: dict[str, Any] = {"observed_value": sorted(actual)}
        mismatched: dict[str, Any] = {}
        if unexpected:
            mismatched["unexpected"] = unexpected
        if missing:
            mismatched["missing"] = missing
        if mismatched:
            result["details"] = {"mismatched": mismatched}
        success = not missing if exact is False else not (missing or unexpected)
        return success, result

    return Compiled(judge)


# Type names as written in suites, folded onto the warehouse's spelling (DuckDB, Snowflake, BigQuery, Postgres).
_TYPE_ALIASES = {
    "INT": "INTEGER", "INT4": "INTEGER", "SIGNED": "INTEGER", "INT8": "BIGINT", "INT64": "BIGINT", "LONG": "BIGINT",
    "INT2": "SMALLINT", "SHORT": "SMALLINT", "INT1": "TINYINT", "TEXT": "VARCHAR", "STRING": "VARCHAR",
    "CHAR": "VARCHAR", "BPCHAR": "VARCHAR", "CHARACTER VARYING": "VARCHAR", "NUMERIC": "DECIMAL",
    "NUMBER": "DECIMAL", "BIGNUMERIC": "DECIMAL", "FLOAT8": "DOUBLE", "DOUBLE PRECISION": "DOUBLE",
    "FLOAT64": "DOUBLE", "FLOAT4": "FLOAT", "REAL": "FLOAT", "BOOL": "BOOLEAN", "LOGICAL": "BOOLEAN",
    "DATETIME": "TIMESTAMP", "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "TIMESTAMP_NTZ": "TIMESTAMP",
    "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_TZ": "TIMESTAMP WITH TIME ZONE",
}


def type_matches(actual: str, wanted: Any) -> bool:
    """`wanted` names the column's type: exactly (`DECIMAL(10,2)`), or without its parameters (`DECIMAL`),
    or by a common alias (`NUMERIC`, `INT`, `TEXT`, `STRING`, `FLOAT8`, ...). Case-insensitive."""
    if not isinstance(wanted, str):
        return False
    a, w = " ".join(actual.upper().split()), " ".join(wanted.upper().split())
    if a == w:
        return True
    a_base, _, a_args = a.partition("(")
    w_base, _, w_args = w.partition("(")
    same = _TYPE_ALIASES.get(a_base.strip(), a_base.strip()) == _TYPE_ALIASES.get(w_base.strip(), w_base.strip())
    return same and (not w_args or a_args.replace(" ", "") == w_args.replace(" ", ""))


@compiler("expect_column_values_to_be_of_type", "column", "type_", "mostly")
def _of_type(kw, b, cols):
    name = _column(kw, cols)
    actual = cols.types[cols.names.index(name)]
    if not isinstance(kw.get("type_"), str):
        raise NotCovered("type_ must be a string")
    return Compiled(lambda v: (type_matches(actual, kw["type_"]), {"observed_value": actual}))


@compiler("expect_column_values_to_be_in_type_list", "column", "type_list", "mostly")
def _in_type_list(kw, b, cols):
    name = _column(kw, cols)
    actual = cols.types[cols.names.index(name)]
    wanted = kw.get("type_list")
    if wanted is not None and not isinstance(wanted, list):
        raise NotCovered("type_list must be a list")
    return Compiled(lambda v: (wanted is None or any(type_matches(actual, t) for t in wanted),
                               {"observed_value": actual}))


def _aggregate_between(kw: dict[str, Any], b: QueryBuilder, cols: Columns,
                       make: Callable[[exp.Column], exp.Expression]) -> Compiled:
    for v in (kw.get("min_value"), kw.get("max_value")):
        comparable(v)
    c = col(_column(kw, cols))
    slot = b.agg(make(c))
    return Compiled(lambda v: between(v[slot], kw))


_BETWEEN = ("column", "min_value", "max_value", "strict_min", "strict_max")


@compiler("expect_column_min_to_be_between", *_BETWEEN)
def _min(kw, b, cols):
    return _aggregate_between(kw, b, cols, lambda c: exp.Min(this=c))


@compiler("expect_column_max_to_be_between", *_BETWEEN)
def _max(kw, b, cols):
    return _aggregate_between(kw, b, cols, lambda c: exp.Max(this=c))


@compiler("expect_column_mean_to_be_between", *_BETWEEN)
def _mean(kw, b, cols):
    # GX: avg(1.0 * column), its 1.0 a bound float parameter: a double, so the mean is a double average
    one = exp.cast(exp.Literal.number("1.0"), exp.DataType.build("double"))
    return _aggregate_between(kw, b, cols, lambda c: exp.Avg(this=exp.Mul(this=one.copy(), expression=c)))


@compiler("expect_column_sum_to_be_between", *_BETWEEN)
def _sum(kw, b, cols):
    return _aggregate_between(kw, b, cols, lambda c: exp.Sum(this=c))


@compiler("expect_column_stdev_to_be_between", *_BETWEEN)
def _stdev(kw, b, cols):
    return _aggregate_between(kw, b, cols, lambda c: exp.StddevSamp(this=c))


@compiler("expect_column_unique_value_count_to_be_between", *_BETWEEN)
def _distinct_count(kw, b, cols):
    return _aggregate_between(kw, b, cols, lambda c: exp.Count(this=exp.Distinct(expressions=[c])))


@compiler("expect_column_proportion_of_unique_values_to_be_between", *_BETWEEN)
def _unique_proportion(kw, b, cols):
    c = col(_column(kw, cols))
    total = b.agg(exp.Count(this=exp.Star()))
    nonnull = b.agg(exp.Count(this=c.copy()))
    distinct = b.agg(exp.Count(this=exp.Distinct(expressions=[c.copy()])))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, nn, d = int(v[total]), int(v[nonnull]), int(v[distinct])
        return between(d / nn if n > 0 and nn > 0 else 0, kw)

    return Compiled(judge)


@compiler("expect_column_proportion_of_non_null_values_to_be_between", *_BETWEEN)
def _nonnull_proportion(kw, b, cols):
    c = col(_column(kw, cols))
    total = b.agg(exp.Count(this=exp.Star()))
    nonnull = b.agg(exp.Count(this=c.copy()))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        n, nn = int(v[total]), int(v[nonnull])
        return between(nn / n if n > 0 else 0, kw)

    return Compiled(judge)


@compiler("expect_column_median_to_be_between", *_BETWEEN)
def _median(kw, b, cols):
    name = _column(kw, cols)
    c = col(name)
    # The one or two middle values (as GX: sorted non-null values, offset n // 2 - 1, limit 2), averaged
    # in Python exactly as GX does, so the observed value keeps GX's type and rounding.
    ranked = (exp.select(exp.alias_(c.copy(), "v"),
                         exp.alias_(exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[
                             exp.Ordered(this=c.copy())])), "rn"),
                         exp.alias_(exp.Window(this=exp.Count(this=exp.Star())), "n"))
              .from_("batch").where(exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null()))))
    two_rn = exp.Mul(this=exp.Literal.number(2), expression=exp.column("rn"))
    middle = exp.select("v").from_(ranked.subquery("ranked")).where(exp.and_(
        exp.GTE(this=two_rn, expression=exp.column("n")),
        exp.LTE(this=two_rn.copy(), expression=exp.Add(this=exp.column("n"), expression=exp.Literal.number(2)))))
    cte = b.cte("median", middle)
    nonnull = b.agg(exp.Count(this=c.copy()))
    lo = b.agg(exp.Subquery(this=exp.select(exp.Min(this=exp.column("v"))).from_(cte)))
    hi = b.agg(exp.Subquery(this=exp.select(exp.Max(this=exp.column("v"))).from_(cte)))

    def judge(v: list[Any]) -> tuple[bool, dict[str, Any]]:
        nn = int(v[nonnull])
        if nn == 0:
            value = None
        elif nn % 2 == 0:
            value = float(v[lo] + v[hi]) / 2.0
        else:
            value = v[lo]
        return between(value, kw, exact_decimal=True)

    return Compiled(judge)


def covered(etype: str, kwargs: dict[str, Any]) -> bool:
    """Whether the SQL engine evaluates this expectation (type known, no kwargs it does not understand)."""
    entry = COMPILERS.get(etype)
    return entry is not None and set(kwargs) <= (entry[0] | _COMMON)


def compile_expectation(etype: str, kwargs: dict[str, Any], builder: QueryBuilder, columns: Columns) -> Compiled:
    """Compile one expectation into `builder`; NotCovered / MissingColumn for the caller to route."""
    if not covered(etype, kwargs):
        raise NotCovered(etype)
    return COMPILERS[etype][1](kwargs, builder, columns)


def covered_types() -> Sequence[str]:
    return sorted(COMPILERS)
