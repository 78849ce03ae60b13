"""The warehouse adapter contract: capabilities, sessions, rendering and catalog reads.

The core (strategies, executor) builds sqlglot expressions and asks the adapter to render, run and
introspect them; it never writes engine-specific SQL itself. A warehouse states what it can do with
class-level capability flags, and the strategies pick a plan that fits:

    supports_transactions        multi-statement transactions (DELETE+INSERT atomically); else the
                                 strategy uses insert-overwrite / merge, or stages into a temp table
    supports_transactional_ddl   CREATE/DROP/RENAME inside a transaction (swap in one step)
    supports_merge               MERGE INTO
    supports_delete_insert       DELETE ... WHERE + INSERT
    supports_insert_overwrite    INSERT OVERWRITE of a partition (BigQuery / Spark style)
    supports_concurrent_writes   several sessions may write one table at once
    supports_rename_across_schema ALTER ... RENAME can move a table between schemas

Snowflake and BigQuery fit by setting `dialect`, the flags, and overriding `connect`, `Session`,
`columns`, `relation_type`, `query_columns`, `load_csv` and `is_transient`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from sqlglot import exp

    from sqlassets.model import Relation
    from sqlassets.project import Warehouse


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str


class Session:
    """One unit of work against the warehouse (a DuckDB cursor, a Snowflake connection, ...).

    Sessions are used by one thread at a time; the executor gives each worker its own.
    """

    def execute(self, sql: str) -> int | None:
        """Run one statement; return the number of rows it wrote when the engine reports it."""
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def begin(self) -> None:
        raise NotImplementedError

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Cancel the statement in flight (Ctrl-C); the caller then rolls back."""

    def close(self) -> None:
        pass

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """BEGIN ... COMMIT, or ROLLBACK on any exception (including KeyboardInterrupt)."""
        self.begin()
        try:
            yield self
        except BaseException:
            try:
                self.rollback()
            except Exception:  # noqa: BLE001 - the original error matters more than a failed rollback
                pass
            raise
        self.commit()


class Adapter:
    """Base class: capability flags plus the few operations each warehouse implements its own way."""

    type: ClassVar[str] = "base"
    dialect: ClassVar[str] = ""
    supports_transactions: ClassVar[bool] = True
    supports_transactional_ddl: ClassVar[bool] = True
    supports_merge: ClassVar[bool] = False
    supports_delete_insert: ClassVar[bool] = True
    supports_insert_overwrite: ClassVar[bool] = False
    supports_concurrent_writes: ClassVar[bool] = False
    supports_rename_across_schema: ClassVar[bool] = False

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        self._local = threading.local()
        self._sessions: list[Session] = []
        self._sessions_lock = threading.Lock()

    # -- lifecycle ------------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect (lazily called by `session()`); raise a UserError if the warehouse cannot be reached."""

    def close(self) -> None:
        with self._sessions_lock:
            for s in self._sessions:
                try:
                    s.close()
                except Exception:  # noqa: BLE001 - closing is best effort
                    pass
            self._sessions.clear()
        self._local = threading.local()

    def new_session(self) -> Session:
        raise NotImplementedError

    def session(self) -> Session:
        """This thread's session (created on first use)."""
        s = getattr(self._local, "session", None)
        if s is None:
            s = self.new_session()
            self._local.session = s
            with self._sessions_lock:
                self._sessions.append(s)
        return s

    def interrupt_all(self) -> None:
        with self._sessions_lock:
            sessions = list(self._sessions)
        for s in sessions:
            try:
                s.interrupt()
            except Exception:  # noqa: BLE001
                pass

    # -- rendering ------------------------------------------------------------------------------------
    def render(self, expression: exp.Expression) -> str:
        return expression.sql(dialect=self.dialect)

    def table(self, relation: Relation, identifier: str | None = None) -> exp.Table:
        """A relation as a sqlglot table (optionally with another identifier, for staging tables)."""
        from sqlglot import exp

        return exp.table_(identifier or relation.identifier, db=relation.schema, catalog=relation.database,
                          quoted=True)

    def staging_identifier(self, relation: Relation, suffix: str) -> str:
        return f"{relation.identifier}__sqlassets_{suffix}"

    # -- catalog --------------------------------------------------------------------------------------
    def relation_type(self, session: Session, relation: Relation) -> str | None:
        """'table', 'view' or None when the relation does not exist."""
        raise NotImplementedError

    def columns(self, session: Session, relation: Relation) -> list[ColumnInfo]:
        raise NotImplementedError

    def query_columns(self, session: Session, select_sql: str) -> list[ColumnInfo]:
        """The output columns of a query, without running it."""
        raise NotImplementedError

    def ensure_schema(self, session: Session, relation: Relation) -> None:
        from sqlglot import exp

        if relation.schema:
            session.execute(self.render(exp.Create(
                this=exp.Table(db=exp.to_identifier(relation.schema, quoted=True),
                               catalog=exp.to_identifier(relation.database, quoted=True) if relation.database else None),
                kind="SCHEMA", exists=True)))

    # -- loading and errors ---------------------------------------------------------------------------
    def load_csv_select(self, path: Path, column_types: dict[str, str]) -> exp.Expression:
        """A SELECT that reads a seed CSV file (engines without file access stage it first)."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """Worth retrying with backoff: lock timeouts, write-write conflicts, dropped connections."""
        return False

    def normalize_type(self, type_name: str) -> str:
        return type_name.upper().strip()


def adapter_for(warehouse: Warehouse, **options: Any) -> Adapter:
    """The adapter class for `warehouse.type` (imported lazily: only the one in use is loaded)."""
    from sqlassets.errors import ConfigError

    if warehouse.type == "duckdb":
        from sqlassets.adapters.duckdb import DuckDBAdapter

        return DuckDBAdapter(warehouse, **options)
    raise ConfigError(f"warehouse type '{warehouse.type}' is not supported yet for materialize/backfill "
                      "(supported: duckdb)")
