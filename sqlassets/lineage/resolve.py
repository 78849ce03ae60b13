"""Resolve one query's output columns to the input columns they come from, in one pass.

Why our own scope walk instead of calling `sqlglot.lineage.lineage` per column: we parse and qualify
once, build the scope tree once, and memoize each scope's column map, so every output column of a
model costs a dictionary lookup after the first; and we see the clauses sqlglot's lineage ignores
(WHERE, JOIN ON, GROUP BY, HAVING, QUALIFY), which become `filter` edges.

The contract is "never a crash, never a silently wrong edge": anything we cannot follow ends up in
`unresolved` (column -> reason), anything we follow on a guess ends up in `notes` (column -> why it
is a guess), and only exceptions from the SQL front end (parse errors) escape, as `ResolveError`.

Inputs are plain data so the function runs the same in a worker process and is a pure function of
(sql, dialect, upstream schemas), which is exactly what the cache fingerprints:
- `tables`: asset key -> known output columns (None when the asset's columns are not known);
- `lookup`: turns a table reference (`db.schema.name` parts) into an asset key or None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache

from sqlassets.lineage.edges import AGGREGATE, COPY, FILTER, TRANSFORM, compose, merge

Base = tuple[str, str]  # (asset key, column)
LookupFn = Callable[[tuple[str, ...]], "str | None"]

_TABLE_PREFIX = "sa_t"


class ResolveError(Exception):
    """The SQL cannot be analysed at all (does not parse, is not a query); the message is the reason."""


@dataclass(slots=True)
class QueryLineage:
    """The lineage of one query: output columns in order and, per column, its typed inputs."""

    columns: list[str]
    edges: dict[str, dict[Base, str]]
    unresolved: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    reads: list[str] = field(default_factory=list)
    #: columns of upstream assets referenced by the SQL although that asset's columns are unknown
    inferred: dict[str, set[str]] = field(default_factory=dict)
    #: when the whole query is `select *` (through CTEs) over one table with unknown columns: that table;
    #: a column downstream SQL reads from this query is then also evidence of that table's column
    star_source: str | None = None


@dataclass(slots=True)
class _ScopeLin:
    names: list[str]
    cols: list[dict[Base, str]]
    by_name: dict[str, int]
    unresolved: dict[int, str]
    notes: dict[int, str]
    rows: dict[Base, str]
    #: why this scope's output columns are not all known (an unexpandable `*`), or None
    star_unknown: str | None = None
    issues: list[str] = field(default_factory=list)


def columns_text(names: Sequence[str], limit: int = 20) -> str:
    """All column names, or the first `limit` and how many more: a reason never hides columns silently."""
    names = list(names)
    if not names:
        return "none known"
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


@cache
def _dialect(name: str):
    """One Dialect instance per name: sqlglot builds a new one for every call given a string."""
    from sqlglot.dialects.dialect import Dialect

    return Dialect.get_or_raise(name)


@cache
def _normalizer(dialect: str) -> Callable[[str], str]:
    """How the dialect folds unquoted identifiers, so schema names match the normalized query."""
    from sqlglot.dialects.dialect import NormalizationStrategy

    strategy = _dialect(dialect).NORMALIZATION_STRATEGY
    if strategy is NormalizationStrategy.UPPERCASE:
        return str.upper
    if strategy is NormalizationStrategy.CASE_SENSITIVE:
        return str
    return str.lower


def _pick_query(sql: str, dialect: str):
    """Parse `sql` and return the one query it defines (CREATE ... AS / INSERT ... SELECT unwrapped)."""
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(sql, read=_dialect(dialect)) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        line = f" at line {err['line']}" if err.get("line") else ""
        desc = (err.get("description") or str(exc).splitlines()[0]).split("\n")[0]
        raise ResolveError(f"SQL does not parse ({dialect}){line}: {desc}") from None
    except TokenError as exc:
        raise ResolveError(f"SQL does not tokenize ({dialect}): {exc}") from None
    queries = []
    for stmt in statements:
        if isinstance(stmt, (exp.Create, exp.Insert)) and isinstance(stmt.expression, exp.Query):
            queries.append(stmt.expression)
        elif isinstance(stmt, exp.Query):
            queries.append(stmt)
    if not queries:
        kinds = ", ".join(sorted({s.key.upper() for s in statements})) or "nothing"
        raise ResolveError(f"no SELECT query to follow (found {kinds})")
    return queries[-1]


def resolve_query(sql: str, dialect: str, tables: Mapping[str, Sequence[str] | None], lookup: LookupFn
                  ) -> QueryLineage:
    """Lineage of every output column of `sql` (see the module docstring for the inputs)."""
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
    from sqlglot.optimizer.qualify_columns import qualify_columns
    from sqlglot.optimizer.qualify_tables import qualify_tables
    from sqlglot.optimizer.scope import build_scope
    from sqlglot.schema import MappingSchema

    query = _pick_query(sql, dialect)
    norm = _normalizer(dialect)

    # 1. Point every table reference at a synthetic one-part name (sa_t0, sa_t1, ...) so one flat
    #    schema serves references written as db.schema.table, schema.table or table, in any case.
    #    One traversal also tells whether sqlglot's qualify_tables is needed at all: it only adds
    #    aliases, and after the rewrite every plain table has one; derived tables without an alias,
    #    UNNEST / LATERAL / VALUES, PIVOT and parenthesized joins still need it.
    ctes: set[str] = set()
    table_nodes: list = []
    needs_table_aliases = False
    for node in query.find_all(exp.Table, exp.CTE, exp.UDTF, exp.Pivot, exp.Subquery):
        if isinstance(node, exp.Table):
            table_nodes.append(node)
            if node.args.get("joins") or not isinstance(node.this, exp.Identifier):
                needs_table_aliases = True
        elif isinstance(node, exp.CTE):
            ctes.add(node.alias_or_name.lower())
        elif isinstance(node, exp.Subquery):
            if not node.alias and isinstance(node.parent, (exp.From, exp.Join)):
                needs_table_aliases = True
        else:
            needs_table_aliases = True
    slots: dict[str, str] = {}  # synthetic name -> asset key (or the table's own name when unknown)
    by_key: dict[str, str] = {}
    functions: list[str] = []
    for t in table_nodes:
        if not isinstance(t.this, exp.Identifier):
            if t.this is not None:
                functions.append(t.this.sql(dialect=dialect))
            continue
        parts = tuple(p.name for p in (t.args.get("catalog"), t.args.get("db"), t.this) if p is not None and p.name)
        if len(parts) == 1 and parts[0].lower() in ctes:
            continue
        key = lookup(parts) or ".".join(p.lower() for p in parts)
        slot = by_key.get(key)
        if slot is None:
            slot = by_key[key] = f"{_TABLE_PREFIX}{len(by_key)}"
            slots[slot] = key
        original = t.this
        t.set("catalog", None)
        t.set("db", None)
        t.set("this", exp.to_identifier(slot, quoted=True))
        if not t.alias:
            t.set("alias", exp.TableAlias(this=exp.Identifier(this=original.this, quoted=original.quoted)))
    reads = list(by_key)

    # CTEs that are `select * from <one table>` (through other such CTEs): CTE name -> table slot. After
    # qualify their `*` is expanded and they look like any CTE naming its columns; reading a column one
    # lacks is evidence of the table's column only here.
    star_ctes: dict[str, str] = {}
    aliases = {t.alias_or_name: t.name for t in table_nodes if isinstance(t.this, exp.Identifier)}
    for cte in query.find_all(exp.CTE):
        body = cte.this
        if isinstance(body, exp.Select) and len(body.selects) == 1 and isinstance(body.selects[0], exp.Star) \
                and not body.args.get("joins") and isinstance(body.args.get("from_"), exp.From):
            src = body.args["from_"].this
            if isinstance(src, exp.Table) and isinstance(src.this, exp.Identifier):
                star_ctes[cte.alias_or_name] = star_ctes.get(src.name) or aliases.get(src.alias_or_name, "")
    known: dict[str, set[str]] = {}
    mapping: dict[str, dict[str, str]] = {}
    for slot, key in slots.items():
        cols = tables.get(key)
        if cols is not None:
            normed = [norm(c) for c in cols]
            known[slot] = {c.lower() for c in cols}
            mapping[slot] = dict.fromkeys(normed, "UNKNOWN")
    if mapping:
        # `a.col` where table `a` has known columns but not `col` (an undeclared YAML column): sqlglot's
        # qualifier rejects the whole query. Give it the column; the walk reports it as not known.
        alias_slot = {t.alias_or_name: t.name for t in table_nodes if isinstance(t.this, exp.Identifier)}
        # ... and `s.col` where CTE `s` is `select * from a` (the staging pattern): the column is a's too
        alias_slot.update({k: v for k, v in star_ctes.items() if v})
        for col in query.find_all(exp.Column):
            slot = alias_slot.get(col.table) if col.table else None
            if slot in mapping and not isinstance(col.this, exp.Star):
                mapping[slot].setdefault(norm(col.name) if not col.this.quoted else col.name, "UNKNOWN")
    # 2. Qualify: normalize identifiers, alias tables, expand `*`, qualify columns. No quoting or
    #    validation: we never print this SQL, and unresolvable columns are reported by the walk.
    d = _dialect(dialect)
    schema = MappingSchema(mapping, dialect=d, normalize=False)
    try:
        query = normalize_identifiers(query, dialect=d)
        if needs_table_aliases:
            query = qualify_tables(query, dialect=d)
        query = qualify_columns(query, schema, expand_alias_refs=True, expand_stars=True)
        root = build_scope(query)
    except SqlglotError as exc:
        raise ResolveError(f"cannot qualify columns: {str(exc).splitlines()[0]}") from None
    if root is None:
        raise ResolveError("no SELECT scope to follow")

    walker = _Walker(slots, known, dialect, functions)
    walker.star_ctes = {k.lower() for k, v in star_ctes.items() if v}
    walker.scope_index = {id(sc.expression): sc for sc in root.traverse()}
    walker.order = {slot: [(norm(c), c.lower()) for c in tables[key]] for slot, key in slots.items()
                    if tables.get(key) is not None}
    lin = walker.scope_lin(root)
    result = QueryLineage(columns=[], edges={}, reads=reads)
    if lin.star_unknown:
        result.unresolved["*"] = lin.star_unknown
    issues = list(dict.fromkeys(lin.issues))
    for i, name in enumerate(lin.names):
        col = name.lower()
        if col in result.edges:
            result.notes.setdefault(col, f"the query returns '{col}' more than once; lineage of the first is shown")
            continue
        result.columns.append(col)
        result.edges[col] = {(slots.get(a, a), c): k for (a, c), k in lin.cols[i].items()}
        if i in lin.unresolved:
            result.unresolved[col] = lin.unresolved[i]
        note = lin.notes.get(i)
        if issues:
            note = "; ".join(filter(None, [note, *issues]))
        if note:
            result.notes[col] = note
    for slot, cols in walker.inferred.items():
        result.inferred[slots.get(slot, slot)] = cols
    if lin.star_unknown:
        star = walker.star_table(root)
        if star is not None:
            result.star_source = slots.get(star, star)
    return result


class _Walker:
    """Per-query state: memoized scope maps, so each CTE / subquery is resolved once for all columns."""

    def __init__(self, slots: dict[str, str], known: dict[str, set[str]], dialect: str, functions: list[str]
                 ) -> None:
        from sqlglot import exp
        from sqlglot.optimizer.scope import Scope, find_all_in_scope

        self.exp = exp
        self.Scope = Scope
        self.find_all_in_scope = find_all_in_scope
        self.slots = slots
        self.known = known
        self.dialect = dialect
        self.functions = functions
        self.memo: dict[int, _ScopeLin] = {}
        self.udtf_memo: dict[int, tuple[dict[Base, str] | None, str | None]] = {}
        self.inferred: dict[str, set[str]] = {}
        self.order: dict[str, list[tuple[str, str]]] = {}  # slot -> (normalized name, lower-case name)
        self.active: set[int] = set()  # scopes being resolved: a reference back into one is a cycle
        self.scope_index: dict[int, object] = {}  # id(select expression) -> its scope
        self.star_ctes: set[str] = set()  # lower-case names of `select * from <table>` CTEs

    # -- one column reference ------------------------------------------------------------------
    def column_ref(self, scope, col) -> tuple[dict[Base, str] | None, str | None, str | None]:
        """(inputs, reason if unresolvable, note if guessed) of one qualified column reference."""
        table, name = col.table, col.name
        src = None
        note = None
        if table:
            s = scope
            while s is not None:
                src = s.sources.get(table)
                if src is not None:
                    break
                s = s.parent
            if src is None:
                if scope.pivots:
                    return None, "columns produced by PIVOT / UNPIVOT are not followed", None
                return None, f"'{table}.{name}' names no table or alias in scope", None
        else:
            src, why, note = self._unqualified(scope, col)
            if src is None:
                return None, why, None
        if isinstance(src, self.exp.Table):
            unpivot = self._unpivot(scope, src, name)
            if unpivot is not None:
                return unpivot[0], unpivot[1], note
            return self._table_column(src, name, note)
        if src.is_udtf:
            lin, reason = self._udtf(src, name)
            return lin, reason, note
        lin = self.scope_lin(src)
        idx = lin.by_name.get(name)
        if idx is None:
            label = table or self._alias_of(scope, src)
            if lin.star_unknown:
                inferred = self.through_star(src, name, label)
                if inferred is not None:
                    return inferred[0], inferred[1], "; ".join(filter(None, [note, inferred[2]])) or None
                return None, f"cannot see '{name}' through '{label}': {lin.star_unknown}", None
            inferred = self.through_star(src, name, label)  # `select *` over a table declared without it
            if inferred is not None:
                return inferred[0], inferred[1], "; ".join(filter(None, [note, inferred[2]])) or None
            return None, f"'{label}' has no column '{name}'", None
        if idx in lin.unresolved:
            return lin.cols[idx], lin.unresolved[idx], lin.notes.get(idx)
        sub_note = lin.notes.get(idx)
        return lin.cols[idx], None, "; ".join(filter(None, [note, sub_note])) or None

    def _scope_of(self, node):
        return self.scope_index.get(id(node.find_ancestor(self.exp.Select)))

    def _alias_of(self, scope, src) -> str:
        """The name `scope` knows the source `src` by (a CTE or derived-table alias)."""
        s = scope
        while s is not None:
            for alias, value in s.sources.items():
                if value is src:
                    return alias
            s = s.parent
        return "subquery"

    def _star_of(self, scope):
        """The one source a scope's lone `*` / `t.*` reads, when its other outputs are named; else None."""
        exp = self.exp
        expr = scope.expression
        if not isinstance(expr, exp.Select):
            return None
        stars = [p for p in expr.selects
                 if isinstance(p, exp.Star) or (isinstance(p, exp.Column) and isinstance(p.this, exp.Star))]
        if len(stars) != 1:
            return None
        table = stars[0].table if isinstance(stars[0], exp.Column) else ""
        if table:
            return scope.sources.get(table)
        sources = list(scope.selected_sources.values())
        return sources[0][1] if len(sources) == 1 else None

    def _expanded_star_of(self, scope):
        """The table a scope selects every declared column of, unchanged (a `*` the qualifier expanded).

        `select * from src` over a table with declared columns reaches us as `select src.id, src.name
        from src`: reading a column the declaration lacks through it is evidence of that column.
        """
        exp = self.exp
        expr = scope.expression
        cte = expr.parent
        if not isinstance(cte, exp.CTE) or cte.alias_or_name.lower() not in self.star_ctes:
            return None
        if not isinstance(expr, exp.Select) or expr.args.get("group") or len(scope.selected_sources) != 1:
            return None
        src = next(iter(scope.selected_sources.values()))[1]
        if not isinstance(src, exp.Table) or src.name not in self.known:
            return None
        names = []
        for p in expr.selects:
            col = p.this if isinstance(p, exp.Alias) else p
            if not isinstance(col, exp.Column) or col.name.lower() != p.alias_or_name.lower():
                return None
            names.append(col.name.lower())
        return src if set(names) == self.known[src.name] and len(names) == len(self.known[src.name]) else None

    def through_star(self, scope, name: str, label: str, depth: int = 0):
        """CTE-star inference: `name` read from `scope`, a `select *` over a table with unknown columns.

        Reading `renamed.id` where `renamed` is `select * from source` and `source` is `select * from
        raw.customers` is evidence that raw.customers has a column `id`: the column is inferred on that
        table (an `inferred` node) and followed, flagged in a note. None when the star is ambiguous (a
        join, two stars, a table function).
        """
        exp = self.exp
        src = self._star_of(scope) or self._expanded_star_of(scope)
        if src is None or depth > 64:
            return None
        rows = self.scope_lin(scope).rows
        if isinstance(src, exp.Table):
            if not isinstance(src.this, exp.Identifier) or src.name not in self.slots:
                return None
            slot = src.name
            col = name.lower()
            declared = self.known.get(slot)
            if declared is not None and col in declared:
                return None
            self.inferred.setdefault(slot, set()).add(col)
            why = "a table whose columns are unknown" if declared is None else "a table declared without it"
            note = f"'{col}' inferred on {self.slots[slot]} (read through '{label}', a select * over {why})"
            return {**rows, (slot, col): COPY}, None, note
        if src.is_udtf:
            return None
        lin = self.scope_lin(src)
        idx = lin.by_name.get(name)
        if idx is not None:
            return {**rows, **lin.cols[idx]}, lin.unresolved.get(idx), lin.notes.get(idx)
        if lin.star_unknown:
            got = self.through_star(src, name, label, depth + 1)
            if got is not None:
                return {**rows, **got[0]}, got[1], got[2]
        return None

    def star_table(self, scope, depth: int = 0) -> str | None:
        """The table slot a query passes through unchanged with `select *` (through CTEs), if any."""
        exp = self.exp
        src = self._star_of(scope)
        if src is None or depth > 64 or len(scope.expression.selects) != 1:
            return None
        if isinstance(src, exp.Table):
            return src.name if isinstance(src.this, exp.Identifier) and src.name not in self.known else None
        if src.is_udtf:
            return None
        return self.star_table(src, depth + 1)

    def _unpivot(self, scope, src, name: str):
        """A column of `T UNPIVOT (value FOR name_col IN (a, b))`: (inputs, reason), or None without UNPIVOT.

        `value` is a copy of each IN column (one per output row); `name_col` holds the IN columns' names
        (constants: no input); any other column passes through from T (a table or a CTE).
        """
        exp = self.exp
        pivots = [p for p in src.args.get("pivots") or () if p.args.get("unpivot")]
        if len(pivots) != 1 or len(pivots[0].args.get("fields") or ()) != 1:
            return None
        pivot = pivots[0]
        field = pivot.args["fields"][0]
        if not isinstance(field, exp.In):
            return None
        values = {e.name.lower() for e in pivot.expressions}
        sources = [c.name for c in field.expressions if isinstance(c, exp.Column)]
        if len(sources) != len(field.expressions):
            return None
        target = name.lower()
        if target == field.this.name.lower():
            return {}, None
        cte = None
        if src.name not in self.slots:  # a CTE read as a table
            s = scope
            while s is not None and cte is None:
                cand = s.cte_sources.get(src.name) or s.sources.get(src.name)
                cte = cand if isinstance(cand, self.Scope) else None
                s = s.parent
            if cte is None:
                return None

        def one(col: str):
            if cte is None:
                return self._table_column(exp.Table(this=exp.to_identifier(src.name)), col, None)[:2]
            lin = self.scope_lin(cte)
            idx = lin.by_name.get(col)
            if idx is None:
                return None, f"'{src.name}' has no column '{col}'"
            return lin.cols[idx], lin.unresolved.get(idx)

        if target in values:
            inputs: dict[Base, str] = {}
            reason = None
            for col in sources:
                lin, why = one(col)
                reason = reason or why
                for b, k in (lin or {}).items():
                    inputs[b] = merge(inputs.get(b), k)
            return inputs, reason
        if target in {c.lower() for c in sources}:
            return None, f"'{name}' is unpivoted into '{next(iter(values))}'; it is not a column of the result"
        return one(name)

    def _table_column(self, src, name: str, note: str | None):
        if not isinstance(src.this, self.exp.Identifier):
            alias = src.args.get("alias")
            named = [c.name.lower() for c in alias.columns] if alias is not None and alias.columns else []
            if name.lower() in named:
                # `range(n) as t(i)`: the function makes the values; its column inputs (if any) feed them
                inputs: dict[Base, str] = {}
                for c in src.this.find_all(self.exp.Column):
                    lin, _, _ = self.column_ref(self._scope_of(src), c) if self._scope_of(src) else (None, 0, 0)
                    for b, k in (lin or {}).items():
                        inputs[b] = merge(inputs.get(b), compose(TRANSFORM, k))
                return inputs, None, note
            return None, f"reads table function {src.this.sql(dialect=self.dialect)}; its columns are not known", None
        slot = src.name
        if slot not in self.slots:
            # a CTE named as a table: sqlglot leaves it unresolved under PIVOT / UNPIVOT
            return None, f"'{name}' comes through PIVOT / UNPIVOT over CTE '{slot}', which is not followed", None
        key = self.slots[slot]
        col = name.lower()
        cols = self.known.get(slot)
        if cols is None:
            self.inferred.setdefault(slot, set()).add(col)
            why = f"{key} has no known columns; '{col}' is taken from the SQL"
            return {(slot, col): COPY}, None, "; ".join(filter(None, [note, why]))
        if col not in cols:
            why = f"'{col}' is not among {key}'s known columns"
            self.inferred.setdefault(slot, set()).add(col)
            return {(slot, col): COPY}, None, "; ".join(filter(None, [note, why]))
        return {(slot, col): COPY}, None, note

    def _unqualified(self, scope, col):
        """Best effort for a column the qualifier could not attribute (some source has unknown columns)."""
        name = col.name
        lam = col.find_ancestor(self.exp.Lambda)
        if lam is not None and name in {e.name for e in lam.expressions}:
            return None, None, None
        s = scope
        while s is not None:
            cand = s.sources.get(name)
            if isinstance(cand, self.Scope) and cand.is_udtf:
                return cand, None, None  # DuckDB: `unnest(xs) as x` then `select x`
            unknown = []
            for alias, (_, src) in s.selected_sources.items():
                if isinstance(src, self.exp.Table):
                    if src.name not in self.known:
                        unknown.append((alias, src))
                elif not src.is_udtf and self.scope_lin(src).star_unknown:
                    unknown.append((alias, src))
            if len(unknown) == 1:
                alias, src = unknown[0]
                label = self.slots.get(src.name, alias) if isinstance(src, self.exp.Table) else alias
                return src, None, f"unqualified '{name}' attributed to {label}, the only source with unknown columns"
            if len(unknown) > 1:
                labels = ", ".join(self.slots.get(src.name, a) if isinstance(src, self.exp.Table) else a
                                   for a, src in unknown)
                return None, f"unqualified '{name}' could come from any of {labels} (columns unknown); qualify it", None
            only = list(s.selected_sources.values())
            if s is scope and len(only) == 1 and isinstance(only[0][1], self.exp.Table) \
                    and only[0][1].name in self.slots:
                return only[0][1], None, None  # one table: the column is its own, if undeclared (flagged)
            if s is scope and len(only) == 1 and isinstance(only[0][1], self.Scope) and not only[0][1].is_udtf \
                    and self._expanded_star_of(only[0][1]) is not None:
                return only[0][1], None, None  # `select *` over a declared table: inferred there (flagged)
            if not s.is_subquery:
                break  # only a correlated subquery sees its outer query's sources; a CTE does not
            s = s.parent
        return None, self._missing(scope, name), None

    def _missing(self, scope, name: str) -> str:
        """Why an unqualified column is in no source: name the source(s) and list what they have."""
        sources = list(scope.selected_sources.items())
        if len(sources) == 1:
            alias, (_, src) = sources[0]
            if isinstance(src, self.exp.Table):
                cols = [c for _, c in self.order.get(src.name, ())]
                label = self.slots.get(src.name, alias)
            elif src.is_udtf:
                return f"column '{name}' is in no source of its query"
            else:
                cols, label = self.scope_lin(src).names, alias
            return f"'{label}' has no column '{name}' (its columns: {columns_text(cols)})"
        labels = ", ".join(a for a, _ in sources) or "no source"
        return f"column '{name}' is in none of {labels}"

    def _lateral_query(self, lateral) -> bool:
        """LATERAL (subquery) rather than LATERAL FLATTEN(...) / a table function (whose sources are CTEs)."""
        return lateral.find(self.exp.Subquery, self.exp.Select) is not None and not isinstance(
            lateral.this, (self.exp.Explode, self.exp.Func)) or isinstance(lateral.this, self.exp.Subquery)

    def _udtf(self, src, name: str) -> tuple[dict[Base, str] | None, str | None]:
        """Columns of UNNEST / LATERAL / VALUES: a lateral subquery by name, otherwise the function inputs."""
        exp = self.exp
        inner = [v for v in src.sources.values() if isinstance(v, self.Scope) and not v.is_udtf]
        inner += [s for s in src.subquery_scopes if s not in inner]
        if isinstance(src.expression, exp.Lateral) and inner and self._lateral_query(src.expression):
            lin = self.scope_lin(inner[0])
            idx = lin.by_name.get(name)
            if idx is None:
                return None, f"lateral subquery has no column '{name}'"
            out = dict(lin.cols[idx])
            for b in lin.rows:
                out[b] = merge(out.get(b), FILTER)
            return out, lin.unresolved.get(idx)
        cached = self.udtf_memo.get(id(src))
        if cached is not None:
            return cached
        out: dict[Base, str] = {}
        reason = None
        for c in src.expression.find_all(exp.Column):
            lin, why, _ = self.column_ref(src, c)
            if lin is None:
                reason = why
                continue
            for b, k in lin.items():
                out[b] = merge(out.get(b), compose(TRANSFORM, k))
        self.udtf_memo[id(src)] = (out, reason)
        return out, reason

    # -- one scope -----------------------------------------------------------------------------
    def scope_lin(self, scope) -> _ScopeLin:
        got = self.memo.get(id(scope))
        if got is None:
            if id(scope) in self.active:
                # A column looked up from inside the scope that defines it: nothing to follow there.
                return _ScopeLin([], [], {}, {}, {}, {}, star_unknown="the query refers to itself")
            self.active.add(id(scope))
            try:
                got = self._scope_lin(scope)
            finally:
                self.active.discard(id(scope))
            self.memo[id(scope)] = got
        return got

    def _scope_lin(self, scope) -> _ScopeLin:
        exp = self.exp
        expr = scope.expression
        if isinstance(expr, exp.SetOperation):
            return self._set_operation(scope)
        if isinstance(expr, exp.Subquery) and scope.subquery_scopes:
            return self.scope_lin(scope.subquery_scopes[0])
        if not isinstance(expr, exp.Select):
            names = list(getattr(expr, "named_selects", []) or [])
            return _ScopeLin(names, [{} for _ in names], {n: i for i, n in enumerate(names)}, {}, {}, {})
        return self._select(scope, expr)

    def _set_operation(self, scope) -> _ScopeLin:
        branches = [self.scope_lin(s) for s in scope.set_operation_scopes]
        if not branches:
            return _ScopeLin([], [], {}, {}, {}, {}, star_unknown="set operation without branches")
        first = branches[0]
        names = list(first.names)
        cols: list[dict[Base, str]] = []
        unresolved: dict[int, str] = {}
        notes: dict[int, str] = {}
        rows: dict[Base, str] = {}
        star = next((b.star_unknown for b in branches if b.star_unknown), None)
        issues: list[str] = []
        for b in branches:
            rows.update(b.rows)
            issues.extend(b.issues)
        for i in range(len(names)):
            merged: dict[Base, str] = {}
            for bi, b in enumerate(branches):
                if i >= len(b.cols):
                    unresolved[i] = f"branch {bi + 1} of the set operation has fewer columns"
                    continue
                if i in b.unresolved:
                    unresolved.setdefault(i, b.unresolved[i])
                if i in b.notes:
                    notes.setdefault(i, b.notes[i])
                for base, k in b.cols[i].items():
                    merged[base] = merge(merged.get(base), k)
            cols.append(merged)
        return _ScopeLin(names, cols, {n: i for i, n in enumerate(names)}, unresolved, notes, rows, star, issues)

    def _filter_inputs(self, scope, node, subqueries, rows: dict[Base, str], issues: list[str]) -> None:
        """Every column (and subquery) in a row-shaping clause becomes a filter input of the scope."""
        exp = self.exp
        for c in self.find_all_in_scope(node, exp.Column):
            if isinstance(c.this, exp.Star):
                continue
            lin, reason, _ = self.column_ref(scope, c)
            if lin is None:
                if reason:
                    issues.append(f"filter column {c.sql(dialect=self.dialect)} not followed: {reason}")
                continue
            for b in lin:
                rows[b] = FILTER
        for q in self.find_all_in_scope(node, *exp.UNWRAPPED_QUERIES):
            sub = subqueries.get(id(q))
            if sub is None or q is node:
                continue
            sl = self.scope_lin(sub)
            for col in sl.cols:
                for b in col:
                    rows[b] = FILTER
            for b in sl.rows:
                rows[b] = FILTER
            issues.extend(sl.issues)

    def _select(self, scope, select) -> _ScopeLin:
        exp = self.exp
        subqueries = {id(s.expression): s for s in scope.subquery_scopes}
        rows: dict[Base, str] = {}
        issues: list[str] = []
        a = select.args
        clauses = [a.get("where"), a.get("group"), a.get("having"), a.get("qualify")]
        if a.get("limit") or a.get("offset") or a.get("fetch"):
            clauses.append(a.get("order"))
        distinct = a.get("distinct")
        if distinct is not None and distinct.args.get("on") is not None:
            clauses.append(distinct.args["on"])
        for join in a.get("joins") or []:
            clauses.append(join.args.get("on"))
            for u in join.args.get("using") or []:
                clauses.append(u)
        for clause in clauses:
            if clause is not None:
                self._filter_inputs(scope, clause, subqueries, rows, issues)
        for alias, (_, src) in scope.selected_sources.items():
            if isinstance(src, self.Scope):
                if src.is_udtf:
                    if isinstance(src.expression, exp.Lateral) and self._lateral_query(src.expression):
                        inner = [v for v in src.sources.values() if isinstance(v, self.Scope) and not v.is_udtf]
                        for sub in inner[:1]:
                            rows.update(dict.fromkeys(self.scope_lin(sub).rows, FILTER))
                    else:
                        lin, _ = self._udtf(src, alias)
                        rows.update(dict.fromkeys(lin or {}, FILTER))
                else:
                    sl = self.scope_lin(src)
                    rows.update(dict.fromkeys(sl.rows, FILTER))
                    issues.extend(sl.issues)

        names: list[str] = []
        cols: list[dict[Base, str]] = []
        unresolved: dict[int, str] = {}
        notes: dict[int, str] = {}
        star_unknown = None
        for proj in select.selects:
            if isinstance(proj, exp.Star) or (isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star)):
                expanded = self._expand_star(scope, proj)
                if expanded is None:
                    star_unknown = self._star_reason(scope, proj)
                    continue
                for name, lin, reason, note in expanded:
                    value = {**rows, **lin} if rows else dict(lin)
                    if reason:
                        unresolved[len(names)] = reason
                    if note:
                        notes[len(names)] = note
                    names.append(name)
                    cols.append(value)
                continue
            i = len(names)
            names.append(proj.alias_or_name)
            inner = proj.unalias()
            value: dict[Base, str] = {}
            reasons: list[str] = []
            col_notes: list[str] = []
            found = list(self.find_all_in_scope(proj, exp.Column, *exp.UNWRAPPED_QUERIES))
            for c in found:
                if not isinstance(c, exp.Column) or isinstance(c.this, exp.Star):
                    continue  # subqueries are handled below; count(t.*) reads no column
                lin, reason, note = self.column_ref(scope, c)
                if note:
                    col_notes.append(note)
                if reason:
                    reasons.append(reason)
                if lin is None:
                    continue
                kind = self._kind(c, inner)
                for b, k in lin.items():
                    value[b] = merge(value.get(b), compose(kind, k))
            for q in found:
                if isinstance(q, exp.Column):
                    continue
                sub = subqueries.get(id(q))
                if sub is None:
                    continue
                sl = self.scope_lin(sub)
                kind = COPY if isinstance(inner, exp.Subquery) and inner.this is q else TRANSFORM
                for j, col in enumerate(sl.cols):
                    for b, k in col.items():
                        value[b] = merge(value.get(b), compose(kind, k))
                    if j in sl.unresolved:
                        reasons.append(sl.unresolved[j])
                    if j in sl.notes:
                        col_notes.append(sl.notes[j])
                for b in sl.rows:
                    value[b] = merge(value.get(b), FILTER)
                if sl.star_unknown:
                    reasons.append(sl.star_unknown)
            if rows:
                value = {**rows, **value}  # merge(x, filter) == x: value edges win
            cols.append(value)
            if reasons:
                unresolved[i] = "; ".join(dict.fromkeys(reasons))
            if col_notes:
                notes[i] = "; ".join(dict.fromkeys(col_notes))
        by_name: dict[str, int] = {}
        for i, n in enumerate(names):
            by_name.setdefault(n, i)
        return _ScopeLin(names, cols, by_name, unresolved, notes, rows, star_unknown, issues)

    def _expand_star(self, scope, proj) -> list[tuple[str, dict[Base, str], str | None, str | None]] | None:
        """`*` / `t.*` the qualifier left alone (e.g. a CTE with duplicate names), from our own column maps.

        None when some source's columns are unknown: then the star stays unresolved.
        """
        exp = self.exp
        table = proj.table if isinstance(proj, exp.Column) else ""
        if table:
            src = scope.sources.get(table)
            sources = [(table, src)] if src is not None else []
        else:
            sources = [(alias, src) for alias, (_, src) in scope.selected_sources.items()]
        if not sources:
            return None
        out: list[tuple[str, dict[Base, str], str | None, str | None]] = []
        for _alias, src in sources:
            if isinstance(src, exp.Table):
                cols = self.known.get(src.name) if isinstance(src.this, exp.Identifier) else None
                if cols is None:
                    return None
                for name, col in self.order.get(src.name, ()):
                    out.append((name, {(src.name, col): COPY}, None, None))
            elif src.is_udtf:
                return None
            else:
                lin = self.scope_lin(src)
                if lin.star_unknown:
                    return None
                for i, name in enumerate(lin.names):
                    out.append((name, lin.cols[i], lin.unresolved.get(i), lin.notes.get(i)))
        return out

    def _star_reason(self, scope, proj) -> str:
        exp = self.exp
        table = proj.table if isinstance(proj, exp.Column) else ""
        sources = [(table, scope.sources.get(table))] if table else list(scope.selected_sources.items())
        labels = []
        for alias, src in sources:
            if isinstance(src, tuple):
                src = src[1]
            if isinstance(src, exp.Table):
                if not isinstance(src.this, exp.Identifier):
                    labels.append(f"table function {src.this.sql(dialect=self.dialect)}")
                elif src.name not in self.known:
                    labels.append(self.slots.get(src.name, alias))
            elif src is not None and not src.is_udtf and self.scope_lin(src).star_unknown:
                if len(sources) == 1:
                    return f"through '{alias}': {self.scope_lin(src).star_unknown}"  # the CTE and the real table
                labels.append(alias)
        what = ", ".join(labels) or "a source"
        return (f"select {proj.sql(dialect=self.dialect)} over {what} whose columns are unknown; "
                "declare the columns in YAML or build the warehouse so the catalog has them")

    def _kind(self, col, inner) -> str:
        """copy / transform / aggregate for one column reference inside one projection."""
        exp = self.exp
        if col is inner:
            return COPY
        node, agg = col.parent, False
        prev = col
        while node is not None and prev is not inner:
            if isinstance(node, exp.AggFunc) or (isinstance(node, exp.Filter) and isinstance(node.this, exp.AggFunc)):
                agg = True  # inside an aggregate, or in its FILTER (WHERE ...) clause
            elif isinstance(node, exp.Window):
                agg = False  # a windowed aggregate keeps every row: a transform
            prev, node = node, node.parent
        if agg:
            return AGGREGATE
        e = inner
        while isinstance(e, (exp.Cast, exp.TryCast, exp.Paren)):
            e = e.this
        if e is col:
            return COPY  # casts and parentheses keep the value
        if isinstance(e, exp.Coalesce):
            args = [e.this, *e.expressions]
            if all(isinstance(x, exp.Column) and x.name == col.name for x in args):
                return COPY  # USING (key) expands to coalesce(a.key, b.key): the key passes through
        return TRANSFORM
