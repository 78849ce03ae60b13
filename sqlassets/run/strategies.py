"""Materialization strategies: how one asset's SELECT becomes a table or view, safely.

- partition replace: `DELETE <window>` + `INSERT ... SELECT ... WHERE <window>` in one transaction; the
  table is created from the first partition's schema (CTAS of that window). The INSERT's SELECT is
  filtered by the partition column too, so a partition can only ever hold its own rows.
- merge on `unique_key`: MERGE INTO (or DELETE matching keys + INSERT where MERGE is missing).
- table: build into a staging table, then swap it in (`Adapter.swap`): drop + rename in one transaction
  where DDL is transactional, `ALTER TABLE ... SWAP WITH` where DDL commits implicitly (Snowflake):
  readers never see an empty or half-built table.
- view: CREATE OR REPLACE VIEW. seeds: the CSV read into a staging table, then swapped like a table.
- ephemeral: nothing to write (inlined into dependents by `sqlassets.run.windows`).
- append: an unpartitioned incremental model without a key (dbt's default `append`).

Schema drift (incremental strategies): new columns are added to the table; a column whose type changed
incompatibly fails the asset with a message that says to use --full-refresh.

Every statement is a sqlglot expression rendered by the adapter, once per asset, into a `Template`.

Round trips: a unit's statements go to `Session.run_atomic` together, so an engine that takes several
statements in one request (a Snowflake Scripting block) writes a partition in one round trip; the
others run BEGIN / statements / COMMIT. Each unit first tags its session with the asset and partition
(`Session.set_query_tag`), which the engines attach to the request itself where they can.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlglot import exp

from sqlassets.errors import UserError
from sqlassets.run.partitions import PartitionsDef
from sqlassets.run.planner import strategy_name as _strategy_name
from sqlassets.run.statement_cache import Outcome, batchable
from sqlassets.run.windows import PreparedSelect, Template, partition_predicate

if TYPE_CHECKING:
    from sqlassets.adapters.base import Adapter, ColumnInfo, Session
    from sqlassets.model import Asset
    from sqlassets.run.planner import Plan

_INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "INTEGER": 3, "BIGINT": 4, "HUGEINT": 5}
_UINT_RANK = {"UTINYINT": 1, "USMALLINT": 2, "UINTEGER": 3, "UBIGINT": 4, "UHUGEINT": 5}
_FLOAT_RANK = {"FLOAT": 1, "DOUBLE": 2}


def type_compatible(old: str, new: str) -> bool:
    """Can rows of type `new` be inserted into a column of type `old` without losing meaning?"""
    if old == new:
        return True
    if old in _INT_RANK and new in _INT_RANK:
        return _INT_RANK[new] <= _INT_RANK[old]
    if old in _UINT_RANK and new in _UINT_RANK:
        return _UINT_RANK[new] <= _UINT_RANK[old]
    if old in _FLOAT_RANK and (new in _FLOAT_RANK or new in _INT_RANK):
        return _FLOAT_RANK.get(new, 0) <= _FLOAT_RANK[old]
    if old == "VARCHAR" and not new.startswith(("STRUCT", "MAP")) and "[]" not in new:
        return True
    if old.startswith("DECIMAL") and new.startswith("DECIMAL"):
        try:
            op, os_ = (int(x) for x in old[old.index("(") + 1:-1].split(","))
            np_, ns = (int(x) for x in new[new.index("(") + 1:-1].split(","))
        except ValueError:
            return False
        return ns <= os_ and (np_ - ns) <= (op - os_)
    if old.startswith("DECIMAL") and new in _INT_RANK:
        return True
    if old == "TIMESTAMP" and new == "DATE":
        return True
    return False


def unique_key_columns(asset: Asset) -> list[str]:
    uk = (asset.config or {}).get("unique_key")
    if isinstance(uk, str):
        cols = [c.strip() for c in uk.split(",") if c.strip()]
    elif isinstance(uk, list | tuple):
        cols = [str(c) for c in uk]
    else:
        cols = []
    for c in cols:
        if not c.replace("_", "a").isalnum():
            raise UserError(f"{asset.path or asset.key}: unique_key {c!r} is not a column name")
    return cols


class Materializer:
    """One asset's writes in one run: templates are rendered once, `write(keys)` runs one unit."""

    def __init__(self, asset: Asset, pdef: PartitionsDef | None, adapter: Adapter,
                 select: PreparedSelect | None, *, full_refresh: bool = False, root: Path | None = None) -> None:
        self.asset = asset
        self.pdef = pdef
        self.adapter = adapter
        self.select = select
        self.full_refresh = full_refresh
        self.root = root or Path.cwd()
        self.strategy = _strategy_name(asset, pdef)
        if asset.relation is None and self.strategy != "ephemeral":
            raise UserError(f"asset '{asset.key}' has no relation to write")
        self.relation = asset.relation
        self.exists: bool | None = None
        self._lock = threading.Lock()
        self._prepared = False
        self._insert: list[Template] = []
        self._create: Template | None = None
        self._kind: str | None = None

    @property
    def writes(self) -> bool:
        return self.strategy != "ephemeral"

    @property
    def batchable(self) -> bool:
        return self.select is not None and batchable(self.pdef, self.select.uses_key, self.strategy)

    # -- expression builders ----------------------------------------------------------------------------
    def _table(self, identifier: str | None = None) -> exp.Table:
        assert self.relation is not None
        return self.adapter.table(self.relation, identifier)

    def _source(self) -> exp.Select:
        """SELECT * FROM (<asset select>) AS _q [WHERE <partition predicate>]."""
        assert self.select is not None
        q = exp.select("*").from_(exp.Subquery(this=self.select.expression.copy(),
                                               alias=exp.TableAlias(this=exp.to_identifier("_sqlassets_q"))))
        if self.pdef is not None:
            q = q.where(partition_predicate(self.pdef, quoted=False))
        return q

    def _tpl(self, expression: exp.Expression) -> Template:
        return Template(self.adapter.render(expression), self.adapter.dialect)

    # -- lifecycle --------------------------------------------------------------------------------------
    def prepare(self, session: Session, first_keys: Sequence[str]) -> None:
        """Check what exists, drop it on --full-refresh, reconcile schema drift, render templates."""
        if self._prepared or not self.writes:
            return
        assert self.relation is not None
        self.adapter.ensure_schema(session, self.relation)
        kind = self.adapter.relation_type(session, self.relation)
        incremental = self.strategy in ("partition_replace", "merge", "append")
        if kind is not None and (self.full_refresh and incremental or (incremental and kind == "view")):
            session.execute(self.adapter.render(exp.Drop(tables=[self._table()], kind=kind.upper(), exists=True)))
            kind = None
        self.exists = kind is not None
        self._kind = kind
        if incremental:
            source = self._source()
            props = None if self.exists else self.adapter.table_properties(
                session, self.asset, self.pdef, source, list(first_keys) or [""])
            self._create = self._tpl(exp.Create(this=self._table(), kind="TABLE", expression=source.copy(),
                                                properties=props))
            if self.exists:
                columns = self._reconcile(session, source, first_keys)
                self._build_incremental(source, columns)
            elif self.strategy == "merge":
                # Before the first CREATE: a unique_key the SELECT lacks must not leave a table behind.
                probe = self._tpl(source).render(self.pdef, list(first_keys) or [""])
                self._check_unique_key([c.name for c in self.adapter.query_columns(session, probe)])
        self._prepared = True

    def _reconcile(self, session: Session, source: exp.Select, first_keys: Sequence[str]) -> list[str]:
        """Add new columns; fail on incompatible type changes. Returns the query's columns."""
        table_cols = {c.name.lower(): c for c in self.adapter.columns(session, self.relation)}
        probe = self._tpl(source).render(self.pdef, list(first_keys) or [""])
        query_cols: list[ColumnInfo] = self.adapter.query_columns(session, probe)
        norm = self.adapter.normalize_type
        for qc in query_cols:
            tc = table_cols.get(qc.name.lower())
            if tc is None:
                session.execute(self.adapter.render(exp.Alter(
                    this=self._table(), kind="TABLE",
                    actions=[exp.ColumnDef(this=exp.to_identifier(qc.name, quoted=True),
                                           kind=exp.DataType.build(qc.type, dialect=self.adapter.dialect))])))
                continue
            if not type_compatible(norm(tc.type), norm(qc.type)):
                raise UserError(f"asset '{self.asset.key}': column '{qc.name}' changed type from {tc.type} to "
                                f"{qc.type}; rerun with --full-refresh to rebuild {self.relation}")
        return [c.name for c in query_cols]

    def _build_incremental(self, source: exp.Select, columns: list[str]) -> None:
        ids = [exp.to_identifier(c, quoted=True) for c in columns]
        target = self._table()
        if self.strategy == "partition_replace":
            assert self.pdef is not None
            delete = exp.Delete(this=target.copy(), where=exp.Where(this=partition_predicate(self.pdef, quoted=False)))
            insert = exp.Insert(this=exp.Schema(this=target.copy(), expressions=[i.copy() for i in ids]),
                                expression=exp.select(*[exp.column(i.copy()) for i in ids]).from_(
                                    exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier("_s")))))
            self._insert = [self._tpl(delete), self._tpl(insert)]
        elif self.strategy == "append":
            insert = exp.Insert(this=exp.Schema(this=target.copy(), expressions=[i.copy() for i in ids]),
                                expression=exp.select(*[exp.column(i.copy()) for i in ids]).from_(
                                    exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier("_s")))))
            self._insert = [self._tpl(insert)]
        elif self.strategy == "merge":
            keys = self._check_unique_key(columns)
            self._insert = self._merge_templates(source, columns, keys)

    def _check_unique_key(self, columns: list[str]) -> list[str]:
        keys = unique_key_columns(self.asset)
        by_lower = {c.lower(): c for c in columns}
        missing = [k for k in keys if k.lower() not in by_lower]
        if missing:
            raise UserError(f"asset '{self.asset.key}': unique_key column(s) {', '.join(missing)} are not in "
                            f"its SELECT (columns: {', '.join(columns)}); fix unique_key or the SELECT")
        # The key as the warehouse spells the column (Snowflake folds unquoted names to upper case).
        return [by_lower[k.lower()] for k in keys]

    def _merge_templates(self, source: exp.Select, columns: list[str], keys: list[str]) -> list[Template]:
        target = self._table()
        tgt_alias, src_alias = "_t", "_s"
        aliased_target = target.copy()
        aliased_target.set("alias", exp.TableAlias(this=exp.to_identifier(tgt_alias)))
        on = exp.and_(*[exp.column(k, table=tgt_alias, quoted=True).eq(exp.column(k, table=src_alias, quoted=True))
                        for k in keys])
        key_lower = {k.lower() for k in keys}
        if self.adapter.supports_merge:
            updates = [exp.EQ(this=exp.column(c, quoted=True), expression=exp.column(c, table=src_alias, quoted=True))
                       for c in columns if c.lower() not in key_lower]
            whens = []
            if updates:
                whens.append(exp.When(matched=True, then=exp.Update(expressions=updates)))
            whens.append(exp.When(matched=False, then=exp.Insert(
                this=exp.Tuple(expressions=[exp.column(c, quoted=True) for c in columns]),
                expression=exp.Tuple(expressions=[exp.column(c, table=src_alias, quoted=True) for c in columns]))))
            merge = exp.Merge(this=aliased_target,
                              using=exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier(src_alias))),
                              on=on, whens=exp.Whens(expressions=whens))
            return [self._tpl(merge)]
        # DELETE the keys the new rows carry, then INSERT them (one transaction).
        key_tuple = (exp.column(keys[0], quoted=True) if len(keys) == 1
                     else exp.Tuple(expressions=[exp.column(k, quoted=True) for k in keys]))
        sub = exp.select(*[exp.column(k, quoted=True) for k in keys]).from_(
            exp.Subquery(this=source.copy(), alias=exp.TableAlias(this=exp.to_identifier(src_alias))))
        delete = exp.Delete(this=target.copy(), where=exp.Where(this=exp.In(this=key_tuple, query=exp.Subquery(this=sub))))
        ids = [exp.to_identifier(c, quoted=True) for c in columns]
        insert = exp.Insert(this=exp.Schema(this=target.copy(), expressions=ids),
                            expression=exp.select(*[exp.column(c, quoted=True) for c in columns]).from_(
                                exp.Subquery(this=source, alias=exp.TableAlias(this=exp.to_identifier(src_alias)))))
        return [self._tpl(delete), self._tpl(insert)]

    # -- one unit ---------------------------------------------------------------------------------------
    def write(self, session: Session, keys: Sequence[str]) -> Outcome:
        """Write one partition / batch (or the whole asset); atomic: commits fully or not at all."""
        if not self.writes:
            return Outcome(None)
        session.set_query_tag(self.adapter.query_tag(self.asset.key, keys))
        if self.strategy in ("table", "seed"):
            return self._swap(session)
        if self.strategy == "view":
            return self._view(session)
        if not self.exists:
            with self._lock:
                if not self.exists:
                    assert self._create is not None
                    create = self._create.render(self.pdef, keys)
                    rows = session.run_atomic([create])
                    # Later units insert by the columns this first one created (a dry run created
                    # nothing: then the query's own columns, which CTAS would have given the table).
                    source = self._source()
                    cols = [c.name for c in self.adapter.columns(session, self.relation)]
                    if not cols:
                        cols = [c.name for c in self.adapter.query_columns(session, self._tpl(source).render(
                            self.pdef, list(keys)))]
                    self._build_incremental(source, cols)
                    self.exists = True
                    return Outcome(rows)
        rows = None
        memo: dict[str, str] = {}
        statements = [tpl.render(self.pdef, keys, memo) for tpl in self._insert]
        rows = session.run_atomic(statements)
        return Outcome(rows)

    def _swap(self, session: Session) -> Outcome:
        assert self.relation is not None
        staging = self.adapter.staging_identifier(self.relation, "new")
        staging_t = self._table(staging)
        if self.strategy == "seed":
            csv = self.root / (self.asset.path or "")
            if not csv.is_file():
                raise UserError(f"seed '{self.asset.key}': CSV file {csv} not found")
            types = {str(k): str(v) for k, v in ((self.asset.config or {}).get("column_types") or {}).items()}
            rows = self.adapter.load_seed(session, csv, staging_t, types)
        else:
            assert self.select is not None
            if self.select.uses_window or self.select.uses_key:
                raise UserError(f"asset '{self.asset.key}' uses window placeholders but is not partitioned")
            select = self.select.expression.copy()
            props = self.adapter.table_properties(session, self.asset, None, select, ())
            rows = session.execute(self.adapter.render(exp.Create(this=staging_t, kind="TABLE", replace=True,
                                                                  expression=select, properties=props)))
        # What is there now was read by prepare(); after a swap it is a table.
        kind = self._kind if self._prepared else self.adapter.relation_type(session, self.relation)
        copied = self.adapter.swap(session, self._table(staging), self._table(), kind)
        self._kind = "table"
        return Outcome(rows if rows is not None else copied)

    def _view(self, session: Session) -> Outcome:
        assert self.relation is not None and self.select is not None
        kind = self._kind if self._prepared else self.adapter.relation_type(session, self.relation)
        create = exp.Create(this=self._table(), kind="VIEW", replace=True, expression=self.select.expression.copy())
        statements = []
        if kind == "table":
            statements.append(self.adapter.render(exp.Drop(tables=[self._table()], kind="TABLE", exists=True)))
        statements.append(self.adapter.render(create))
        session.run_atomic(statements)
        self._kind = "view"
        return Outcome(None)


def print_statements(plan: Plan, materializers: dict[str, Materializer], adapter: Adapter, *, batch_size: int,
                     echo: Callable[[str], None]) -> tuple[int, int]:
    """`--dry-run` on a remote warehouse: every statement a run would send, unit by unit, sending none.

    Reads (does the table exist, its columns) go to the warehouse, so the statements are the ones a run
    would send now; with the warehouse unreachable it assumes nothing exists yet. Returns the (requests,
    statements) the writes would take.
    """
    from sqlassets.run.partitions import contiguous_batches

    try:
        adapter.open()
        inner = adapter.session()
    except UserError as exc:
        echo(f"-- warehouse not reachable ({exc}); statements assume nothing exists yet")
        inner = None
    session = adapter.dry_run_session(inner, echo)
    for pa in plan.to_run:
        mat = materializers[pa.key]
        size = batch_size if mat.batchable else 1
        for batch in contiguous_batches(mat.pdef, list(pa.keys), size):
            label = "-" if batch in ((), ("",)) else (batch[0] if len(batch) == 1 else f"{batch[0]}..{batch[-1]}")
            echo(f"-- {pa.key} [{label}]")
            mat.prepare(session, batch)
            mat.write(session, batch)
    echo(f"-- {session.statements} statement(s) in {session.requests} request(s)")
    return session.requests, session.statements
