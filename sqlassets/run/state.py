"""The state store: one SQLite database (WAL) in the project's state dir.

It records what ran (runs, steps, logs), what each (asset, partition) holds (materializations), the
backfills users asked for, asset check results, and leases that keep two runs off one asset. SQLite in
WAL mode lets `status` read while a backfill writes, survives kill -9 (a transaction either landed or
did not), and costs ~0.1 ms per commit with `synchronous=NORMAL`.

Invariant: a partition is recorded done only after its data committed in the warehouse (and its
blocking checks passed); the executor calls `record_units` after the warehouse commit, never before.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError

if TYPE_CHECKING:
    from sqlassets.check_results import CheckResult

SCHEMA_VERSION = 1
DB_NAME = "state.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,                 -- materialize | backfill
    backfill_id INTEGER,
    status TEXT NOT NULL,               -- running | success | failed | interrupted | crashed
    started_at REAL NOT NULL,
    finished_at REAL,
    command TEXT,
    options TEXT,                       -- JSON
    pid INTEGER, host TEXT,
    planned INTEGER DEFAULT 0, done INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, skipped INTEGER DEFAULT 0
);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,            -- '' for unpartitioned assets
    batch INTEGER,                      -- partitions written by one statement share a batch number
    status TEXT NOT NULL,               -- done | failed | skipped | cancelled
    started_at REAL, finished_at REAL, duration REAL,
    rows INTEGER, attempts INTEGER DEFAULT 1,
    error TEXT
);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id);
CREATE TABLE IF NOT EXISTS materializations (
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,
    status TEXT NOT NULL,               -- done | failed (the last attempt)
    run_id INTEGER,
    code_version TEXT,
    upstream_versions TEXT,             -- JSON {upstream asset: latest materialized_at it read}
    rows INTEGER,
    duration REAL,
    materialized_at REAL,               -- the last successful write (NULL: never done)
    attempted_at REAL NOT NULL,
    error TEXT,
    PRIMARY KEY (asset, partition)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS backfills (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    status TEXT NOT NULL,               -- running | success | failed | interrupted
    selection TEXT,                     -- what the user typed (for display)
    requested TEXT NOT NULL,            -- JSON {asset: [partition keys]}
    options TEXT,                       -- JSON (concurrency, batch_size, mode...)
    total INTEGER NOT NULL,
    last_run_id INTEGER,
    updated_at REAL
);
CREATE TABLE IF NOT EXISTS leases (
    asset TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL,
    backfill_id INTEGER,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS logs (
    run_id INTEGER NOT NULL, ts REAL NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id);
CREATE TABLE IF NOT EXISTS check_results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER,
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,
    check_name TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    blocking INTEGER NOT NULL,
    column_name TEXT,
    observed TEXT, expected TEXT,       -- JSON
    message TEXT,
    source TEXT,
    details TEXT,                       -- JSON
    recorded_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS check_results_asset ON check_results(asset, partition, check_name);
CREATE INDEX IF NOT EXISTS check_results_run ON check_results(run_id);
"""


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


class LeaseConflict(UserError):
    """Another live run holds an asset this run wants to write."""


def _json(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


class StateStore:
    """Thread-safe wrapper over one SQLite connection (the executor writes from its coordinator thread)."""

    def __init__(self, state_dir: Path, *, readonly: bool = False) -> None:
        self.path = Path(state_dir) / DB_NAME
        if readonly and not self.path.exists():
            self._conn: sqlite3.Connection | None = None
            self._lock = threading.RLock()
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=30000")
        conn.row_factory = sqlite3.Row
        self._conn = conn
        self._lock = threading.RLock()
        if not readonly:
            self._migrate()
        self.host = socket.gethostname()

    @classmethod
    def for_history(cls, state_dir: Path) -> StateStore:
        """For `runs` / `backfill list`: may mark crashed runs in an existing database, never creates one."""
        return cls(state_dir, readonly=not (Path(state_dir) / DB_NAME).exists())

    @property
    def exists(self) -> bool:
        return self._conn is not None

    def _migrate(self) -> None:
        assert self._conn is not None
        with self._lock:
            version = None
            try:
                row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
                version = int(row[0]) if row else None
            except sqlite3.OperationalError:
                pass
            if version == SCHEMA_VERSION:
                return
            self._conn.executescript("BEGIN;" + _SCHEMA + "COMMIT;")
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _q(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        if self._conn is None:
            return []
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _tx(self):
        return _Tx(self)

    # -- runs -----------------------------------------------------------------------------------------
    def start_run(self, kind: str, *, command: str, options: dict[str, Any], backfill_id: int | None = None,
                  started_at: float | None = None) -> int:
        """Record a run as running. `started_at`: when the command began (planning and compiling count)."""
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO runs (kind, backfill_id, status, started_at, command, options, pid, host) "
                "VALUES (?, ?, 'running', ?, ?, ?, ?, ?)",
                (kind, backfill_id, started_at or time.time(), command, _json(options), os.getpid(), self.host))
            run_id = int(cur.lastrowid)
            if backfill_id is not None:
                c.execute("UPDATE backfills SET last_run_id=?, status='running', updated_at=? WHERE id=?",
                          (run_id, time.time(), backfill_id))
        return run_id

    def finish_run(self, run_id: int, status: str, *, planned: int, done: int, failed: int, skipped: int
                   ) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET status=?, finished_at=?, planned=?, done=?, failed=?, skipped=? WHERE id=?",
                      (status, time.time(), planned, done, failed, skipped, run_id))
            row = c.execute("SELECT backfill_id FROM runs WHERE id=?", (run_id,)).fetchone()
            if row and row[0] is not None:
                c.execute("UPDATE backfills SET status=?, updated_at=? WHERE id=?", (status, time.time(), row[0]))
            c.execute("DELETE FROM leases WHERE run_id=?", (run_id,))

    def reap_crashed(self) -> list[int]:
        """Mark runs whose process died (kill -9, power loss) as crashed and free their leases."""
        crashed: list[int] = []
        for row in self._q("SELECT id, pid, host, backfill_id FROM runs WHERE status='running'"):
            if row["host"] == self.host and not pid_alive(int(row["pid"])):
                crashed.append(int(row["id"]))
        if crashed:
            with self._tx() as c:
                for rid in crashed:
                    c.execute("UPDATE runs SET status='crashed', finished_at=? WHERE id=?", (time.time(), rid))
                    c.execute("UPDATE backfills SET status='crashed' WHERE last_run_id=? AND status='running'",
                              (rid,))
                    c.execute("DELETE FROM leases WHERE run_id=?", (rid,))
        return crashed

    def log(self, run_id: int, level: str, message: str) -> None:
        with self._tx() as c:
            c.execute("INSERT INTO logs VALUES (?, ?, ?, ?)", (run_id, time.time(), level, message))

    def runs(self, limit: int = 20) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM runs ORDER BY id DESC LIMIT ?", (limit,))]

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = self._q("SELECT * FROM runs WHERE id=?", (run_id,))
        return dict(rows[0]) if rows else None

    def steps(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM steps WHERE run_id=? ORDER BY id", (run_id,))]

    def logs(self, run_id: int) -> list[dict[str, Any]]:
        return [dict(r) for r in self._q("SELECT * FROM logs WHERE run_id=? ORDER BY ts", (run_id,))]

    # -- leases ---------------------------------------------------------------------------------------
    def acquire_leases(self, assets: Iterable[str], run_id: int, *, backfill_id: int | None = None,
                       wait: bool = False, poll: float = 0.25, on_wait: Any = None) -> bool:
        """Take every asset or none; a live holder makes this refuse (or, with wait, poll until it ends).

        Returns True when it had to wait (the caller re-plans: the other run may have done the work).
        """
        wanted = sorted(set(assets))
        announced = False
        while True:
            holders = self._try_leases(wanted, run_id, backfill_id)
            if not holders:
                return announced
            asset, holder = holders[0]
            what = f"backfill {holder['backfill_id']}" if holder["backfill_id"] is not None else f"run {holder['run_id']}"
            message = (f"asset '{asset}' is being written by {what} (pid {holder['pid']} on {holder['host']}); "
                       "wait for it to finish or pass --wait")
            if not wait:
                raise LeaseConflict(message)
            if not announced and on_wait is not None:
                on_wait(message.split(";")[0] + "; waiting")
                announced = True
            time.sleep(poll)

    def _try_leases(self, wanted: list[str], run_id: int, backfill_id: int | None
                    ) -> list[tuple[str, dict[str, Any]]]:
        assert self._conn is not None
        with self._lock:
            c = self._conn
            c.execute("BEGIN IMMEDIATE")
            try:
                conflicts: list[tuple[str, dict[str, Any]]] = []
                for asset in wanted:
                    row = c.execute("SELECT * FROM leases WHERE asset=?", (asset,)).fetchone()
                    if row is None or row["run_id"] == run_id:
                        continue
                    holder = dict(row)
                    if holder["host"] == self.host and not pid_alive(int(holder["pid"])):
                        continue  # a dead holder: take over
                    conflicts.append((asset, holder))
                if conflicts:
                    c.execute("ROLLBACK")
                    return conflicts
                now = time.time()
                c.executemany("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?)",
                              [(a, run_id, backfill_id, os.getpid(), self.host, now) for a in wanted])
                c.execute("COMMIT")
                return []
            except BaseException:
                c.execute("ROLLBACK")
                raise

    def discard_run(self, run_id: int, *, backfill_id: int | None, created_backfill: bool,
                    backfill_before: dict[str, Any] | None) -> None:
        """Undo `start_run` (and `create_backfill`) for a run that was refused before it did anything."""
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

    def release_leases(self, run_id: int) -> None:
        with self._tx() as c:
            c.execute("DELETE FROM leases WHERE run_id=?", (run_id,))

    # -- materializations -----------------------------------------------------------------------------
    def record_units(self, run_id: int, units: Sequence[UnitRecord], *, batch_no: int | None = None) -> None:
        """Steps and materialization state for units that just finished, in one SQLite transaction."""
        if not units:
            return
        with self._tx() as c:
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
                    "upstream_versions, rows, duration, materialized_at, attempted_at, error) "
                    "VALUES (?,?,'done',?,?,?,?,?,?,?,NULL) ON CONFLICT(asset, partition) DO UPDATE SET "
                    "status='done', run_id=excluded.run_id, code_version=excluded.code_version, "
                    "upstream_versions=excluded.upstream_versions, rows=excluded.rows, duration=excluded.duration, "
                    "materialized_at=excluded.materialized_at, attempted_at=excluded.attempted_at, error=NULL",
                    [(u.asset, u.partition, run_id, u.code_version,
                      _json(u.upstream_versions) if u.upstream_versions else None, u.rows,
                      u.finished_at - u.started_at, u.finished_at, u.finished_at) for u in done])
            failed = [u for u in units if u.status == "failed"]
            if failed:
                c.executemany(
                    "INSERT INTO materializations (asset, partition, status, run_id, attempted_at, error) "
                    "VALUES (?,?,'failed',?,?,?) ON CONFLICT(asset, partition) DO UPDATE SET status='failed', "
                    "run_id=excluded.run_id, attempted_at=excluded.attempted_at, error=excluded.error",
                    [(u.asset, u.partition, run_id, u.finished_at, u.error) for u in failed])

    def materializations(self, asset: str) -> dict[str, Materialization]:
        rows = self._q("SELECT asset, partition, status, run_id, code_version, rows, materialized_at, "
                       "attempted_at, error FROM materializations WHERE asset=?", (asset,))
        return {r["partition"]: Materialization(*r) for r in rows}

    def all_materializations(self, assets: Iterable[str] | None = None) -> dict[str, dict[str, Materialization]]:
        out: dict[str, dict[str, Materialization]] = {}
        wanted = set(assets) if assets is not None else None
        for r in self._q("SELECT asset, partition, status, run_id, code_version, rows, materialized_at, "
                         "attempted_at, error FROM materializations"):
            if wanted is None or r["asset"] in wanted:
                out.setdefault(r["asset"], {})[r["partition"]] = Materialization(*r)
        return out

    def forget_asset(self, asset: str) -> None:
        """--full-refresh: the table is about to be dropped, so nothing of it counts as done any more."""
        with self._tx() as c:
            c.execute("DELETE FROM materializations WHERE asset=?", (asset,))

    # -- backfills ------------------------------------------------------------------------------------
    def create_backfill(self, selection: str, requested: dict[str, list[str]], options: dict[str, Any]) -> int:
        total = sum(len(v) for v in requested.values())
        with self._tx() as c:
            cur = c.execute("INSERT INTO backfills (created_at, status, selection, requested, options, total, "
                            "updated_at) VALUES (?, 'running', ?, ?, ?, ?, ?)",
                            (time.time(), selection, _json(requested), _json(options), total, time.time()))
            return int(cur.lastrowid)

    def backfill(self, backfill_id: int) -> dict[str, Any] | None:
        rows = self._q("SELECT * FROM backfills WHERE id=?", (backfill_id,))
        if not rows:
            return None
        bf = dict(rows[0])
        bf["requested"] = json.loads(bf["requested"])
        bf["options"] = json.loads(bf["options"] or "{}")
        return bf

    def backfills(self, limit: int = 50) -> list[dict[str, Any]]:
        out = []
        for r in self._q("SELECT * FROM backfills ORDER BY id DESC LIMIT ?", (limit,)):
            bf = dict(r)
            bf["requested"] = json.loads(bf["requested"])
            bf["options"] = json.loads(bf["options"] or "{}")
            out.append(bf)
        return out

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

    # -- check results (issue 5 writes and reads these) ------------------------------------------------
    def record_check_results(self, run_id: int | None, results: Sequence[CheckResult]) -> None:
        if not results:
            return
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO check_results (run_id, asset, partition, check_name, status, severity, blocking, "
                "column_name, observed, expected, message, source, details, recorded_at) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [(run_id, r.asset, r.partition or "", r.check, r.status, r.severity, int(r.blocking), r.column,
                  _json(r.observed), _json(r.expected), r.message, r.source, _json(r.details or {}), now)
                 for r in results])

    def latest_check_results(self, assets: Iterable[str] | None = None, *, run_id: int | None = None
                             ) -> list[CheckResult]:
        """The newest result per (asset, partition, check); or every result of one run."""
        from sqlassets.check_results import CheckResult

        if run_id is not None:
            rows = self._q("SELECT * FROM check_results WHERE run_id=? ORDER BY id", (run_id,))
        else:
            rows = self._q(
                "SELECT * FROM check_results WHERE id IN (SELECT max(id) FROM check_results "
                "GROUP BY asset, partition, check_name) ORDER BY asset, partition, check_name")
        wanted = set(assets) if assets is not None else None
        out = []
        for r in rows:
            if wanted is not None and r["asset"] not in wanted:
                continue
            out.append(CheckResult(
                asset=r["asset"], check=r["check_name"], status=r["status"], severity=r["severity"],
                partition=r["partition"] or None, column=r["column_name"], observed=json.loads(r["observed"]),
                expected=json.loads(r["expected"]), message=r["message"] or "", source=r["source"] or "",
                details=json.loads(r["details"] or "{}")))
        return out


class _Tx:
    """`with store._tx() as conn:` — one IMMEDIATE transaction under the store's lock."""

    def __init__(self, store: StateStore) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        self.store._lock.acquire()
        conn = self.store._conn
        if conn is None:
            self.store._lock.release()
            raise RuntimeError("state store is closed")
        conn.execute("BEGIN IMMEDIATE")
        return conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        conn = self.store._conn
        try:
            if conn is not None:
                conn.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.store._lock.release()
