"""PostgreSQL backend: one state shared by every machine of a team (CI, laptops, a scheduler).

The URL comes from an environment variable (sqlassets.yml holds `{{ env_var('...') }}`), is never
written anywhere (not in the state, logs or error messages: those show it without its password), and
psycopg 3 is imported only when a project uses it. Tables live in their own schema (`sqlassets` by
default), so the state can share a database with other things.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlassets.errors import UserError
from sqlassets.run.state.dialects import POSTGRESQL, Dialect

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def redact(url: str) -> str:
    """postgresql://user:secret@host/db -> postgresql://user:***@host/db (for messages and `state info`)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql://***"
    netloc = parts.netloc
    if "@" in netloc:
        cred, host = netloc.rsplit("@", 1)
        if ":" in cred:
            cred = cred.split(":", 1)[0] + ":***"
        netloc = f"{cred}@{host}"
    query = re.sub(r"(?i)(password=)[^&]*", r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:
        raise UserError("a PostgreSQL state store needs psycopg 3: pip install 'sqlassets[postgres]'") from exc
    return psycopg


class PostgresBackend:
    dialect: Dialect = POSTGRESQL
    kind = "postgresql"

    def __init__(self, url: str, schema: str = "sqlassets") -> None:
        if not _IDENT.match(schema):
            raise UserError(f"state schema {schema!r} is not a plain identifier (letters, digits, _)")
        self._url = url
        self.schema = schema
        self.location = f"{redact(url)} (schema {schema})"
        psycopg = _psycopg()
        from psycopg import errors as pe

        self.user_errors: tuple[type[BaseException], ...] = (
            psycopg.OperationalError, psycopg.InterfaceError, psycopg.DataError, pe.UndefinedTable,
            pe.UndefinedColumn, pe.InsufficientPrivilege, pe.InvalidSchemaName, pe.ReadOnlySqlTransaction)
        self.bug_errors: tuple[type[BaseException], ...] = ()

    def exists(self) -> bool:
        return True  # a server is there or connecting says why; an empty schema reads as no history

    def problem(self) -> str | None:
        return None

    def connect(self) -> Any:
        psycopg = _psycopg()
        conn = psycopg.connect(self._url, autocommit=True, connect_timeout=10, application_name="sqlassets")
        try:
            conn.execute(f'SET search_path TO "{self.schema}"')
        except BaseException:
            conn.close()
            raise
        return conn

    def ready(self, conn: Any, *, writable: bool) -> None:
        """(Nothing to set up after the schema check.)"""

    def table_names(self, conn: Any) -> set[str]:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                            (self.schema,)).fetchall()
        return {r[0] for r in rows}

    def create_namespace(self, conn: Any) -> None:
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')

    def describe(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split()) or type(exc).__name__
        secret = urlsplit(self._url).password
        if secret:
            text = text.replace(secret, "***")
        return f"the PostgreSQL state store cannot be used ({text}); check the server and the state url"
