"""Bad state databases for the bad-input corpus (tests/test_bad_input.py): each must give one `error:` line
naming the state file and what to do, exit 2, no traceback, and leave the project (state file included)
exactly as it was. The states are written by the real store, then damaged."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from conftest import copy_fixture

from sqlassets.run.state import StateStore, UnitRecord

STATUS = ["status"]


def _project(tmp: Path) -> tuple[Path, Path]:
    root = copy_fixture("sql_only", tmp / "proj")
    return root, root / ".sqlassets" / "state.db"


def _real_state(state_dir: Path, partitions: int = 3000) -> None:
    from sqlassets.project import load_project
    from sqlassets.run.state.config import target_key

    with StateStore(state_dir, target=target_key(load_project(state_dir.parent))) as st:
        run = st.start_run("backfill", command="x", options={})
        t = time.time()
        st.record_units(run, [UnitRecord("daily_revenue", f"2020-01-01+{i}", "done", t, t + 1, rows=i)
                              for i in range(partitions)])
        st.create_backfill("daily_revenue", {"daily_revenue": ["2024-01-01"]}, {})
        st.finish_run(run, "success", planned=1, done=1, failed=0, skipped=0)


def state_db_not_a_database(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    db.parent.mkdir()
    db.write_bytes(b"this is not SQLite at all\n" * 100)
    return Case(root, STATUS, (str(db), "move it aside"))


def state_db_truncated(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    _real_state(db.parent)
    os.truncate(db, db.stat().st_size // 2)
    return Case(root, STATUS, (str(db), "malformed", "move it aside"), reads_wal_state=True)


def state_db_is_a_directory(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    db.mkdir(parents=True)
    return Case(root, ["materialize", "-s", "orders_clean"], (str(db), "is a directory"))


def state_db_of_another_application(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    db.parent.mkdir()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    con.commit()
    con.close()
    return Case(root, ["materialize", "-s", "orders_clean"], (str(db), "not a sqlassets state database",
                                                               "invoices"))


def state_db_missing_a_column(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    _real_state(db.parent, partitions=3)
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE materializations DROP COLUMN code_version")
    con.commit()
    con.close()
    return Case(root, STATUS, (str(db), "code_version"), reads_wal_state=True)


def state_db_bad_json_row(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    _real_state(db.parent, partitions=3)
    con = sqlite3.connect(db)
    con.execute("UPDATE backfills SET requested = '{\"daily_revenue\": [' WHERE id = 1")
    con.commit()
    con.close()
    return Case(root, ["backfill", "list"], (str(db), "backfills row 1", "requested"), reads_wal_state=True)


def state_schema_newer_than_code(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, db = _project(tmp)
    _real_state(db.parent, partitions=3)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    con.commit()
    con.close()
    return Case(root, ["materialize", "-s", "orders_clean"], (str(db), "schema version 99", "upgrade sqlassets"), reads_wal_state=True)


def state_url_written_in_settings(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, _ = _project(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nstate: {url: 'postgresql://u:secret@h/db'}\n")
    return Case(root, ["list"], ("sqlassets.yml", "environment variable"))


def state_url_env_var_unset(tmp: Path, shop: Path):
    from test_bad_input import Case

    root, _ = _project(tmp)
    (root / "sqlassets.yml").write_text(
        "sql_paths: [sql]\nstate: {url: \"{{ env_var('SQLASSETS_TEST_UNSET_STATE_URL') }}\"}\n")
    return Case(root, STATUS, ("sqlassets.yml", "SQLASSETS_TEST_UNSET_STATE_URL", "export it"))


STATE_CASES = [
    state_db_not_a_database, state_db_truncated, state_db_is_a_directory, state_db_of_another_application,
    state_db_missing_a_column, state_db_bad_json_row, state_schema_newer_than_code, state_url_written_in_settings,
    state_url_env_var_unset,
]
