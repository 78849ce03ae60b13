"""`sqlassets state export` / `state import`: the whole run history as one portable JSON Lines file.

Format (version 1), UTF-8, one JSON object per line:

    {"format": "sqlassets-state", "version": 1, "schema_version": 2, "exported_at": "2026-11-30T12:00:00Z",
     "source": "sqlite", "counts": {"runs": 12, ...}}
    {"table": "backfills", "row": {"id": 1, "created_at": 1764500000.0, "requested": {"daily": ["2024-01-01"]}, ...}}
    {"table": "runs", "row": {...}}
    ...

The first line is the header; every other line is one row of one table, in the order backfills, runs,
steps, logs, materializations, check_results (ids kept, so references between rows hold). Columns that
the database stores as JSON text (run options, backfill requests, upstream versions, check observed /
expected / details) are real JSON values here. Times are epoch seconds. Leases are not exported: they
describe processes alive where the export was made. A file from an older schema imports into a newer
one (missing columns stay empty); a file from a newer one is refused.

Use it to move a local SQLite state to a shared PostgreSQL one, to back up a production state, or to
keep a production base that a CI gate compares against.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlassets.errors import UserError
from sqlassets.run.state.schema import JSON_COLUMNS, SCHEMA_VERSION, TARGET_TABLES
from sqlassets.run.state.store import StateStore, _Session

FORMAT = "sqlassets-state"
FORMAT_VERSION = 1
EXPORTED = ("backfills", "runs", "steps", "logs", "materializations", "check_results")
_ID_TABLES = ("backfills", "runs", "steps", "check_results")


def _rows(store: StateStore) -> Iterator[tuple[str, dict[str, Any]]]:
    for table in EXPORTED:
        json_cols = JSON_COLUMNS.get(table, ())
        for row in store.table_rows(table):
            for col in json_cols:
                key = row.get("id", f"{row.get('asset')}/{row.get('partition')}")
                row[col] = store._load_json(table, key, col, row.get(col))
            yield table, row


def export_state(store: StateStore, out: IO[str]) -> dict[str, int]:
    """Write the store to `out` (header first); returns rows per table."""
    counts = {t: store.count(t) for t in EXPORTED}
    header = {"format": FORMAT, "version": FORMAT_VERSION, "schema_version": store.schema_version,
              "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "source": store.dialect.name,
              "counts": counts}
    out.write(json.dumps(header, separators=(",", ":")) + "\n")
    for table, row in _rows(store):
        out.write(json.dumps({"table": table, "row": row}, separators=(",", ":"), default=str) + "\n")
    return counts


def export_to_path(store: StateStore, path: Path) -> dict[str, int]:
    """Export atomically (a temp file renamed into place), readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            counts = export_state(store, fh)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return counts


def _read(path: Path) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    where = str(path)
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the export ({exc.strerror}); pass a file made by `sqlassets state export`",
                        path=where) from None
    rows: list[tuple[str, dict[str, Any]]] = []
    with fh:
        header: dict[str, Any] | None = None
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise UserError(f"line {n} is not JSON ({exc.msg}); the file is damaged or not an export",
                                path=where) from None
            if header is None:
                if not isinstance(obj, dict) or obj.get("format") != FORMAT:
                    raise UserError("not a sqlassets state export (its first line has no "
                                    f"\"format\": \"{FORMAT}\")", path=where)
                if obj.get("version") != FORMAT_VERSION:
                    raise UserError(f"export format version {obj.get('version')!r} is not {FORMAT_VERSION}; use "
                                    "the sqlassets that wrote it", path=where)
                if not isinstance(obj.get("schema_version"), int) or obj["schema_version"] > SCHEMA_VERSION:
                    raise UserError(f"exported from state schema {obj.get('schema_version')!r}, newer than this "
                                    f"sqlassets ({SCHEMA_VERSION}); upgrade sqlassets", path=where)
                header = obj
                continue
            if not isinstance(obj, dict) or obj.get("table") not in EXPORTED or not isinstance(obj.get("row"), dict):
                raise UserError(f"line {n} is not a {{\"table\": ..., \"row\": {{...}}}} of a known table",
                                path=where)
            rows.append((obj["table"], obj["row"]))
    if header is None:
        raise UserError("the file is empty; pass a file made by `sqlassets state export`", path=where)
    return header, rows


def import_state(store: StateStore, path: Path) -> dict[str, int]:
    """Load an export into an empty store, in one transaction (all rows or none)."""
    header, rows = _read(path)
    present = {t: store.count(t) for t in ("runs", "materializations", "backfills", "check_results")}
    if any(present.values()):
        what = ", ".join(f"{n} {t}" for t, n in present.items() if n)
        raise UserError(f"the state at {store.location} already holds {what}; import into an empty state (a new "
                        "state_dir, or a new PostgreSQL schema), so no history is mixed or lost")
    columns: dict[str, list[str]] = {}
    counts: dict[str, int] = {t: 0 for t in EXPORTED}
    with store._tx() as c:
        for table, row in rows:
            cols = columns.get(table)
            if cols is None:
                cols = columns[table] = _columns(c, table)
            if "target" in cols and "target" not in row and table in TARGET_TABLES:
                row = {**row, "target": store.target}  # exported before state per target: this target's
            unknown = sorted(set(row) - set(cols))
            if unknown:
                raise UserError(f"{table} rows have column(s) {', '.join(unknown)} this sqlassets does not know",
                                path=str(path))
            values = {k: (json.dumps(v, separators=(",", ":")) if k in JSON_COLUMNS.get(table, ()) and v is not None
                          else v) for k, v in row.items()}
            names = list(values)
            c.execute(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                      [values[k] for k in names])
            counts[table] += 1
        expected = header.get("counts") or {}
        short = {t: f"{counts[t]} of {expected[t]}" for t in EXPORTED
                 if isinstance(expected.get(t), int) and expected[t] != counts[t]}
        if short:  # a truncated file: import nothing rather than part of a history
            raise UserError(f"the file holds fewer rows than its header says ({short}); it was cut short, "
                            "export again", path=str(path))
        if store.dialect.reset_ids:
            for table in _ID_TABLES:
                c.execute(store.dialect.reset_ids.format(table=table))
    return counts


def _columns(c: _Session, table: str) -> list[str]:
    cur = c.execute(f"SELECT * FROM {table} WHERE 1=0")
    try:
        return [d[0] for d in cur.description]
    finally:
        cur.fetchall()
