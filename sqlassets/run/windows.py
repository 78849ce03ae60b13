"""Partition windows into SQL, as typed literals.

An asset's SELECT is parsed once and its window references are replaced by *sentinel* literals:
- raw SQL files use placeholders `:window_start`, `:window_end` (TIMESTAMP, half-open [start, end)) and
  `:partition_key` (the key as text, e.g. a static partition name);
- compiled dbt SQL carries the sentinel strings we passed as `var('window_start')`, `var('window_end')`,
  `var('partition_key')` at compile time;
- for dbt microbatch models, upstream refs/sources that declare `event_time` are wrapped in
  `(SELECT * FROM upstream WHERE event_time >= start AND event_time < end)`, as dbt does per batch.

The expression is rendered once per asset in the warehouse dialect (a `Template`); per partition only the
sentinel tokens are swapped for string literals quoted the dialect's way (`literal_sql`: sqlglot's
quoting, held to it by a test) from validated values. That keeps the per-partition cost to a few string
replacements while no user text is ever pasted into SQL; sqlglot is imported only to parse and build.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError
from sqlassets.run.partitions import PartitionsDef, TimePartitionsDef, Window

if TYPE_CHECKING:
    from sqlglot import exp

    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset

SENTINEL_START = "__sqlassets_window_start__"
SENTINEL_END = "__sqlassets_window_end__"
SENTINEL_KEY = "__sqlassets_partition_key__"
SENTINEL_KEYS = "__sqlassets_partition_keys__"
SENTINELS = (SENTINEL_START, SENTINEL_END, SENTINEL_KEY, SENTINEL_KEYS)
PLACEHOLDERS = {"window_start": SENTINEL_START, "window_end": SENTINEL_END, "partition_key": SENTINEL_KEY}
# What dbt models receive at compile time: `{{ var('window_start') }}` etc. compile to the sentinels.
DBT_VARS = {"window_start": SENTINEL_START, "window_end": SENTINEL_END, "partition_key": SENTINEL_KEY}


def sentinel(name: str) -> exp.Expression:
    """The typed sentinel a placeholder becomes: CAST('<sentinel>' AS TIMESTAMP) for window bounds."""
    from sqlglot import exp

    if name in (SENTINEL_START, SENTINEL_END):
        return exp.Cast(this=exp.Literal.string(name), to=exp.DataType.build("TIMESTAMP"))
    return exp.Literal.string(name)


@dataclass(frozen=True)
class PreparedSelect:
    """An asset's SELECT with sentinels in place of its window, plus what it uses."""

    expression: exp.Expression
    uses_window: bool
    uses_key: bool


def _table_name(table: exp.Table) -> str:
    return ".".join(p.name for p in (table.args.get("catalog"), table.args.get("db"), table.this) if p is not None
                    and p.name)


def window_predicate(column: str, *, quoted: bool = True) -> exp.Expression:
    """`column >= CAST(<start> AS TIMESTAMP) AND column < CAST(<end> AS TIMESTAMP)` with sentinels."""
    from sqlglot import exp

    col = exp.column(column, quoted=quoted)
    return exp.and_(exp.GTE(this=col, expression=sentinel(SENTINEL_START)),
                    exp.LT(this=col.copy(), expression=sentinel(SENTINEL_END)))


def keys_predicate(column: str, *, quoted: bool = True) -> exp.Expression:
    """`column IN ('<keys sentinel>')`; the sentinel expands to the batch's key literals."""
    from sqlglot import exp

    return exp.In(this=exp.column(column, quoted=quoted), expressions=[exp.Literal.string(SENTINEL_KEYS)])


def partition_predicate(pdef: PartitionsDef, *, quoted: bool = True) -> exp.Expression:
    assert pdef.column is not None
    if isinstance(pdef, TimePartitionsDef):
        return window_predicate(pdef.column, quoted=quoted)
    return keys_predicate(pdef.column, quoted=quoted)


def prepare_select(asset: Asset, sql: str, graph: AssetGraph | None = None, *,
                   pdef: PartitionsDef | None = None, _stack: tuple[str, ...] = ()) -> PreparedSelect:
    """Parse an asset's SQL and put sentinels where its window goes; errors name the asset."""
    import sqlglot
    from sqlglot import exp

    where = asset.path or asset.key
    try:
        statements = [s for s in sqlglot.parse(sql, read=asset.dialect or None) if s is not None]
    except sqlglot.errors.SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise UserError(f"{where}: cannot parse SQL of '{asset.key}': {first}") from None
    except RecursionError:
        raise UserError(f"{where}: SQL of '{asset.key}' is nested too deeply to parse; flatten it (e.g. into "
                        "CTEs)") from None
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        raise UserError(f"{where}: '{asset.key}' must be exactly one SELECT query (found "
                        f"{len(statements)} statement(s)); sqlassets writes the table itself")
    tree = statements[0]
    uses_window = uses_key = False

    for ph in list(tree.find_all(exp.Placeholder)):
        name = ph.name
        if name not in PLACEHOLDERS:
            known = ", ".join(f":{p}" for p in PLACEHOLDERS)
            raise UserError(f"{where}: unknown placeholder ':{name}' in '{asset.key}'; known: {known}")
        if pdef is None:
            raise UserError(f"{where}: '{asset.key}' uses ':{name}' but is not partitioned; add "
                            "'-- partitioned: daily' (or another grain) to its header")
        if name == "partition_key":
            uses_key = True
        elif not isinstance(pdef, TimePartitionsDef):
            raise UserError(f"{where}: ':{name}' needs time partitions; static partitions use :partition_key")
        else:
            uses_window = True
        ph.replace(sentinel(PLACEHOLDERS[name]))

    # Sentinels from compiled dbt SQL: quoted ('{{ var("window_start") }}') or bare identifiers.
    for lit in list(tree.find_all(exp.Literal)):
        if lit.is_string and lit.this in (SENTINEL_START, SENTINEL_END, SENTINEL_KEY):
            uses_window |= lit.this != SENTINEL_KEY
            uses_key |= lit.this == SENTINEL_KEY
            parent = lit.parent
            if isinstance(parent, exp.Cast) and lit.this != SENTINEL_KEY:
                continue  # already typed (e.g. our own sentinel, or cast('{{ var(..) }}' as timestamp))
            lit.replace(sentinel(lit.this))
    for col in list(tree.find_all(exp.Column)):
        if col.name in (SENTINEL_START, SENTINEL_END, SENTINEL_KEY) and not col.table:
            uses_window |= col.name != SENTINEL_KEY
            uses_key |= col.name == SENTINEL_KEY
            col.replace(sentinel(col.name))
    if (uses_window or uses_key) and pdef is None:
        raise UserError(f"{where}: '{asset.key}' reads var('window_start'/'window_end'/'partition_key') but is "
                        "not partitioned; declare meta.sqlassets.run.partitions")

    if graph is not None:
        filter_upstream = (pdef is not None and isinstance(pdef, TimePartitionsDef)
                           and asset.config.get("incremental_strategy") == "microbatch")
        for table in list(tree.find_all(exp.Table)):
            if not table.name or isinstance(table.this, exp.Func):
                continue
            up = graph.by_relation(_table_name(table))
            if up is None or up.key == asset.key:
                continue
            if up.materialization == "ephemeral" and up.kind == "sql":
                if up.key in _stack:
                    raise UserError(f"{where}: ephemeral cycle through '{up.key}'")
                inner = prepare_select(up, up.raw_sql or "", graph, pdef=pdef, _stack=(*_stack, asset.key))
                uses_window |= inner.uses_window
                uses_key |= inner.uses_key
                alias = table.alias or table.name
                table.replace(exp.Subquery(this=inner.expression, alias=exp.TableAlias(
                    this=exp.to_identifier(alias))))
                continue
            event_time = (up.config or {}).get("event_time")
            if filter_upstream and event_time:
                alias = table.alias or table.name
                bare = table.copy()
                bare.set("alias", None)
                sub = exp.select("*").from_(bare).where(window_predicate(str(event_time), quoted=False))
                table.replace(exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias))))
                uses_window = True
    return PreparedSelect(tree, uses_window, uses_key)


@cache
def _dialect(name: str) -> Any:
    """The sqlglot Dialect instance (looked up once: `.sql(dialect=name)` resolves it on every call)."""
    from sqlglot.dialects.dialect import Dialect

    return Dialect.get_or_raise(name or None)


# How the dialects we ship quote a string literal, exactly as sqlglot renders it (a test holds this table
# to sqlglot): doubling the quote, or backslash escapes. Knowing it lets a warm run render partition
# literals without importing sqlglot (see `sqlassets.run.statement_cache`); other dialects ask sqlglot.
QUOTE_STYLE = {"duckdb": "double", "postgres": "double", "trino": "double",
               "snowflake": "backslash", "bigquery": "backslash", "databricks": "backslash", "spark": "backslash",
               "redshift": "backslash"}


@lru_cache(maxsize=1024)
def literal_sql(value: str, dialect: str) -> str:
    """One string literal, quotes escaped the dialect's way (as sqlglot renders it).

    Memoised: a window's end is the next window's start, and the sentinels are looked up per template.
    """
    style = QUOTE_STYLE.get(dialect)
    if style == "double":
        return "'" + value.replace("'", "''") + "'"
    if style == "backslash":
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    from sqlglot import exp

    return _dialect(dialect).generate(exp.Literal.string(value))


def _fmt(t: Any) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


class Template:
    """A statement rendered once with sentinel tokens; `render` swaps in one partition's literals."""

    __slots__ = ("sql", "dialect", "_tokens", "_segments")

    def __init__(self, sql: str, dialect: str) -> None:
        self.sql = sql
        self.dialect = dialect
        self._tokens = {name: literal_sql(name, dialect) for name in SENTINELS if literal_sql(name, dialect) in sql}
        # Where the sentinels are, as whole string tokens: a user literal that merely *contains* a
        # sentinel's quoted text (say the SQL string 'it''s __sqlassets_window_start__''') stays as written.
        self._segments: list[str | tuple[str]] | None = self._split() if self._tokens else None

    def _split(self) -> list[str | tuple[str]] | None:
        from sqlglot.tokens import TokenType

        try:
            tokens = _dialect(self.dialect).tokenize(self.sql)
        except Exception:  # noqa: BLE001 - fall back to plain replacement
            return None
        segments: list[str | tuple[str]] = []
        pos = 0
        for tok in tokens:
            if tok.token_type == TokenType.STRING and tok.text in self._tokens:
                token = self._tokens[tok.text]
                start = self.sql.rfind(token, pos, tok.end + 2)
                if start < 0:
                    return None
                segments.append(self.sql[pos:start])
                segments.append((tok.text,))
                pos = start + len(token)
        segments.append(self.sql[pos:])
        found = {s[0] for s in segments if isinstance(s, tuple)}
        self._tokens = {k: v for k, v in self._tokens.items() if k in found}
        return segments

    def state(self) -> dict[str, Any]:
        """What `restore` needs to rebuild this template without sqlglot (for the statement cache)."""
        return {"sql": self.sql, "dialect": self.dialect, "tokens": self._tokens,
                "segments": None if self._segments is None
                else [s if isinstance(s, str) else [s[0]] for s in self._segments]}

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Template:
        tpl = cls.__new__(cls)
        tpl.sql, tpl.dialect, tpl._tokens = state["sql"], state["dialect"], dict(state["tokens"])
        segments = state["segments"]
        tpl._segments = None if segments is None else [s if isinstance(s, str) else (s[0],) for s in segments]
        return tpl

    @property
    def has_params(self) -> bool:
        return bool(self._tokens)

    def render(self, pdef: PartitionsDef | None, keys: Sequence[str],
               memo: dict[str, str] | None = None) -> str:
        """The statement for `keys`. Pass one `memo` dict to every template of a unit: the literals are
        rendered once per unit, not once per statement."""
        if not self._tokens:
            return self.sql
        # Only the literals this statement uses: a batch of N keys would otherwise render N key
        # literals for every statement, even ones that only bound the window.
        values = memo if memo is not None else {}
        for name in self._tokens:
            if values.get(name) is None:
                values[name] = self._literal(name, pdef, keys, values)
        if self._segments is not None:
            return "".join(seg if isinstance(seg, str) else values[seg[0]] for seg in self._segments)
        sql = self.sql
        for name, token in self._tokens.items():
            sql = sql.replace(token, values[name])
        return sql

    def _literal(self, name: str, pdef: PartitionsDef | None, keys: Sequence[str], values: dict[str, str]) -> str:
        if name in (SENTINEL_START, SENTINEL_END):
            if not isinstance(pdef, TimePartitionsDef):
                raise UserError(f"{name} is not available for {pdef.describe() if pdef else 'unpartitioned'}")
            win: Window = pdef.span(keys)
            values[SENTINEL_START] = literal_sql(_fmt(win.start), self.dialect)
            values[SENTINEL_END] = literal_sql(_fmt(win.end), self.dialect)
            return values[name]
        if name == SENTINEL_KEY:
            return literal_sql(keys[0] if keys else "", self.dialect)
        return ", ".join(literal_sql(k, self.dialect) for k in keys)
