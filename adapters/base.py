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
    supports_multi_statement     several statements in one request (Snowflake Scripting block,
                                 BigQuery script): `Session.run_atomic` sends a unit in one round trip
    supports_swap                ALTER TABLE a SWAP WITH b: an atomic exchange in one statement, for
                                 engines whose DDL commits implicitly (no drop+rename transaction)
    supports_clone               zero-copy clone of a schema / dataset (the CI gate's isolated copy)
    remote                       a networked warehouse: round trips cost 100-500 ms, so --dry-run
                                 prints every statement and concurrency defaults to the profile's threads

Round trips are the cost on a cloud warehouse. A `Session` counts them (`requests`) and the statements
they carried (`statements`), so tests and benches can hold the strategies to "one request per
partition". Each unit tells its session which asset/partition it writes (`set_query_tag`); engines that
can attach it to the request itself (Snowflake statement parameters, BigQuery job labels) do so
without an extra round trip.

How a warehouse is chosen: `adapter_for` maps the profile's `type` to a module in `ADAPTERS`, imported
lazily; a missing SDK is one line naming the extra to install (`MissingExtra`). How it connects: each
adapter's `connect_args(options)` reads the dbt profile output the way the dbt adapter does (secrets
stay in memory: never logged, never written; `redact` masks them in messages).

DuckDB, Snowflake and BigQuery fit by setting `dialect`, the flags, and overriding `new_session`,
`columns`, `relation_type`, `query_columns`, `load_csv_select` and `is_transient` (plus `swap`,
`clone_schema`, `catalog` where they differ).
"""

from __future__ import annotations

import importlib
import json
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from sqlassets.errors import ConfigError, UserError

if TYPE_CHECKING:
    from sqlglot import exp

    from sqlassets.model import Asset, Relation
    from sqlassets.project import Warehouse
    from sqlassets.run.partitions import PartitionsDef


T = TypeVar("T")

# Profile keys whose values are secrets: masked by `redact`, never logged or written.
SECRET_KEYS = frozenset({"password", "private_key", "private_key_passphrase", "token", "oauth_client_secret",
                         "keyfile_json", "refresh_token", "client_secret", "passcode", "token_uri_secret"})


class MissingExtra(UserError):
    """The warehouse SDK is not installed: one line naming the pip extra."""


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str


def redact(text: str, options: dict[str, Any] | None) -> str:
    """`text` with every secret value of a profile output masked (for error messages and logs)."""
    for key, value in (options or {}).items():
        if key in SECRET_KEYS and isinstance(value, str) and len(value) >= 4:
            text = text.replace(value, "****")
    return text


def query_tag(asset: str, keys: Sequence[str]) -> str:
    """The tag a unit's queries carry: JSON naming the tool, the asset and the partition(s)."""
    keys = [k for k in keys if k]
    part = keys[0] if len(keys) == 1 else (f"{keys[0]}..{keys[-1]}" if keys else None)
    tag = {"app": "sqlassets", "asset": asset}
    if part is not None:
        tag["partition"] = part
    return json.dumps(tag, separators=(",", ":"))


def with_retries(fn: Callable[[], T], is_transient: Callable[[BaseException], bool], *, attempts: int = 3,
                 backoff: float = 0.2, cap: float = 30.0, on_retry: Callable[[int, BaseException], None] | None = None
                 ) -> T:
    """Call `fn`, retrying transient failures with exponential backoff and full jitter.

    Jitter keeps concurrent workers that hit the same lock or rate limit from retrying in lock step.
    """
    n = 0
    while True:
        n += 1
        try:
            return fn()
        except Exception as exc:
            if n >= attempts or not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(n, exc)
            time.sleep(random.uniform(0, min(cap, backoff * (2 ** (n - 1)))) + backoff / 2)


class Session:
    """One unit of work against the warehouse (a DuckDB cursor, a Snowflake connection, ...).

    Sessions are used by one thread at a time; the executor gives each worker its own. `requests`
    counts round trips to the warehouse and `statements` the statements they carried.
    """

    requests: int = 0
    statements: int = 0

    def count(self, requests: int = 1, statements: int = 1) -> None:
        self.requests += requests
        self.statements += statements

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

    def set_query_tag(self, tag: str | None) -> None:
        """Tag the following queries (asset + partition). Default: not supported, nothing sent."""

    def run_atomic(self, statements: Sequence[str]) -> int | None:
        """Run `statements` all-or-nothing; return the last one's row count.

        Default: BEGIN, each statement, COMMIT - N+2 round trips. Engines that take several statements
        in one request (`supports_multi_statement`) override this to send the unit in one.
        """
        rows = None
        with self.transaction():
            for sql in statements:
                rows = self.execute(sql)
        return rows

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
    supports_multi_statement: ClassVar[bool] = False
    supports_swap: ClassVar[bool] = False
    supports_clone: ClassVar[bool] = False
    remote: ClassVar[bool] = False
    quote_identifiers: ClassVar[bool] = True  # False where unquoted names fold case (Snowflake), as dbt writes them
    extra: ClassVar[str | None] = None  # the pip extra holding the SDK, e.g. "snowflake"

    def __init__(self, warehouse: Warehouse, **_options: Any) -> None:
        self.warehouse = warehouse
        self._relocate = {src: dst for src, dst in getattr(warehouse, "relocate", ())}
        self._local = threading.local()
        self._sessions: list[Session] = []
        self._sessions_lock = threading.Lock()

    # -- SDK and connection ---------------------------------------------------------------------------
    @classmethod
    def require(cls, module: str) -> ModuleType:
        """Import the warehouse SDK, or fail in one line naming the extra that installs it."""
        try:
            return importlib.import_module(module)
        except ImportError:
            extra = cls.extra or cls.type
            raise MissingExtra(f"warehouse type '{cls.type}' needs the {extra} extra (module {module} is missing): "
                               f"pip install 'sqlassets[{extra}]'") from None

    @classmethod
    def connect_args(cls, options: dict[str, Any]) -> dict[str, Any]:
        """The SDK's connect arguments from a dbt profile output, read as the dbt adapter reads it.

        The result holds secrets: pass it to the SDK, never log or write it.
        """
        return {}

    def endpoint(self) -> tuple[str, int] | None:
        """(host, port) the warehouse answers on, for a quick reachability check before connecting
        (lineage's catalog read must not hang on an unreachable account); None for embedded engines."""
        return None

    @classmethod
    def default_concurrency(cls, warehouse: Warehouse) -> int:
        """Workers when --concurrency is not given: the profile's `threads` on a remote warehouse
        (round trips overlap), 1 on an embedded one."""
        if not cls.remote:
            return 1
        try:
            return max(1, min(64, int(warehouse.options.get("threads") or 1)))
        except (TypeError, ValueError):
            raise ConfigError(f"profile 'threads' must be a number, not {warehouse.options.get('threads')!r}") from None

    def redact(self, text: str) -> str:
        return redact(text, self.warehouse.options)

    def query_tag(self, asset: str, keys: Sequence[str]) -> str:
        return query_tag(asset, keys)

    def retry(self, fn: Callable[[], T], *, attempts: int = 3, backoff: float = 0.2) -> T:
        """`fn` with this warehouse's transient errors retried (for connecting and catalog reads)."""
        return with_retries(fn, self.is_transient, attempts=attempts, backoff=backoff)

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

    def set_timezone(self, session: Session, timezone: str | None) -> None:
        """Read naive window bounds as wall-clock time in `timezone` when they meet TIMESTAMP WITH TIME
        ZONE values (None: the session's own default). Engines that compare such values in a session
        time zone override this; the executor calls it before each unit."""

    # -- rendering ------------------------------------------------------------------------------------
    def render(self, expression: exp.Expression) -> str:
        if self._relocate:
            expression = self._relocated_expression(expression.copy())
        return expression.sql(dialect=self.dialect)

    def relocated(self, relation: Relation) -> Relation:
        """Where `relation` really is when the warehouse relocates its schema (the CI gate's clone)."""
        if not self._relocate or not relation.schema:
            return relation
        key = ((relation.database or self.warehouse.database or "").lower(), relation.schema.lower())
        dst = self._relocate.get(key)
        if dst is None:
            return relation
        from dataclasses import replace

        return replace(relation, database=dst[0] or relation.database, schema=dst[1])

    def _relocated_expression(self, expression: exp.Expression) -> exp.Expression:
        from sqlglot import exp

        default_db = (self.warehouse.database or "").lower()
        for table in list(expression.find_all(exp.Table)):
            db = table.args.get("db")
            if db is None or not db.name:
                continue
            cat = table.args.get("catalog")
            dst = self._relocate.get(((cat.name if cat is not None else default_db).lower(), db.name.lower()))
            if dst is not None:
                table.set("db", exp.to_identifier(dst[1], quoted=db.quoted))
                if cat is not None:
                    table.set("catalog", exp.to_identifier(dst[0], quoted=cat.quoted))
        return expression

    def relocate_sql(self, sql: str) -> str:
        """Raw SQL (compiled dbt tests) with relocated schemas; unchanged when nothing is relocated."""
        if not self._relocate:
            return sql
        import sqlglot

        return ";\n".join(self.render(e) for e in sqlglot.parse(sql, read=self.dialect) if e is not None)

    def table(self, relation: Relation, identifier: str | None = None) -> exp.Table:
        """A relation as a sqlglot table (optionally with another identifier, for staging tables)."""
        from sqlglot import exp

        return exp.table_(identifier or relation.identifier, db=relation.schema, catalog=relation.database,
                          quoted=self.quote_identifiers)

    def staging_identifier(self, relation: Relation, suffix: str) -> str:
        return f"{relation.identifier}__sqlassets_{suffix}"

    def swap(self, session: Session, staging: exp.Table, target: exp.Table, target_kind: str | None) -> int | None:
        """Replace `target` (kind 'table', 'view' or None when missing) by the built `staging` table.

        Returns the rows now in `target` where the engine reports them with the swap (BigQuery's copy
        job), else None.

        Default: drop + rename in one transaction where DDL is transactional; otherwise the shortest
        window without a table the engine allows. Engines with `supports_swap` exchange in one statement.
        """
        from sqlglot import exp

        rename = exp.Alter(this=staging.copy(), kind="TABLE",
                           actions=[exp.AlterRename(this=exp.to_table(target.name, quoted=True))])
        drop = (exp.Drop(tables=[target.copy()], kind=target_kind.upper(), exists=True)
                if target_kind is not None else None)
        if self.supports_transactional_ddl:
            with session.transaction():
                if drop is not None:
                    session.execute(self.render(drop))
                session.execute(self.render(rename))
        else:
            if drop is not None:
                session.execute(self.render(drop))
            session.execute(self.render(rename))

    def table_properties(self, session: Session, asset: Asset, pdef: PartitionsDef | None,
                         select: exp.Expression, keys: Sequence[str]) -> exp.Properties | None:
        """Properties for a table the asset creates (BigQuery PARTITION BY / CLUSTER BY); default none.

        `select` fills it (for partition `keys`), for engines that need its column types.
        """
        return None

    def dry_run_session(self, inner: Session | None, echo: Callable[[str], None]) -> Session:
        """The session `--dry-run` writes through: prints every write, sends none (BigQuery also
        reports the bytes each would scan)."""
        return DryRunSession(inner, echo, multi_statement=self.supports_multi_statement)

    # -- catalog --------------------------------------------------------------------------------------
    def relation_type(self, session: Session, relation: Relation) -> str | None:
        """'table', 'view' or None when the relation does not exist."""
        raise NotImplementedError

    def columns(self, session: Session, relation: Relation) -> list[ColumnInfo]:
        raise NotImplementedError

    def query_columns(self, session: Session, select_sql: str) -> list[ColumnInfo]:
        """The output columns of a query, without running it."""
        raise NotImplementedError

    def catalog(self, session: Session, schemas: Sequence[tuple[str | None, str]] = ()
                ) -> list[tuple[str, str, str, str, str]]:
        """(database, schema, table, column, type) rows from INFORMATION_SCHEMA, in column order.

        `schemas` limits it to (database, schema) pairs; empty means the warehouse's default database.
        """
        raise NotImplementedError

    def checks_connection(self) -> Any:
        """A DB-API connection for checks (`cursor().execute(sql).fetchone()`), read by this thread.

        Remote adapters return a `ChecksConnection`; DuckDB hands checks its own connection.
        """
        raise NotImplementedError

    def relations(self, session: Session) -> set[tuple[str, str, str]]:
        """(database, schema, name) of every table and view, lower-cased, plus ("", "", default database)."""
        rows = self.catalog(session)
        out = {(d.lower(), s.lower(), t.lower()) for d, s, t, _c, _ty in rows}
        out.add(("", "", (self.warehouse.database or "").lower()))
        return self.unrelocated(out)

    def unrelocated(self, relations: set[tuple[str, str, str]]) -> set[tuple[str, str, str]]:
        """Relations named as the project names them (a relocated schema under its original name)."""
        if not self._relocate:
            return relations
        back = {dst: src for src, dst in self._relocate.items()}
        out = set()
        for d, s, t in relations:
            src = back.get((d, s))
            out.add((src[0], src[1], t) if src else (d, s, t))
        return out

    def clone_schema(self, session: Session, source: tuple[str | None, str], target: tuple[str | None, str]) -> None:
        """Make `target` an isolated copy of `source` (the CI gate). Default: copy table by table."""
        raise NotImplementedError(f"{self.type} cannot clone a schema")

    def drop_schema(self, session: Session, target: tuple[str | None, str]) -> None:
        """DROP SCHEMA IF EXISTS ... CASCADE (the CI gate's clone, afterwards)."""
        raise NotImplementedError(f"{self.type} cannot drop a schema")

    def ensure_schema(self, session: Session, relation: Relation) -> None:
        """CREATE SCHEMA IF NOT EXISTS, once per schema per run (a round trip each on a cloud warehouse)."""
        done = self.__dict__.setdefault("_schemas_ensured", set())
        if relation.schema and (relation.database, relation.schema) not in done:
            session.execute(self.schema_ddl(relation))
            if not isinstance(session, DryRunSession):
                done.add((relation.database, relation.schema))

    def schema_ddl(self, relation: Relation) -> str:
        """The `CREATE SCHEMA IF NOT EXISTS` for a relation's schema, rendered in this dialect."""
        from sqlglot import exp

        q = self.quote_identifiers
        return self.render(exp.Create(
            this=exp.Table(db=exp.to_identifier(relation.schema, quoted=q),
                           catalog=exp.to_identifier(relation.database, quoted=q) if relation.database else None),
            kind="SCHEMA", exists=True))

    # -- loading and errors ---------------------------------------------------------------------------
    def load_seed(self, session: Session, path: Path, staging: exp.Table, column_types: dict[str, str]) -> int | None:
        """Load a seed CSV into a new `staging` table (replacing any old one); return rows loaded.

        Default: CREATE OR REPLACE TABLE ... AS the engine's CSV-reading SELECT (`load_csv_select`).
        Engines that cannot read the client's files upload them instead (Snowflake stage + COPY INTO).
        """
        from sqlglot import exp

        return session.execute(self.render(exp.Create(this=staging, kind="TABLE", replace=True,
                                                      expression=self.load_csv_select(path, column_types))))

    def load_csv_select(self, path: Path, column_types: dict[str, str]) -> exp.Expression:
        """A SELECT that reads a seed CSV file (engines without file access stage it first)."""
        raise NotImplementedError

    def is_transient(self, exc: BaseException) -> bool:
        """Worth retrying with backoff: lock timeouts, write-write conflicts, dropped connections."""
        return False

    def normalize_type(self, type_name: str) -> str:
        return type_name.upper().strip()


_READ_ONLY = re.compile(r"^\s*(select|with|show|describe|desc|explain)\b", re.I)


class DryRunSession(Session):
    """Reads go to the warehouse (what exists, which columns); writes are printed, never sent.

    `--dry-run` on a remote warehouse runs the strategies against this session, so what it prints is
    exactly what a real run would send, unit by unit.
    """

    def __init__(self, inner: Session | None, echo: Callable[[str], None], *, multi_statement: bool = False) -> None:
        self.inner = inner
        self.echo = echo
        self.multi_statement = multi_statement
        self.tag: str | None = None
        self.requests = 0
        self.statements = 0

    def set_query_tag(self, tag: str | None) -> None:
        self.tag = tag

    def _print(self, sql: str) -> None:
        self.echo(sql.rstrip().rstrip(";") + ";")

    def execute(self, sql: str) -> int | None:
        self.count()
        self._print(sql)
        return None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not _READ_ONLY.match(sql):  # e.g. COPY INTO returns rows but writes: print it, never send it
            return [] if self.execute(sql) is None else []
        return self.inner.query(sql, params) if self.inner is not None else []

    def run_atomic(self, statements: Sequence[str]) -> int | None:
        how = "one request" if self.multi_statement else "BEGIN ... COMMIT"
        self.echo(f"-- all or nothing, {how}" + (f"; query tag {self.tag}" if self.tag else ""))
        # One request on multi-statement engines; else BEGIN + each statement + COMMIT.
        self.count(requests=1 if self.multi_statement else len(statements) + 2, statements=len(statements))
        for sql in statements:
            self._print(sql)
        return None

    def begin(self) -> None:
        self.count()
        self.echo("BEGIN;")

    def commit(self) -> None:
        self.count()
        self.echo("COMMIT;")

    def rollback(self) -> None:
        pass


class ChecksConnection:
    """What checks read through on a remote warehouse: the DB-API connection of this thread's session,
    plus the relations that exist (`sqlassets_relations`), read from INFORMATION_SCHEMA once per call."""

    def __init__(self, adapter: Adapter, dbapi: Any, *, owns_adapter: bool = False) -> None:
        self.adapter = adapter
        self.dbapi = dbapi
        self.owns_adapter = owns_adapter

    def cursor(self) -> Any:
        cursor = self.dbapi.cursor()
        return _RelocatingCursor(cursor, self.adapter) if self.adapter._relocate else cursor

    def sqlassets_relations(self) -> set[tuple[str, str, str]]:
        return self.adapter.relations(self.adapter.session())

    def close(self) -> None:
        if self.owns_adapter:
            self.adapter.close()


class _RelocatingCursor:
    """A DB-API cursor whose queries read the relocated schemas (checks in the CI gate's clone)."""

    def __init__(self, cursor: Any, adapter: Adapter) -> None:
        self._cursor = cursor
        self._adapter = adapter

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        self._cursor.execute(self._adapter.relocate_sql(sql), *args, **kwargs)
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)


# Warehouse type (dbt adapter type) -> "module:Class", imported only when that warehouse is used.
ADAPTERS = {
    "duckdb": "sqlassets.adapters.duckdb:DuckDBAdapter",
    "snowflake": "sqlassets.adapters.snowflake:SnowflakeAdapter",
    "bigquery": "sqlassets.adapters.bigquery:BigQueryAdapter",
}


def adapter_class(wtype: str) -> type[Adapter]:
    """The adapter class for a profile `type` (imported lazily: only the one in use is loaded)."""
    target = ADAPTERS.get(wtype)
    if target is None:
        raise ConfigError(f"warehouse type '{wtype}' is not supported for materialize/backfill "
                          f"(supported: {', '.join(ADAPTERS)})")
    module, _, name = target.partition(":")
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ConfigError(f"warehouse type '{wtype}' is not supported yet for materialize/backfill") from None
        raise
    return getattr(mod, name)


def adapter_for(warehouse: Warehouse, **options: Any) -> Adapter:
    """An adapter for the project's warehouse, chosen by the profile's `type`."""
    return adapter_class(warehouse.type)(warehouse, **options)
