"""DuckDB, the embedded default warehouse.

One `duckdb` connection per process, a cursor per thread (DuckDB's supported model for threads); each
cursor is its own transaction context. Writes to different rows of one table may run at once (DuckDB's
optimistic concurrency); a conflict raises a TransactionException, which is transient and retried.
Another *process* holding the file is reported as a clear error (DuckDB allows one writer process).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from sqlassets.adapters.base import Adapter, ColumnInfo, Session
from sqlassets.errors import UserError
from sqlassets.run import faults

_LOCK_PID = re.compile(r"\(PID (\d+)\)")


class WarehouseBusy(UserError):
    """The DuckDB file is open for writing in another process."""


class DuckDBSession(Session):
    def __init__(self, cursor: duckdb.DuckDBPyConnection) -> None:
        self.cursor = cursor
        self.timezone: str | None = None  # what this cursor's TimeZone is set to (None: untouched)
        self.default_timezone: str | None = None

    def execute(self, sql: str) -> int | None:
        cur = self.cursor.execute(sql)
        try:
            row = cur.fetchone()
        except duckdb.InvalidInputException:
            return None
        if row is not None and len(row) == 1 and isinstance(row[0], int):
            return row[0]
        return None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.cursor.execute(sql, list(params)).fetchall()

    def begin(self) -> None:
        self.cursor.execute("BEGIN TRANSACTION")

    def commit(self) -> None:
        faults.hit("commit")  # (fault-injection suite: dies with the transaction open)
        self.cursor.execute("COMMIT")

    def rollback(self) -> None:
        self.cursor.execute("ROLLBACK")

    def interrupt(self) -> None:
        self.cursor.interrupt()

    def close(self) -> None:
        self.cursor.close()


class DuckDBAdapter(Adapter):
    type: ClassVar[str] = "duckdb"
    dialect: ClassVar[str] = "duckdb"
    supports_transactions = True
    supports_transactional_ddl = True
    supports_merge = True
    supports_delete_insert = True
    supports_insert_overwrite = False
    supports_concurrent_writes = True
    supports_rename_across_schema = False

    def __init__(self, warehouse: Any, *, wait: bool = False, wait_timeout: float = 3600.0) -> None:
        super().__init__(warehouse)
        self.path: Path | None = warehouse.path
        self.wait = wait
        self.wait_timeout = wait_timeout
        self._conn: duckdb.DuckDBPyConnection | None = None

    def open(self) -> None:
        if self._conn is not None:
            return
        target = str(self.path) if self.path is not None else ":memory:"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_timeout
        delay = 0.1
        while True:
            try:
                self._conn = duckdb.connect(target)
                return
            except duckdb.IOException as exc:
                text = str(exc)
                if "lock" not in text.lower():
                    raise UserError(f"cannot open DuckDB warehouse {target}: {text.splitlines()[0]}") from None
                if not self.wait or time.monotonic() > deadline:
                    m = _LOCK_PID.search(text)
                    who = f"process {m.group(1)}" if m else "another process"
                    raise WarehouseBusy(f"DuckDB warehouse {target} is open in {who}; wait for it to finish "
                                        "or pass --wait") from None
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)
            except duckdb.Error as exc:
                # A corrupt file fails its checksums here (Corrupt database file: ...).
                raise UserError(f"cannot open DuckDB warehouse {target}: {str(exc).splitlines()[0]}; restore it "
                                "from a backup, or move it away to rebuild from scratch") from None

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        self.open()
        assert self._conn is not None
        return self._conn

    def new_session(self) -> Session:
        return DuckDBSession(self.connection.cursor())

    def close(self) -> None:
        super().close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def set_timezone(self, session: Session, timezone: str | None) -> None:
        """DuckDB casts a TIMESTAMP to TIMESTAMPTZ in the session's TimeZone (the machine's by default), so
        a partition's wall-clock bounds become instants in its own timezone only with TimeZone set to it."""
        # Any Session (the UI wraps ours to record the SQL sent): only execute/query and two attributes.
        if getattr(session, "timezone", None) == timezone:
            return
        if getattr(session, "default_timezone", None) is None:
            session.default_timezone = str(session.query("SELECT current_setting('TimeZone')")[0][0])
        if timezone is None and session.timezone is None:
            return
        from sqlassets.run.windows import literal_sql

        session.execute(f"SET TimeZone = {literal_sql(timezone or session.default_timezone, 'duckdb')}")
        session.timezone = timezone

    # -- catalog --------------------------------------------------------------------------------------
    def _where(self, relation: Any) -> tuple[str, list[Any]]:
        clauses = ["lower(table_name) = lower(?)"]
        params: list[Any] = [relation.identifier]
        if relation.schema:
            clauses.append("lower(table_schema) = lower(?)")
            params.append(relation.schema)
        if relation.database:
            clauses.append("lower(table_catalog) = lower(?)")
            params.append(relation.database)
        return " AND ".join(clauses), params

    def relation_type(self, session: Session, relation: Any) -> str | None:
        where, params = self._where(relation)
        rows = session.query(f"SELECT table_type FROM information_schema.tables WHERE {where}", params)
        if not rows:
            return None
        return "view" if rows[0][0] == "VIEW" else "table"

    def columns(self, session: Session, relation: Any) -> list[ColumnInfo]:
        where, params = self._where(relation)
        rows = session.query(f"SELECT column_name, data_type FROM information_schema.columns WHERE {where} "
                             "ORDER BY ordinal_position", params)
        return [ColumnInfo(r[0], r[1]) for r in rows]

    def query_columns(self, session: Session, select_sql: str) -> list[ColumnInfo]:
        rows = session.query(f"DESCRIBE {select_sql}")
        return [ColumnInfo(r[0], r[1]) for r in rows]

    def load_csv_select(self, path: Path, column_types: dict[str, str]) -> Any:
        from sqlglot import exp

        read = exp.func("read_csv", exp.Literal.string(str(path)),
                        exp.EQ(this=exp.column("header"), expression=exp.true()),
                        exp.EQ(this=exp.column("auto_detect"), expression=exp.true()))
        select = exp.select("*").from_(read)
        if column_types:
            # Typed seed columns (dbt `column_types`): read those as text, then cast, like dbt does; the
            # other columns keep their detected types (a partial `column_types` must not drop them).
            import sqlglot

            def q(name: str) -> str:
                return exp.to_identifier(name, quoted=True).sql(dialect="duckdb")

            as_text = ", ".join(f"{exp.Literal.string(c).sql(dialect='duckdb')}: 'VARCHAR'" for c in column_types)
            casts = ", ".join(f"cast({q(c)} as {exp.DataType.build(t, dialect=self.dialect).sql(dialect='duckdb')})"
                              f" as {q(c)}" for c, t in column_types.items())
            return sqlglot.parse_one(
                f"select * replace ({casts}) from read_csv({exp.Literal.string(str(path)).sql(dialect='duckdb')}, "
                f"header = true, auto_detect = true, types = {{{as_text}}})", read="duckdb")
        return select

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, duckdb.TransactionException):
            return "conflict" in str(exc).lower()
        if isinstance(exc, duckdb.IOException):
            return "lock" in str(exc).lower()
        return False

    def normalize_type(self, type_name: str) -> str:
        t = type_name.upper().strip()
        return {"INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT", "LONG": "BIGINT", "FLOAT8": "DOUBLE",
                "FLOAT4": "FLOAT", "REAL": "FLOAT", "STRING": "VARCHAR", "TEXT": "VARCHAR", "BOOL": "BOOLEAN",
                "DATETIME": "TIMESTAMP", "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(t, t)
