"""Snowflake, through snowflake-connector-python (the `sqlassets[snowflake]` extra).

What Snowflake does best, and why the adapter leans on it:
- **Round trips are the cost** (100-500 ms each), so a unit's statements go in one request: a Snowflake
  Scripting block `EXECUTE IMMEDIATE $$ BEGIN BEGIN TRANSACTION; DELETE ...; INSERT ...; COMMIT; ...
  EXCEPTION WHEN OTHER THEN ROLLBACK; RAISE; END; $$` is one statement, one request, all or nothing.
  (A `num_statements` multi-statement request would also be one POST, but the connector then fetches
  each child result with further requests.) A single statement needs no transaction at all: Snowflake
  runs it atomically in autocommit mode, so a MERGE partition is one request with or without scripting.
- **DDL commits implicitly**: CREATE/ALTER/DROP end any open transaction, so "drop the old table and
  rename the new one in one transaction" is impossible. The atomic swap is `ALTER TABLE t SWAP WITH
  staging`, a single metadata operation: readers see the old table or the new one, never neither.
- **Query tags** travel as a statement parameter on the same request (`QUERY_TAG`), not as an extra
  `ALTER SESSION` round trip; the profile's own `query_tag` stays the session default.
- **Time zones** travel the same way: a time-partitioned unit's requests carry `TIMEZONE` = the
  partition's timezone (statement-level, as Snowpark's `statement_params` set it), so window bounds
  compared with TIMESTAMP_TZ / TIMESTAMP_LTZ columns are instants in the partition's timezone and
  CURRENT_DATE / `ts::date` follow it, as DuckDB's per-unit `SET TimeZone` does, with no extra round
  trip (an `ALTER SESSION` would cost one per worker and leak into the next unit). Other units send
  none and get the session's own default.
- **Seeds** are uploaded to a temporary stage (`PUT`) and loaded with `COPY INTO`: the server reads the
  file in bulk instead of the client sending INSERT batches.
- **Zero-copy CLONE** gives the CI gate an isolated schema without copying data.

Servers without Snowflake Scripting (the `fakesnow` emulator used in tests) are found by one probe at
connect time; there a unit falls back to BEGIN / statements / COMMIT and the swap to a drop + rename,
which the emulator runs, and the golden tests pin what real Snowflake is sent.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlassets.adapters.base import Adapter, ColumnInfo, Session
from sqlassets.errors import ConfigError, UserError

if TYPE_CHECKING:
    from sqlglot import exp

    from sqlassets.model import Relation

# Error codes worth retrying: too many waiters on a table lock (000625), an expired session token
# (390114) and the connector's network errors (250001-250003); rate limits and 5xx by their text.
_TRANSIENT_ERRNOS = {625, 390114, 250001, 250002, 250003}
_TRANSIENT_TEXT = re.compile(r"lock|deadlock|timeout|timed out|too many requests|429|50[234]|"
                             r"service unavailable|connection (reset|aborted)|temporarily", re.I)
_DML = re.compile(r"^\s*(insert|delete|update|merge|copy)\b", re.I)


class SnowflakeSession(Session):
    """One connector connection (and its cursor); one per worker thread."""

    def __init__(self, conn: Any, adapter: SnowflakeAdapter) -> None:
        self.conn = conn
        self.cur = conn.cursor()
        self.adapter = adapter
        self.tag: str | None = None
        self.timezone: str | None = None  # the unit's partition timezone (None: the session default)
        self.sent: list[str] | None = None  # set by tests / benches to record exactly what is sent

    def set_query_tag(self, tag: str | None) -> None:
        self.tag = tag

    def _send(self, sql: str, params: Sequence[Any] | None = None, statements: int = 1) -> Any:
        self.count(1, statements)
        if self.sent is not None:
            self.sent.append(sql)
        kwargs: dict[str, Any] = {}
        statement_params = {k: v for k, v in (("QUERY_TAG", self.tag), ("TIMEZONE", self.timezone)) if v}
        if statement_params:
            kwargs["_statement_params"] = statement_params
        return self.cur.execute(sql, list(params) if params else None, **kwargs)

    def execute(self, sql: str) -> int | None:
        cur = self._send(sql)
        if _DML.match(sql) and cur.rowcount is not None and cur.rowcount >= 0:
            return int(cur.rowcount)
        return None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self._send(sql, params).fetchall()]

    def begin(self) -> None:
        self._send("BEGIN")

    def commit(self) -> None:
        self._send("COMMIT")

    def rollback(self) -> None:
        self._send("ROLLBACK")

    def run_atomic(self, statements: Sequence[str]) -> int | None:
        if len(statements) == 1:  # one statement is atomic on its own in autocommit mode
            return self.execute(statements[0])
        if self.adapter.supports_multi_statement and not any("$$" in s for s in statements):
            row = self._send(scripting_block(statements), statements=len(statements)).fetchone()
            try:
                return int(row[0]) if row and row[0] is not None else None
            except (TypeError, ValueError):
                return None
        return super().run_atomic(statements)

    def interrupt(self) -> None:
        qid = getattr(self.cur, "sfqid", None)
        if qid:
            self.cur.abort_query(qid)

    def close(self) -> None:
        try:
            self.cur.close()
        finally:
            self.conn.close()


def scripting_block(statements: Sequence[str]) -> str:
    """One request that runs `statements` in a transaction and returns the last one's row count.

    Any error rolls the transaction back before it is raised, so a failed unit leaves nothing behind.
    """
    body = "\n".join(f"  {s.rstrip().rstrip(';')};" for s in statements[:-1])
    last = statements[-1].rstrip().rstrip(";")
    return ("EXECUTE IMMEDIATE $$\nBEGIN\n  BEGIN TRANSACTION;\n"
            f"{body}\n  {last};\n  LET n INTEGER := SQLROWCOUNT;\n  COMMIT;\n  RETURN n;\n"
            "EXCEPTION\n  WHEN OTHER THEN\n    ROLLBACK;\n    RAISE;\nEND;\n$$")


def _private_key(options: dict[str, Any]) -> bytes | None:
    """The key pair's private key as DER bytes, read as dbt-snowflake reads it (path or inline PEM/base64)."""
    path, inline = options.get("private_key_path"), options.get("private_key")
    if not path and not inline:
        return None
    from cryptography.hazmat.primitives import serialization

    passphrase = options.get("private_key_passphrase")
    pw = str(passphrase).encode() if passphrase else None
    try:
        if path:
            data = Path(os.path.expanduser(str(path))).read_bytes()
        else:
            text = str(inline).strip()
            if text.startswith("-----BEGIN"):
                data = text.encode()
            else:  # base64 DER, as dbt-snowflake accepts
                import base64

                key = serialization.load_der_private_key(base64.b64decode(text), password=pw)
                return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption())
        key = serialization.load_pem_private_key(data, password=pw)
    except OSError as exc:
        raise ConfigError(f"snowflake profile: cannot read private_key_path {path} ({exc.strerror})") from None
    except (ValueError, TypeError) as exc:
        # The message names the problem, never the key or the passphrase.
        raise ConfigError(f"snowflake profile: the private key cannot be loaded ({type(exc).__name__}); "
                          "check private_key / private_key_passphrase") from None
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class SnowflakeAdapter(Adapter):
    type: ClassVar[str] = "snowflake"
    dialect: ClassVar[str] = "snowflake"
    extra: ClassVar[str | None] = "snowflake"
    supports_transactions = True
    supports_transactional_ddl = False  # DDL commits implicitly
    supports_merge = True
    supports_delete_insert = True
    supports_insert_overwrite = False
    supports_concurrent_writes = True
    supports_rename_across_schema = True
    supports_multi_statement = True  # Snowflake Scripting blocks (probed: emulators may lack them)
    supports_swap = True
    supports_clone = True
    remote = True
    quote_identifiers = False  # dbt-snowflake writes names unquoted; Snowflake folds them to upper case

    def __init__(self, warehouse: Any, **_options: Any) -> None:
        super().__init__(warehouse)
        self._args: dict[str, Any] | None = None
        self._probe_lock = threading.Lock()
        self.scripting: bool | None = None  # Snowflake Scripting available (None: not probed yet)

    # -- connection ---------------------------------------------------------------------------------
    @classmethod
    def connect_args(cls, options: dict[str, Any]) -> dict[str, Any]:
        """snowflake.connector.connect() arguments from a dbt-snowflake profile output."""
        missing = [k for k in ("account", "user", "database", "schema") if not options.get(k)]
        if missing and not (options.get("host") and options.get("user")):
            raise ConfigError(f"snowflake profile is missing {', '.join(missing)}; dbt-snowflake needs "
                              "account, user, database, schema (and warehouse, role)")
        args: dict[str, Any] = {
            "account": options.get("account") or "local",
            "user": options.get("user"),
            "database": options.get("database"),
            "schema": options.get("schema"),
            "autocommit": True,
            "application": "sqlassets",
            "client_session_keep_alive": bool(options.get("client_session_keep_alive", False)),
            "login_timeout": int(options.get("connect_timeout") or 60),
        }
        for key in ("warehouse", "role", "host", "port", "protocol", "password", "passcode"):
            if options.get(key) not in (None, ""):
                args[key] = options[key]
        if options.get("insecure_mode"):
            args["insecure_mode"] = True
        authenticator = str(options.get("authenticator") or "").strip()
        if authenticator:
            if authenticator.lower() == "oauth":
                if not options.get("token"):
                    raise ConfigError("snowflake profile: authenticator 'oauth' needs a 'token'")
                args["token"] = options["token"]
            args["authenticator"] = authenticator
        key = _private_key(options)
        if key is not None:
            args["private_key"] = key
            args.setdefault("authenticator", "SNOWFLAKE_JWT")
            args.pop("password", None)
        if options.get("query_tag"):
            args["session_parameters"] = {"QUERY_TAG": str(options["query_tag"])}
        return args

    def endpoint(self) -> tuple[str, int] | None:
        o = self.warehouse.options
        host = str(o.get("host") or f"{o.get('account') or 'local'}.snowflakecomputing.com")
        default = 80 if str(o.get("protocol") or "https").lower() == "http" else 443
        return host, int(o.get("port") or default)

    def _connect(self) -> Any:
        connector = self.require("snowflake.connector")
        if self._args is None:
            self._args = self.connect_args(self.warehouse.options)
        try:
            return self.retry(lambda: connector.connect(**self._args), attempts=3, backoff=0.5)
        except connector.errors.Error as exc:
            where = self.warehouse.options.get("host") or self.warehouse.options.get("account")
            raise UserError(f"cannot connect to Snowflake {where}: {self.redact(_first_line(exc))}") from None

    def open(self) -> None:
        if self.scripting is not None:
            return
        with self._probe_lock:
            if self.scripting is None:
                self.scripting = self._probe(self.session())
                # What the server lacks, this adapter does not claim (instance flags shadow the class's).
                self.supports_multi_statement = self.supports_swap = self.supports_clone = self.scripting

    def _probe(self, session: Session) -> bool:
        """Does the server run Snowflake Scripting? (Every Snowflake account does; emulators may not.)"""
        try:
            session.query("EXECUTE IMMEDIATE $$ BEGIN RETURN 1; END; $$")
            return True
        except Exception:  # noqa: BLE001 - any refusal means: send units statement by statement
            return False

    def new_session(self) -> Session:
        return SnowflakeSession(self._connect(), self)

    def set_timezone(self, session: Session, timezone: str | None) -> None:
        """The unit's requests carry TIMEZONE as a statement parameter (see the module doc): no request."""
        if isinstance(session, SnowflakeSession):
            session.timezone = timezone
        elif hasattr(session, "inner") and isinstance(session.inner, SnowflakeSession):
            session.inner.timezone = timezone  # --dry-run: its reads run in the unit's timezone too

    # -- writes -------------------------------------------------------------------------------------
    def swap(self, session: Session, staging: exp.Table, target: exp.Table, target_kind: str | None) -> None:
        """`ALTER TABLE target SWAP WITH staging`, then drop what was swapped out.

        DDL commits implicitly in Snowflake, so drop + rename cannot be one transaction; SWAP WITH
        exchanges the two tables in one metadata operation instead. A missing target (or a view in its
        place) has nothing to swap with: the staging table is renamed to it.
        """
        from sqlglot import exp

        if target_kind == "table" and self.supports_swap:
            session.execute(f"ALTER TABLE {self.render(target)} SWAP WITH {self.render(staging)}")
            session.execute(self.render(exp.Drop(tables=[staging.copy()], kind="TABLE", exists=True)))
            return
        if target_kind == "table":
            # An emulator without SWAP WITH (fakesnow): the shortest window it allows.
            session.execute(self.render(exp.Drop(tables=[target.copy()], kind="TABLE", exists=True)))
        elif target_kind == "view":
            session.execute(self.render(exp.Drop(tables=[target.copy()], kind="VIEW", exists=True)))
        session.execute(self.render(exp.Alter(this=staging.copy(), kind="TABLE",
                                              actions=[exp.AlterRename(this=target.copy())])))

    def load_seed(self, session: Session, path: Path, staging: exp.Table, column_types: dict[str, str]) -> int | None:
        """PUT the CSV on a temporary stage, create the staging table with the seed's types, COPY INTO it."""
        cols = _csv_columns(path, column_types)
        stage = f"{self.render(staging)}_stage"
        defs = ", ".join(f"{_ident(c)} {t}" for c, t in cols)
        session.execute(f"CREATE OR REPLACE TEMPORARY STAGE {stage}")
        session.execute(f"PUT 'file://{path.resolve().as_posix()}' @{stage} AUTO_COMPRESS=TRUE OVERWRITE=TRUE")
        session.execute(f"CREATE OR REPLACE TABLE {self.render(staging)} ({defs})")
        loaded = session.query(
            f"COPY INTO {self.render(staging)} FROM @{stage} FILE_FORMAT = (TYPE = CSV SKIP_HEADER = 1 "
            "FIELD_OPTIONALLY_ENCLOSED_BY = '\"' EMPTY_FIELD_AS_NULL = TRUE) ON_ERROR = ABORT_STATEMENT")
        # One result row per file: (file, status, rows_parsed, rows_loaded, ...).
        rows = sum(int(r[3] or 0) for r in loaded if len(r) > 3) if loaded else None
        return rows  # the temporary stage goes with the session

    # -- catalog ------------------------------------------------------------------------------------
    def _info_schema(self, relation_db: str | None) -> str:
        db = relation_db or self.warehouse.database
        return f"{db}.INFORMATION_SCHEMA" if db else "INFORMATION_SCHEMA"

    def relation_type(self, session: Session, relation: Relation) -> str | None:
        relation = self.relocated(relation)
        info = self._info_schema(relation.database)
        where = "WHERE UPPER(table_schema) = UPPER(%s) AND UPPER(table_name) = UPPER(%s)"
        key = (relation.schema or self.warehouse.schema, relation.identifier)
        # TABLES lists views too on Snowflake (TABLE_TYPE 'VIEW'); VIEWS as well, for servers that don't.
        rows = session.query(f"SELECT table_type FROM {info}.TABLES {where} UNION ALL "
                             f"SELECT 'VIEW' FROM {info}.VIEWS {where}", key + key)
        if not rows:
            return None
        return "view" if "VIEW" in str(rows[0][0]).upper() else "table"

    def columns(self, session: Session, relation: Relation) -> list[ColumnInfo]:
        relation = self.relocated(relation)
        rows = session.query(
            f"SELECT column_name, data_type, numeric_precision, numeric_scale FROM "
            f"{self._info_schema(relation.database)}.COLUMNS "
            "WHERE UPPER(table_schema) = UPPER(%s) AND UPPER(table_name) = UPPER(%s) ORDER BY ordinal_position",
            (relation.schema or self.warehouse.schema, relation.identifier))
        # DATA_TYPE says NUMBER / TEXT; precision and scale are separate columns.
        return [ColumnInfo(str(r[0]), f"NUMBER({r[2]},{r[3]})" if str(r[1]).upper() == "NUMBER" and r[2] is not None
                           else ("VARCHAR" if str(r[1]).upper() == "TEXT" else str(r[1]))) for r in rows]

    def query_columns(self, session: Session, select_sql: str) -> list[ColumnInfo]:
        """The query's result columns from the connector's describe-only request (nothing runs)."""
        real = getattr(session, "inner", session)  # a dry run describes through its real session
        if not isinstance(real, SnowflakeSession):
            return []
        real.count()
        meta = real.cur.describe(select_sql)
        return [ColumnInfo(m.name, _type_name(m)) for m in meta]

    def catalog(self, session: Session, schemas: Sequence[tuple[str | None, str]] = ()
                ) -> list[tuple[str, str, str, str, str]]:
        out: list[tuple[str, str, str, str, str]] = []
        dbs = sorted({d or self.warehouse.database or "" for d, _ in schemas}) or [self.warehouse.database or ""]
        for db in dbs:
            wanted = [s.upper() for d, s in schemas if (d or self.warehouse.database or "") == db]
            where = ""
            params: list[Any] = []
            if wanted:
                where = "WHERE UPPER(table_schema) IN (" + ", ".join(["%s"] * len(wanted)) + ")"
                params = wanted
            rows = session.query(
                f"SELECT table_catalog, table_schema, table_name, column_name, data_type FROM "
                f"{self._info_schema(db or None)}.COLUMNS {where} "
                "ORDER BY table_schema, table_name, ordinal_position", params)
            out.extend((str(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows)
        return out

    def checks_connection(self) -> Any:
        from sqlassets.adapters.base import ChecksConnection

        self.open()
        session = self.session()
        assert isinstance(session, SnowflakeSession)
        return ChecksConnection(self, session.conn)

    def relations(self, session: Session) -> set[tuple[str, str, str]]:
        db = self.warehouse.database or ""
        info = self._info_schema(None)
        rows = session.query(f"SELECT table_catalog, table_schema, table_name FROM {info}.TABLES UNION "
                             f"SELECT table_catalog, table_schema, table_name FROM {info}.VIEWS")
        out = {(str(d).lower(), str(s).lower(), str(t).lower()) for d, s, t in rows}
        out.add(("", "", db.lower()))
        return self.unrelocated(out)

    def clone_schema(self, session: Session, source: tuple[str | None, str], target: tuple[str | None, str]) -> None:
        """Zero-copy `CREATE OR REPLACE SCHEMA target CLONE source` (table by table where unsupported)."""
        src = ".".join(p for p in source if p)
        dst = ".".join(p for p in target if p)
        if self.supports_clone:
            session.execute(f"CREATE OR REPLACE SCHEMA {dst} CLONE {src}")
            return
        session.execute(f"DROP SCHEMA IF EXISTS {dst} CASCADE")
        session.execute(f"CREATE SCHEMA {dst}")
        rows = session.query(f"SELECT table_name FROM {self._info_schema(source[0])}.TABLES "
                             "WHERE UPPER(table_schema) = UPPER(%s) AND table_type = 'BASE TABLE'", (source[1],))
        for (name,) in rows:
            session.execute(f"CREATE TABLE {dst}.{name} CLONE {src}.{name}")

    def drop_schema(self, session: Session, target: tuple[str | None, str]) -> None:
        session.execute(f"DROP SCHEMA IF EXISTS {'.'.join(p for p in target if p)} CASCADE")

    # -- errors -------------------------------------------------------------------------------------
    def is_transient(self, exc: BaseException) -> bool:
        try:
            from snowflake.connector import errors
        except ImportError:
            return False
        if isinstance(exc, errors.ProgrammingError) and getattr(exc, "errno", None) not in _TRANSIENT_ERRNOS:
            return False
        if isinstance(exc, errors.Error):
            return getattr(exc, "errno", None) in _TRANSIENT_ERRNOS or bool(_TRANSIENT_TEXT.search(str(exc)))
        return False

    def normalize_type(self, type_name: str) -> str:
        t = type_name.upper().replace(" ", "").strip()
        if t in ("NUMBER", "INT", "INTEGER", "BIGINT", "SMALLINT", "TINYINT", "FIXED") or (
                t.startswith(("NUMBER(", "DECIMAL(")) and t.endswith(",0)")):
            return "BIGINT"
        if t in ("FLOAT", "DOUBLE", "REAL", "FLOAT8", "DOUBLE PRECISION"):
            return "DOUBLE"
        if t.startswith(("VARCHAR", "TEXT", "STRING", "CHAR")):
            return "VARCHAR"
        if t.startswith(("TIMESTAMP_NTZ", "DATETIME", "TIMESTAMP")) and "TZ" not in t.replace("NTZ", ""):
            return "TIMESTAMP"
        if t.startswith("NUMBER(") or t.startswith("DECIMAL("):
            return "DECIMAL" + t[t.index("("):]
        return t


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _ident(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) else '"' + name.replace('"', '""') + '"'


def _type_name(meta: Any) -> str:
    """A Snowflake type name from the connector's result metadata (type codes as in FIELD_ID_TO_NAME)."""
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    name = FIELD_ID_TO_NAME.get(meta.type_code, "TEXT")
    if name == "FIXED":
        scale = meta.scale or 0
        return "NUMBER(38,0)" if scale == 0 else f"NUMBER({meta.precision or 38},{scale})"
    if name == "REAL":
        return "FLOAT"
    if name == "TEXT":
        return "VARCHAR"
    return name


_DUCK_TO_SNOWFLAKE = {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "SMALLINT": "INTEGER", "TINYINT": "INTEGER",
                      "HUGEINT": "NUMBER(38,0)", "DOUBLE": "FLOAT", "FLOAT": "FLOAT", "BOOLEAN": "BOOLEAN",
                      "DATE": "DATE", "TIMESTAMP": "TIMESTAMP_NTZ", "TIME": "TIME", "VARCHAR": "VARCHAR"}


def _csv_columns(path: Path, column_types: dict[str, str]) -> list[tuple[str, str]]:
    """A seed's columns and Snowflake types: sniffed from the file (as dbt infers seed types), then
    `column_types` overrides."""
    import duckdb

    con = duckdb.connect()
    try:
        rows = con.execute("DESCRIBE SELECT * FROM read_csv(?, header = true, auto_detect = true)",
                           [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise UserError(f"seed {path}: cannot read the CSV ({_first_line(exc)})") from None
    finally:
        con.close()
    lower = {k.lower(): v for k, v in column_types.items()}
    return [(str(name), lower.get(str(name).lower()) or _DUCK_TO_SNOWFLAKE.get(str(typ).upper(), "VARCHAR"))
            for name, typ, *_ in rows]
