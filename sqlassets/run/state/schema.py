"""The state schema and its migrations, shared by every backend.

Each migration is a list of statements with `{id}` / `{float}` / `{bigint}` / `{without_rowid}` type
placeholders (see `dialects`). The applied versions live in the `schema_migrations` table; a database
whose version is newer than `SCHEMA_VERSION` is refused, never rewritten, so an older sqlassets cannot
damage what a newer one wrote. (Version 1 databases recorded their version in `meta` only.)
"""

from __future__ import annotations

SCHEMA_VERSION = 3

_V1 = [
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)",
    """CREATE TABLE IF NOT EXISTS runs (
    id {id},
    kind TEXT NOT NULL,                 -- materialize | backfill | check
    backfill_id {bigint},
    status TEXT NOT NULL,               -- running | success | failed | interrupted | crashed
    started_at {float} NOT NULL,
    finished_at {float},
    command TEXT,
    options TEXT,                       -- JSON
    pid {bigint}, host TEXT,
    planned {bigint} DEFAULT 0, done {bigint} DEFAULT 0, failed {bigint} DEFAULT 0, skipped {bigint} DEFAULT 0
)""",
    """CREATE TABLE IF NOT EXISTS steps (
    id {id},
    run_id {bigint} NOT NULL,
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,            -- '' for unpartitioned assets
    batch {bigint},                     -- partitions written by one statement share a batch number
    status TEXT NOT NULL,               -- done | failed | skipped | cancelled
    started_at {float}, finished_at {float}, duration {float},
    rows {bigint}, attempts {bigint} DEFAULT 1,
    error TEXT
)""",
    "CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id)",
    """CREATE TABLE IF NOT EXISTS materializations (
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,
    status TEXT NOT NULL,               -- done | failed (the last attempt)
    run_id {bigint},
    code_version TEXT,
    upstream_versions TEXT,             -- JSON {{upstream asset: latest materialized_at it read}}
    rows {bigint},
    duration {float},
    materialized_at {float},            -- the last successful write (NULL: never done)
    attempted_at {float} NOT NULL,
    error TEXT,
    PRIMARY KEY (asset, partition)
){without_rowid}""",
    """CREATE TABLE IF NOT EXISTS backfills (
    id {id},
    created_at {float} NOT NULL,
    status TEXT NOT NULL,               -- running | success | failed | interrupted | crashed
    selection TEXT,                     -- what the user typed (for display)
    requested TEXT NOT NULL,            -- JSON {{asset: [partition keys]}}
    options TEXT,                       -- JSON (concurrency, batch_size, mode...)
    total {bigint} NOT NULL,
    last_run_id {bigint},
    updated_at {float}
)""",
    """CREATE TABLE IF NOT EXISTS leases (
    asset TEXT PRIMARY KEY,
    run_id {bigint} NOT NULL,
    backfill_id {bigint},
    pid {bigint} NOT NULL,
    host TEXT NOT NULL,
    acquired_at {float} NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS logs (
    run_id {bigint} NOT NULL, ts {float} NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS logs_run ON logs(run_id)",
    """CREATE TABLE IF NOT EXISTS check_results (
    id {id},
    run_id {bigint},
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,
    check_name TEXT NOT NULL,
    status TEXT NOT NULL,
    severity TEXT NOT NULL,
    blocking {bigint} NOT NULL,
    column_name TEXT,
    observed TEXT, expected TEXT,       -- JSON
    message TEXT,
    source TEXT,
    details TEXT,                       -- JSON
    recorded_at {float} NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS check_results_asset ON check_results(asset, partition, check_name)",
    "CREATE INDEX IF NOT EXISTS check_results_run ON check_results(run_id)",
]

# Version 2: leases and runs carry a heartbeat and an expiry (database clock), and the identity of the
# process namespace that holds them, so a lease is taken over once it expires whatever host or PID held it.
_V2 = [
    "ALTER TABLE leases ADD COLUMN host_id TEXT",
    "ALTER TABLE leases ADD COLUMN heartbeat_at {float}",
    "ALTER TABLE leases ADD COLUMN expires_at {float}",
    "ALTER TABLE runs ADD COLUMN host_id TEXT",
    "ALTER TABLE runs ADD COLUMN heartbeat_at {float}",
    "ALTER TABLE runs ADD COLUMN expires_at {float}",
]

# Version 3: state per target. `target` names where a target writes (`config.target_key`: warehouse,
# account / file, database, schema), so `--target dev` and `--target prod` keep their own partition
# records, backfills, check results and leases, while two targets writing the same relations share
# them. Keys change, so materializations and leases are rebuilt (SQLite cannot alter a primary key);
# existing rows get target '' and `StateStore.migrate` hands them to the target that migrates.
_V3 = [
    """CREATE TABLE materializations_v3 (
    target TEXT NOT NULL DEFAULT '',
    asset TEXT NOT NULL,
    partition TEXT NOT NULL,
    status TEXT NOT NULL,
    run_id {bigint},
    code_version TEXT,
    upstream_versions TEXT,
    rows {bigint},
    duration {float},
    materialized_at {float},
    attempted_at {float} NOT NULL,
    error TEXT,
    PRIMARY KEY (target, asset, partition)
){without_rowid}""",
    "INSERT INTO materializations_v3 (target, asset, partition, status, run_id, code_version, upstream_versions, "
    "rows, duration, materialized_at, attempted_at, error) SELECT '', asset, partition, status, run_id, "
    "code_version, upstream_versions, rows, duration, materialized_at, attempted_at, error FROM materializations",
    "DROP TABLE materializations",
    "ALTER TABLE materializations_v3 RENAME TO materializations",
    """CREATE TABLE leases_v3 (
    target TEXT NOT NULL DEFAULT '',
    asset TEXT NOT NULL,
    run_id {bigint} NOT NULL,
    backfill_id {bigint},
    pid {bigint} NOT NULL,
    host TEXT NOT NULL,
    acquired_at {float} NOT NULL,
    host_id TEXT,
    heartbeat_at {float},
    expires_at {float},
    PRIMARY KEY (target, asset)
)""",
    "INSERT INTO leases_v3 (target, asset, run_id, backfill_id, pid, host, acquired_at, host_id, heartbeat_at, "
    "expires_at) SELECT '', asset, run_id, backfill_id, pid, host, acquired_at, host_id, heartbeat_at, expires_at "
    "FROM leases",
    "DROP TABLE leases",
    "ALTER TABLE leases_v3 RENAME TO leases",
    "ALTER TABLE runs ADD COLUMN target TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE backfills ADD COLUMN target TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE check_results ADD COLUMN target TEXT NOT NULL DEFAULT ''",
]
#: tables whose rows belong to one target (the migration to version 3 hands legacy rows to one)
TARGET_TABLES = ("materializations", "leases", "runs", "backfills", "check_results")

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_migrations (
    version {bigint} PRIMARY KEY, description TEXT NOT NULL, applied_at {float} NOT NULL
)"""

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "runs, steps, materializations, backfills, leases, logs, check results", _V1),
    (2, "lease and run heartbeats with expiry", _V2),
    (3, "state per target", _V3),
]
assert MIGRATIONS[-1][0] == SCHEMA_VERSION

# The tables a sqlassets state database holds (and `state export` writes, but leases: they describe live
# processes, not history), with their JSON-encoded columns.
TABLES = ("meta", "runs", "steps", "materializations", "backfills", "leases", "logs", "check_results",
          "schema_migrations")
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "runs": ("options",),
    "materializations": ("upstream_versions",),
    "backfills": ("requested", "options"),
    "check_results": ("observed", "expected", "details"),
}
