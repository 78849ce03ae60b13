"""The state store: what ran (runs, steps, logs), what each (asset, partition) holds (materializations),
the backfills users asked for, asset check results, and leases that keep two runs off one asset.

One interface over two small backends (`sqlite`: a file in the state dir; `postgres`: a server shared by
a team). The SQL is written once; what differs lives in `dialects`. Both give the same guarantees: each
write is one transaction, leases are taken all-or-none under one lock (SQLite's write lock, a
PostgreSQL advisory lock) and expire unless their run renews them, and the schema is versioned.

Invariant: a partition is recorded done only after its data committed in the warehouse (and its
blocking checks passed); the executor calls `record_units` after the warehouse commit, never before.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError
from sqlassets.run.state.leases import DEFAULT_TTL, Heartbeat, holder_gone, host_id, pid_alive
from sqlassets.run.state.schema import (
    JSON_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    TABLES,
    TARGET_TABLES,
    VERSION_TABLE,
)
from sqlassets.run.state.sqlite import DB_NAME, SQLiteBackend

if TYPE_CHECKING:
    from sqlassets.check_results import CheckResult
    from sqlassets.run.state.dialects import Dialect

__all__ = ["DB_NAME", "SCHEMA_VERSION", "LeaseConflict", "LeaseLost", "Materialization", "StateError",
           "StateStore", "UnitRecord", "pid_alive"]


@dataclass(frozen=True)
class Materialization:
    asset: str
    partition: str
    status: str
    run_id: int | None
    code_version: str | None
    rows: int | None
    materialized_at: float | None
    attempted_at: float
    error: str | None

    @property
    def done(self) -> bool:
        return self.status == "done" and self.materialized_at is not None


@dataclass(frozen=True)
class UnitRecord:
    """One (asset, partition) outcome the executor hands to `record_units`."""

    asset: str
    partition: str
    status: str  # done | failed | skipped | cancelled
    started_at: float
    finished_at: float
    rows: int | None = None
    attempts: int = 1
    error: str | None = None
    code_version: str | None = None
    upstream_versions: dict[str, float] | None = None
    batch: int | None = None


class StateError(UserError):
    """The state database cannot be used as it is (corrupt, not ours, too new, unreachable)."""


class LeaseConflict(UserError):
    """Another live run holds an asset this run wants to write."""


class LeaseLost(UserError):
    """This run's lease expired (no heartbeat got through) and another run took the asset over."""


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


class _Session:
    """A raw DB-API connection that speaks the store's `?` SQL in its backend's dialect."""

    __slots__ = ("raw", "d")

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.d = dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(self.d.sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        cur = self.raw.cursor()
        try:
            cur.executemany(self.d.sql(sql), [tuple(r) for r in rows])
        finally:
            cur.close()

    def now(self) -> float:
        return float(self.raw.execute(f"SELECT {self.d.now}").fetchone()[0])


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class StateStore:
    """Thread-safe store over one connection (the executor writes from its coordinator thread).

    `StateStore(state_dir)` is the SQLite store of a state dir; `open_state(project)` picks the backend
    the project configures. `readonly` never creates, migrates or writes anything; `create=False` may
    write to an existing state but never creates one (an empty PostgreSQL schema stays empty).
    """

    def __init__(self, state_dir: Path | None = None, *, readonly: bool = False, backend: Any = None,
                 lease_ttl: float = DEFAULT_TTL, create: bool = True, target: str | None = None) -> None:
        if backend is None:
            if state_dir is None:
                raise TypeError("StateStore needs a state_dir or a backend")
            backend = SQLiteBackend(Path(state_dir))
        self.backend = backend
        self.dialect: Dialect = backend.dialect
        self.location: str = backend.location
        self.path = getattr(backend, "path", None)
        self.readonly = readonly
        # Where this target writes (`config.target_key`): partition records, backfills, check results
        # and leases are this target's own. None (a store opened on a folder, without a project): reads
        # see every target's rows, writes go under ''.
        self.scope = target
        self.target = target or ""
        self.lease_ttl = float(lease_ttl)
        self.host = socket.gethostname()
        self.host_id = host_id()
        self._lock = threading.RLock()
        self._s: _Session | None = None
        self._held: dict[int, set[str]] = {}  # run id -> assets it leases (renewed by its heartbeat)
        self._beats: dict[int, Heartbeat] = {}
        self.schema_version = 0
        self._create = create
        if readonly and not backend.exists():
            return
        problem = backend.problem()
        if problem:
            raise StateError(problem, path=self.location)
        with self._errors():
            raw = backend.connect()
        self._s = _Session(raw, self.dialect)
        try:
            with self._errors():
                self._open_schema()
                backend.ready(raw, writable=not readonly)
                if not self.readonly and self.scope and self.schema_version >= 3:
                    self._adopt_legacy()
        except BaseException:
            self.close()
            raise

    @classmethod
    def for_history(cls, state_dir: Path) -> StateStore:
        """For `runs` / `backfill list`: may mark crashed runs in an existing database, never creates one."""
        return cls(state_dir, readonly=not (Path(state_dir) / DB_NAME).exists())

    @property
    def exists(self) -> bool:
        return self._s is not None and self.schema_version > 0

    # -- errors ---------------------------------------------------------------------------------------
    def _errors(self) -> _ErrorGuard:
        return _ErrorGuard(self)

    def _bad_row(self, table: str, key: Any, column: str, exc: Exception) -> StateError:
        return StateError(f"{table} row {key} has a bad JSON {column} ({exc}); fix or delete that row, or "
                          "restore the state with `sqlassets state import`", path=self.location)

    def _load_json(self, table: str, key: Any, column: str, text: str | None, default: Any = None) -> Any:
        if text is None:
            return default
        try:
            return json.loads(text)
        except ValueError as exc:
            raise self._bad_row(table, key, column, exc) from None

    # -- schema ---------------------------------------------------------------------------------------
    def _read_version(self, tables: set[str]) -> int:
        assert self._s is not None
        if "schema_migrations" in tables:
            row = self._s.execute("SELECT max(version) FROM schema_migrations").fetchone()
            if row and row[0] is not None:
                return int(row[0])
        if "meta" in tables:
            row = self._s.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if row:
                try:
                    return int(row[0])
                except (TypeError, ValueError):
                    raise StateError(f"schema_version {row[0]!r} in its meta table is not a number; the "
                                     "file is not a sqlassets state database: move it aside",
                                     path=self.location) from None
        others = sorted(tables - {"schema_migrations"})
        if others:
            raise StateError(f"not a sqlassets state database (it has tables {', '.join(others[:5])} "
                             "but no schema version); point state_dir elsewhere or move the file aside",
                             path=self.location)
        return 0

    def _open_schema(self) -> None:
        assert self._s is not None
        version = self._read_version(self.backend.table_names(self._s.raw))
        if version > SCHEMA_VERSION:
            raise StateError(f"state schema version {version} is newer than this sqlassets understands "
                             f"({SCHEMA_VERSION}); upgrade sqlassets (the state is left as it is)",
                             path=self.location)
        self.schema_version = version
        if version == 0 and not self._create:
            self.readonly = True
        if version < SCHEMA_VERSION and not self.readonly:
            if self.dialect.name != "sqlite" and version > 0:
                raise StateError(f"state schema version {version} is older than this sqlassets "
                                 f"({SCHEMA_VERSION}); run `sqlassets state migrate` once (every machine "
                                 "sharing this state then needs this version)", path=self.location)
            self.migrate()

    def migrate(self) -> tuple[int, int]:
        """Apply the migrations this database lacks, each in its own transaction; returns (from, to)."""
        assert self._s is not None
        s = self._s
        with self._lock:
            start = self.schema_version
            s.execute(self.dialect.begin_write)
            try:
                if self.dialect.serialize:
                    s.execute(self.dialect.serialize)
                self.backend.create_namespace(s.raw)
                tables = self.backend.table_names(s.raw)
                version = self._read_version(tables)  # again, under the lock: another process may have won
                s.execute(self.dialect.ddl(VERSION_TABLE))
                if version > SCHEMA_VERSION:
                    raise StateError(f"state schema version {version} is newer than this sqlassets "
                                     f"({SCHEMA_VERSION}); upgrade sqlassets", path=self.location)
                start = version
                for number, description, statements in MIGRATIONS:
                    if number <= version:
                        continue
                    for stmt in statements:
                        s.execute(self.dialect.ddl(stmt))
                    s.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                              (number, description, time.time()))
                if version >= 1 and "schema_migrations" not in tables:
                    # a version-1 database from before the version table: record what it already had
                    s.execute("INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
                              (1, MIGRATIONS[0][1], time.time()))
                s.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO "
                          "UPDATE SET value = excluded.value", (str(SCHEMA_VERSION),))
                if self.scope and SCHEMA_VERSION >= 3:
                    self._claim_legacy(s)
                s.execute("COMMIT")
            except BaseException:
                s.execute("ROLLBACK")
                raise
            self.schema_version = SCHEMA_VERSION
        return start, SCHEMA_VERSION

    def _adopt_legacy(self) -> None:
        """Records from before state per target (target '') go to the first target that opens the state
        for writing (or runs `state migrate`): one look at `meta` per open once that has happened."""
        assert self._s is not None
        s = self._s
        if s.execute("SELECT 1 FROM meta WHERE key='legacy_target'").fetchone():
            return
        with self._lock:
            s.execute(self.dialect.begin_write)
            try:
                if self.dialect.serialize:
                    s.execute(self.dialect.serialize)
                self._claim_legacy(s)
                s.execute("COMMIT")
            except BaseException:
                s.execute("ROLLBACK")
                raise

    def _claim_legacy(self, s: _Session) -> None:
        if s.execute("SELECT 1 FROM meta WHERE key='legacy_target'").fetchone():
            return
        for table in TARGET_TABLES:
            s.execute(f"UPDATE {table} SET target=? WHERE target=''", (self.target,))
        s.execute("INSERT INTO meta (key, value) VALUES ('legacy_target', ?)", (self.target,))

    def close(self) -> None:
        for beat in list(self._beats.values()):
            beat.stop()
        self._beats.clear()
        if self._s is not None:
            try:
                self._s.raw.close()
            finally:
                self._s = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if self._s is None or self.schema_version == 0:
            return []
        with self._lock, self._errors():
            return self._s.execute(sql, params).fetchall()

    def _qd(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        if self._s is None or self.schema_version == 0:
            return []
        with self._lock, self._errors():
            return _dicts(self._s.execute(sql, params))

    def _where_target(self, glue: str = " AND") -> tuple[str, tuple[Any, ...]]:
        """SQL and params limiting a read to this target's rows (a read-only look at a state from before
        version 3 has no targets: everything is shown, as that version did)."""
        if self.schema_version < 3 or self.scope is None:
            return "", ()
        return f"{glue} target=?", (self.target,)

    def _tx(self) -> _Tx:
        if self.readonly:
            raise RuntimeError("state store opened read-only")
        return _Tx(self)

    # -- runs -----------------------------------------------------------------------------------------
    def start_run(self, kind: str, *, command: str, options: dict[str, Any], backfill_id: int | None = None,
                  started_at: float | None = None) -> int:
        """Record a run as running. `started_at`: when the command began (planning and compiling count)."""
        with self._tx() as c:
            now = c.now()
            run_id = int(c.execute(
                "INSERT INTO runs (kind, backfill_id, status, started_at, command, options, pid, host, host_id, "
                "heartbeat_at, expires_at, target) VALUES (?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (kind, backfill_id, started_at or time.time(), command, _json(options), os.getpid(), self.host,
                 self.host_id,
                 now, now + self.lease_ttl, self.target)).fetchone()[0])
            if backfill_id is not None:
                c.execute("UPDATE backfills SET last_run_id=?, status='running', updated_at=? WHERE id=?",
                          (run_id, time.time(), backfill_id))
        self._start_heartbeat(run_id)
        return run_id

    def finish_run(self, run_id: int, status: str, *, planned: int, done: int, failed: int, skipped: int
                   ) -> None:
        self._stop_heartbeat(run_id)
        with self._tx() as c:
            c.execute("UPDATE runs SET status=?, finished_at=?, planned=?, done=?, failed=?, skipped=?, "
                      "expires_at=NULL WHERE id=?",
                      (status, time.time(), planned, done, failed, skipped, run_id))
            row = c.execute("SELECT backfill_id FROM runs WHERE id=?", (run_id,)).fetchone()
            if row and row[0] is not None:
                c.execute("UPDATE backfills SET status=?, updated_at=? WHERE id=?", (status, time.time(), row[0]))
            c.execute("DELETE FROM leases WHERE run_id=?", (run_id,))
        self._held.pop(run_id, None)

    def reap_crashed(self) -> list[int]:
        """Mark runs that stopped without finishing as crashed and free their leases.

        A run is gone when its heartbeat expired (any host), or at once when it ran in this host's PID
        namespace and its process is gone (kill -9, power loss).
        """
        if self._s is None or self.schema_version == 0:
            return []
        crashed: list[int] = []
        with self._lock, self._errors():
            now = self._s.now()
            rows = _dicts(self._s.execute("SELECT id, pid, host, host_id, expires_at FROM runs "
                                          "WHERE status='running'"))
        for row in rows:
            if int(row["id"]) in self._beats:
                continue  # our own live run
            if holder_gone(row, now, self.host):
                crashed.append(int(row["id"]))
        if crashed:
            with self._tx() as c:
                for rid in crashed:
                    # only if it is still running and not renewed meanwhile
                    c.execute("UPDATE runs SET status='crashed', finished_at=? WHERE id=? AND status='running'",
                              (time.time(), rid))
                    c.execute("UPDATE backfills SET status='crashed' WHERE last_run_id=? AND status='running'",
                              (rid,))
                    c.execute("DELETE FROM leases WHERE run_id=?", (rid,))
        return crashed

    def log(self, run_id: int, level: str, message: str) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO logs (run_id, ts, level, message) VALUES (?, ?, ?, ?)",
                      (run_id, time.time(), level, message))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return self._qd("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._qd("SELECT * FROM runs WHERE id=?", (run_id,))
        return rows[0] if rows else None

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        return self._qd("SELECT * FROM steps WHERE run_id=? ORDER BY id", (run_id,))

    def logs(self, run_id: int) -> list[dict[str, Any]]:
        return self._qd("SELECT * FROM logs WHERE run_id=? ORDER BY ts", (run_id,))

    # -- heartbeats -----------------------------------------------------------------------------------
    def _start_heartbeat(self, run_id: int) -> None:
        if run_id in self._beats:
            return
        own: list[_Session] = []
        warned: list[bool] = []

        def renew() -> None:
            if not own:
                own.append(_Session(self.backend.connect(), self.dialect))
            self._renew(own[0], run_id)

        def on_error(exc: BaseException) -> None:
            if own:  # a broken connection: open a new one next beat
                try:
                    own.pop().raw.close()
                except Exception:
                    pass
            if not warned:
                warned.append(True)
                import sys

                print(f"warning: cannot renew run {run_id}'s leases in {self.location}: "
                      f"{' '.join(str(exc).split())[:200]}; retrying", file=sys.stderr)

        beat = Heartbeat(renew, self.lease_ttl, on_error)
        beat.closer = own  # type: ignore[attr-defined]
        self._beats[run_id] = beat
        beat.start()

    def _stop_heartbeat(self, run_id: int) -> None:
        beat = self._beats.pop(run_id, None)
        if beat is not None:
            beat.stop()
            for s in getattr(beat, "closer", []):
                try:
                    s.raw.close()
                except Exception:
                    pass

    def _renew(self, s: _Session, run_id: int) -> None:
        s.execute(self.dialect.begin_write)
        try:
            now = s.now()
            s.execute("UPDATE runs SET heartbeat_at=?, expires_at=? WHERE id=? AND status='running'",
                      (now, now + self.lease_ttl, run_id))
            s.execute("UPDATE leases SET heartbeat_at=?, expires_at=? WHERE run_id=?",
                      (now, now + self.lease_ttl, run_id))
            s.execute("COMMIT")
        except BaseException:
            s.execute("ROLLBACK")
            raise

    def renew(self, run_id: int) -> None:
        """Renew a run's row and leases now (the heartbeat thread does this every ttl/3)."""
        assert self._s is not None
        with self._lock, self._errors():
            self._renew(self._s, run_id)

    # -- leases ---------------------------------------------------------------------------------------
    def acquire_leases(self, assets: Iterable[str], run_id: int, *, backfill_id: int | None = None,
                       wait: bool = False, poll: float = 0.25, on_wait: Any = None) -> bool:
        """Take every asset or none; a live holder makes this refuse (or, with wait, poll until it ends
        or its lease expires). `on_wait` gets one-line messages for the user (waiting, taking over).

        Returns True when it had to wait (the caller re-plans: the other run may have done the work).
        """
        wanted = sorted(set(assets))
        announced = False
        while True:
            holders, taken = self._try_leases(wanted, run_id, backfill_id)
            for asset, holder, why in taken:
                note = (f"took over the lease on '{asset}' from run {holder['run_id']} (pid {holder['pid']} on "
                        f"{holder['host']}): {why}")
                self.log(run_id, "warning", note)
                if on_wait is not None:
                    on_wait(f"note: {note}")
            if not holders:
                return announced
            asset, holder, now = holders[0]
            what = f"backfill {holder['backfill_id']}" if holder["backfill_id"] is not None else f"run {holder['run_id']}"
            expiry = ""
            if holder.get("expires_at") is not None:
                expiry = f", lease expires in {max(holder['expires_at'] - now, 0):.0f} s unless renewed"
            message = (f"asset '{asset}' is being written by {what} (pid {holder['pid']} on {holder['host']}"
                       f"{expiry}); wait for it to finish or pass --wait (if that run is gone for good: "
                       f"`sqlassets unlock {asset}`)")
            if not wait:
                raise LeaseConflict(message)
            if not announced and on_wait is not None:
                on_wait(message.split(";")[0] + "; waiting")
                announced = True
            time.sleep(poll)

    def _try_leases(self, wanted: list[str], run_id: int, backfill_id: int | None
                    ) -> tuple[list[tuple[str, dict[str, Any], float]], list[tuple[str, dict[str, Any], str]]]:
        taken: list[tuple[str, dict[str, Any], str]] = []
        with self._tx() as c:
            if self.dialect.serialize:
                c.execute(self.dialect.serialize)
            now = c.now()
            conflicts: list[tuple[str, dict[str, Any], float]] = []
            for asset in wanted:
                rows = _dicts(c.execute("SELECT * FROM leases WHERE asset=? AND target=?", (asset, self.target)))
                if not rows or rows[0]["run_id"] == run_id:
                    continue
                holder = rows[0]
                why = holder_gone(holder, now, self.host)
                if why:
                    taken.append((asset, holder, why))
                    continue
                conflicts.append((asset, holder, now))
            if conflicts:
                return conflicts, []
            c.executemany(
                "INSERT INTO leases (asset, run_id, backfill_id, pid, host, acquired_at, host_id, heartbeat_at, "
                "expires_at, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (target, asset) DO UPDATE SET "
                "run_id=excluded.run_id, backfill_id=excluded.backfill_id, pid=excluded.pid, host=excluded.host, "
                "acquired_at=excluded.acquired_at, host_id=excluded.host_id, heartbeat_at=excluded.heartbeat_at, "
                "expires_at=excluded.expires_at",
                [(a, run_id, backfill_id, os.getpid(), self.host, now, self.host_id, now, now + self.lease_ttl,
                  self.target) for a in wanted])
            for holder in {int(h["run_id"]): h for _, h, _ in taken}.values():
                c.execute("UPDATE runs SET status='crashed', finished_at=? WHERE id=? AND status='running'",
                          (time.time(), holder["run_id"]))
        self._held.setdefault(run_id, set()).update(wanted)
        return [], taken

    def discard_run(self, run_id: int, *, backfill_id: int | None, created_backfill: bool,
                    backfill_before: dict[str, Any] | None) -> None:
        """Undo `start_run` (and `create_backfill`) for a run that was refused before it did anything."""
        self._stop_heartbeat(run_id)
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM logs WHERE run_id=?", (run_id,))
            c.execute("DELETE FROM runs WHERE id=?", (run_id,))
            if backfill_id is not None and created_backfill:
                c.execute("DELETE FROM backfills WHERE id=?", (backfill_id,))
            elif backfill_id is not None and backfill_before is not None:
                c.execute("UPDATE backfills SET status=?, last_run_id=?, updated_at=? WHERE id=?",
                          (backfill_before["status"], backfill_before.get("last_run_id"),
                           backfill_before.get("updated_at"), backfill_id))
        self._held.pop(run_id, None)

    def write_mark(self) -> int:
        """A point in the state's write history (the last step id: one sequence for every machine, no clocks)."""
        rows = self._q("SELECT COALESCE(max(id), 0) FROM steps")
        return int(rows[0][0]) if rows else 0

    def written_since(self, mark: int, assets: Iterable[str]) -> bool:
        """Did any run record a step for these assets after `mark`? (planned, then another run finished them)"""
        wanted = sorted(set(assets))
        for i in range(0, len(wanted), 500):
            chunk = wanted[i:i + 500]
            if self._q(f"SELECT 1 FROM steps WHERE id > ? AND asset IN ({', '.join('?' * len(chunk))}) LIMIT 1",
                       (mark, *chunk)):
                return True
        return False

    def release_leases(self, run_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE run_id=?", (run_id,))
        self._held.pop(run_id, None)

    def leases(self) -> list[dict[str, Any]]:
        """Every lease with its holder and, for display, the database's clock as `now`."""
        if self._s is None or self.schema_version == 0:
            return []
        with self._lock, self._errors():
            now = self._s.now()
            rows = _dicts(self._s.execute("SELECT * FROM leases ORDER BY asset"))
        for r in rows:
            r["now"] = now
        return rows

    def unlock(self, *, asset: str | None = None, run_id: int | None = None) -> list[dict[str, Any]]:
        """Clear leases by hand (`sqlassets unlock`): one asset's, or every lease of one run.

        A still-running holder whose lease is cleared finds out at its next state write (LeaseLost) and
        stops; a holder that was gone is marked crashed.
        """
        with self._tx() as c:
            if self.dialect.serialize:
                c.execute(self.dialect.serialize)
            if asset is not None:
                rows = _dicts(c.execute("SELECT * FROM leases WHERE asset=? AND target=?", (asset, self.target)))
            else:
                rows = _dicts(c.execute("SELECT * FROM leases WHERE run_id=?", (run_id,)))
            now = c.now()
            for r in rows:
                c.execute("DELETE FROM leases WHERE asset=? AND target=?", (r["asset"], r["target"]))
            for rid in {int(r["run_id"]) for r in rows} | ({run_id} if run_id is not None else set()):
                run = _dicts(c.execute("SELECT id, pid, host, host_id, expires_at FROM runs "
                                       "WHERE id=? AND status='running'", (rid,)))
                if run and holder_gone(run[0], now, self.host):
                    c.execute("UPDATE runs SET status='crashed', finished_at=? WHERE id=?", (time.time(), rid))
        return rows

    def _check_held(self, c: _Session, run_id: int) -> None:
        """Refuse to record a run whose leases were taken over (expired, or cleared by `unlock`)."""
        held = self._held.get(run_id)
        if not held:
            return
        mine = {r[0] for r in c.execute("SELECT asset FROM leases WHERE run_id=?", (run_id,)).fetchall()}
        lost = sorted(held - mine)
        if lost:
            other = c.execute("SELECT run_id FROM leases WHERE asset=? AND target=?", (lost[0], self.target)).fetchone()
            by = f"run {other[0]} holds it now" if other else "it was cleared (sqlassets unlock)"
            raise LeaseLost(f"run {run_id} lost its lease on '{lost[0]}' ({by}): its heartbeat did not get "
                            "through for longer than the lease time; this run stops, and the partitions it "
                            "wrote since its last state write are rebuilt by the next run",
                            path=self.location)

    # -- materializations -----------------------------------------------------------------------------
    def record_units(self, run_id: int, units: Sequence[UnitRecord], *, batch_no: int | None = None) -> None:
        """Steps and materialization state for units that just finished, in one transaction."""
        if not units:
            return
        with self._tx() as c:
            self._check_held(c, run_id)
            c.executemany(
                "INSERT INTO steps (run_id, asset, partition, batch, status, started_at, finished_at, duration, "
                "rows, attempts, error) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [(run_id, u.asset, u.partition, u.batch if u.batch is not None else batch_no, u.status,
                  u.started_at, u.finished_at, u.finished_at - u.started_at, u.rows, u.attempts, u.error)
                 for u in units])
            done = [u for u in units if u.status == "done"]
            if done:
                c.executemany(
                    "INSERT INTO materializations (asset, partition, status, run_id, code_version, "
                    "upstream_versions, rows, duration, materialized_at, attempted_at, error, target) "
                    "VALUES (?,?,'done',?,?,?,?,?,?,?,NULL,?) ON CONFLICT(target, asset, partition) DO UPDATE SET "
                    "status='done', run_id=excluded.run_id, code_version=excluded.code_version, "
                    "upstream_versions=excluded.upstream_versions, rows=excluded.rows, duration=excluded.duration, "
                    "materialized_at=excluded.materialized_at, attempted_at=excluded.attempted_at, error=NULL",
                    [(u.asset, u.partition, run_id, u.code_version,
                      _json(u.upstream_versions) if u.upstream_versions else None, u.rows,
                      u.finished_at - u.started_at, u.finished_at, u.finished_at, self.target) for u in done])
            failed = [u for u in units if u.status == "failed"]
            if failed:
                c.executemany(
                    "INSERT INTO materializations (asset, partition, status, run_id, attempted_at, error, target) "
                    "VALUES (?,?,'failed',?,?,?,?) ON CONFLICT(target, asset, partition) DO UPDATE SET "
                    "status='failed', run_id=excluded.run_id, attempted_at=excluded.attempted_at, error=excluded.error",
                    [(u.asset, u.partition, run_id, u.finished_at, u.error, self.target) for u in failed])

    _MAT_COLS = "asset, partition, status, run_id, code_version, rows, materialized_at, attempted_at, error"

    def materializations(self, asset: str) -> dict[str, Materialization]:
        where, params = self._where_target()
        rows = self._q(f"SELECT {self._MAT_COLS} FROM materializations WHERE asset=?{where}", (asset, *params))
        return {r[1]: Materialization(*r) for r in rows}

    def all_materializations(self, assets: Iterable[str] | None = None) -> dict[str, dict[str, Materialization]]:
        out: dict[str, dict[str, Materialization]] = {}
        wanted = set(assets) if assets is not None else None
        where, params = self._where_target(" WHERE")
        for r in self._q(f"SELECT {self._MAT_COLS} FROM materializations{where}", params):
            if wanted is None or r[0] in wanted:
                out.setdefault(r[0], {})[r[1]] = Materialization(*r)
        return out

    def forget_asset(self, asset: str) -> None:
        """--full-refresh: the table is about to be dropped, so nothing of it counts as done any more."""
        with self._tx() as c:
            c.execute("DELETE FROM materializations WHERE asset=? AND target=?", (asset, self.target))

    # -- backfills ------------------------------------------------------------------------------------
    def create_backfill(self, selection: str, requested: dict[str, list[str]], options: dict[str, Any]) -> int:
        total = sum(len(v) for v in requested.values())
        with self._tx() as c:
            return int(c.execute(
                "INSERT INTO backfills (created_at, status, selection, requested, options, total, updated_at, target) "
                "VALUES (?, 'running', ?, ?, ?, ?, ?, ?) RETURNING id",
                (time.time(), selection, _json(requested), _json(options), total, time.time(),
                 self.target)).fetchone()[0])

    def _backfill_row(self, row: dict[str, Any]) -> dict[str, Any]:
        row["requested"] = self._load_json("backfills", row["id"], "requested", row["requested"], {})
        row["options"] = self._load_json("backfills", row["id"], "options", row["options"], {}) or {}
        if not isinstance(row["requested"], dict):
            raise self._bad_row("backfills", row["id"], "requested", ValueError("not an object"))
        return row

    def backfill(self, backfill_id: int) -> dict[str, Any] | None:
        rows = self._qd("SELECT * FROM backfills WHERE id=?", (backfill_id,))
        return self._backfill_row(rows[0]) if rows else None

    def backfills(self, limit: int = 50) -> list[dict[str, Any]]:
        """This target's backfills, newest first."""
        where, params = self._where_target(" WHERE")
        return [self._backfill_row(r) for r in
                self._qd(f"SELECT * FROM backfills{where} ORDER BY id DESC LIMIT ?", (*params, limit))]

    def backfill_outstanding(self, bf: dict[str, Any]) -> dict[str, list[str]]:
        """Requested partitions this backfill has not written yet, per asset.

        A partition counts as written only if it was materialized after the backfill was created: a
        `--stale` or `--all` backfill requests partitions that were done before it started, and resuming
        it must still rebuild the ones it did not reach.
        """
        since = float(bf["created_at"])
        out: dict[str, list[str]] = {}
        for asset, keys in bf["requested"].items():
            mats = self.materializations(asset)
            left = [k for k in keys if not ((m := mats.get(k)) is not None and m.done
                                            and m.materialized_at is not None and m.materialized_at >= since)]
            if left:
                out[asset] = left
        return out

    def backfill_progress(self, bf: dict[str, Any]) -> dict[str, int]:
        """Requested partitions done / failed by this backfill (computed, so it is never out of step).

        Only writes and attempts made since the backfill was created count (see `backfill_outstanding`).
        """
        since = float(bf["created_at"])
        done = failed = 0
        for asset, keys in bf["requested"].items():
            mats = self.materializations(asset)
            for k in keys:
                m = mats.get(k)
                if m is None:
                    continue
                if m.done and m.materialized_at is not None and m.materialized_at >= since:
                    done += 1
                elif m.status == "failed" and m.attempted_at >= since:
                    failed += 1
        return {"total": bf["total"], "done": done, "failed": failed, "missing": bf["total"] - done - failed}

    # -- check results --------------------------------------------------------------------------------
    def record_check_results(self, run_id: int | None, results: Sequence[CheckResult]) -> None:
        if not results:
            return
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO check_results (run_id, asset, partition, check_name, status, severity, blocking, "
                "column_name, observed, expected, message, source, details, recorded_at, target) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(run_id, r.asset, r.partition or "", r.check, r.status, r.severity, int(r.blocking), r.column,
                  _json(r.observed), _json(r.expected), r.message, r.source, _json(r.details or {}), now,
                  self.target) for r in results])

    def latest_check_results(self, assets: Iterable[str] | None = None, *, run_id: int | None = None
                             ) -> list[CheckResult]:
        """The newest result per (asset, partition, check); or every result of one run."""
        from sqlassets.check_results import CheckResult

        if run_id is not None:
            rows = self._qd("SELECT * FROM check_results WHERE run_id=? ORDER BY id", (run_id,))
        else:
            where, params = self._where_target(" WHERE")
            rows = self._qd(
                f"SELECT * FROM check_results WHERE id IN (SELECT max(id) FROM check_results{where} "
                "GROUP BY asset, partition, check_name) ORDER BY asset, partition, check_name", params)
        wanted = set(assets) if assets is not None else None
        out = []
        for r in rows:
            if wanted is not None and r["asset"] not in wanted:
                continue
            j = {col: self._load_json("check_results", r["id"], col, r[col]) for col in JSON_COLUMNS["check_results"]}
            out.append(CheckResult(
                asset=r["asset"], check=r["check_name"], status=r["status"], severity=r["severity"],
                partition=r["partition"] or None, column=r["column_name"], observed=j["observed"],
                expected=j["expected"], message=r["message"] or "", source=r["source"] or "",
                details=j["details"] or {}))
        return out

    # -- whole-table access for `state export` / `state import` and `state info` -----------------------
    def table_rows(self, table: str) -> Iterable[dict[str, Any]]:
        assert table in TABLES
        order = "id" if table in ("runs", "steps", "backfills", "check_results") else \
            ("run_id, ts" if table == "logs" else ("target, asset, partition" if table == "materializations" else "1"))
        return self._qd(f"SELECT * FROM {table} ORDER BY {order}")

    def count(self, table: str) -> int:
        assert table in TABLES
        rows = self._q(f"SELECT count(*) FROM {table}")
        return int(rows[0][0]) if rows else 0


class _ErrorGuard:
    """Turns a backend's "this database cannot be used" errors into one-line StateErrors."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: object) -> bool:
        if exc is None or isinstance(exc, UserError):
            return False
        b = self.store.backend
        if isinstance(exc, b.user_errors) and not isinstance(exc, b.bug_errors):
            raise StateError(b.describe(exc), path=self.store.location) from exc
        return False


class _Tx:
    """`with store._tx() as s:` — one write transaction under the store's lock (errors made one line)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.guard = _ErrorGuard(store)

    def __enter__(self) -> _Session:
        self.store._lock.acquire()
        s = self.store._s
        if s is None:
            self.store._lock.release()
            raise RuntimeError("state store is closed")
        try:
            with self.guard:
                s.execute(self.store.dialect.begin_write)
        except BaseException:
            self.store._lock.release()
            raise
        return s

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: object) -> bool:
        s = self.store._s
        try:
            with self.guard:
                if s is not None:
                    if exc_type is None:
                        s.execute("COMMIT")
                    else:
                        try:
                            s.execute("ROLLBACK")
                        except Exception:
                            pass
            if exc is not None:
                return self.guard.__exit__(exc_type, exc, tb)
            return False
        finally:
            self.store._lock.release()
