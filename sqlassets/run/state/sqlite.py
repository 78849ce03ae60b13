"""SQLite backend: one `state.db` (WAL) in the project's state dir, the default for one machine.

WAL lets `status` read while a backfill writes, survives kill -9 (a transaction either landed or did
not), and costs ~0.1 ms per commit with `synchronous=NORMAL`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlassets.run.state.dialects import SQLITE, Dialect

DB_NAME = "state.db"


class SQLiteBackend:
    dialect: Dialect = SQLITE
    kind = "sqlite"
    # Errors that mean "this file is not a usable state database" (corrupt, truncated, a directory, a
    # wrong schema, locked for too long), as opposed to a bug in our SQL (sqlite3.ProgrammingError).
    user_errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError, sqlite3.DatabaseError)
    bug_errors: tuple[type[BaseException], ...] = (sqlite3.ProgrammingError, sqlite3.InterfaceError)

    def __init__(self, state_dir: Path) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.location = str(self.path)

    def exists(self) -> bool:
        return self.path.exists() or self.path.is_symlink()

    def problem(self) -> str | None:
        """Why the file cannot be opened at all (before SQLite gives a vaguer reason), or None."""
        if self.path.is_dir():
            return "is a directory, not a state database; remove or rename it"
        if self.path.parent.exists() and not self.path.parent.is_dir():
            return f"the state dir {self.path.parent} is a file, not a folder; fix state_dir in sqlassets.yml"
        return None

    def connect(self) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    def ready(self, conn: Any, *, writable: bool) -> None:
        """After the schema check: switch a database we will write to WAL (never someone else's file)."""
        if writable:
            conn.execute("PRAGMA journal_mode=WAL")

    def table_names(self, conn: Any) -> set[str]:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall()
                if r[0] != "sqlite_sequence"}

    def create_namespace(self, conn: Any) -> None:
        """(PostgreSQL keeps the tables in a schema of their own; a SQLite file is its own namespace.)"""

    def describe(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        if "locked" in text:
            return (f"state database is locked by another process ({text}); wait for it, or see which "
                    "runs are live with `sqlassets runs`")
        if "readonly" in text or "unable to open database file" in text:
            # Most often a read-only project or state dir, not a damaged file.
            return (f"cannot open the state database for writing ({text}); if its folder is read-only, make "
                    "the state dir writable or point state_dir in sqlassets.yml at a writable folder; if the "
                    "file is damaged, move it aside and run again")
        return (f"the state database cannot be read ({text}); move it aside and run again (the warehouse "
                "keeps its data; partitions not recorded are rebuilt), or restore one with "
                "`sqlassets state import`")
