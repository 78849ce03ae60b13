"""Load the sample's raw events into the `snowflake` target: `<database>.raw.events`.

The events are made by `generate_data.py` (deterministic, in DuckDB), written to a CSV, uploaded to a
temporary stage and loaded with COPY INTO, through the same Snowflake connection sqlassets uses (the
`snowflake` output of profiles.yml: a local fakesnow server by default, see the README).

    .venv/bin/python sample_project/load_snowflake.py [--rows-per-day N] [--target snowflake]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# DuckDB column types of raw.events -> Snowflake types.
_TYPES = {"BIGINT": "NUMBER(38,0)", "INTEGER": "NUMBER(38,0)", "TIMESTAMP": "TIMESTAMP_NTZ", "VARCHAR": "VARCHAR",
          "DATE": "DATE", "DOUBLE": "FLOAT", "BOOLEAN": "BOOLEAN"}


def load(target: str = "snowflake", rows_per_day: int = 1100) -> int:
    import duckdb

    sys.path.insert(0, str(HERE))
    from generate_data import generate

    from sqlassets.adapters.base import adapter_for
    from sqlassets.model import Relation
    from sqlassets.project import load_project

    project = load_project(HERE, target=target)
    wh = project.warehouse
    if wh.type != "snowflake":
        raise SystemExit(f"error: target {target!r} is a {wh.type} warehouse, not snowflake")
    with tempfile.TemporaryDirectory() as tmp:
        duck = Path(tmp) / "events.duckdb"
        generate(duck, rows_per_day)
        csv = Path(tmp) / "events.csv"
        con = duckdb.connect(str(duck))
        try:
            described = con.execute("DESCRIBE raw.events").fetchall()
            con.execute(f"COPY raw.events TO '{csv.as_posix()}' (HEADER, DELIMITER ',')")
        finally:
            con.close()
        types = {str(name): _TYPES.get(str(t).upper(), str(t).replace("DECIMAL", "NUMBER")) for name, t, *_ in described}
        adapter = adapter_for(wh)
        try:
            adapter.open()
            session = adapter.session()
            local = str(wh.options.get("host", "")).startswith(("localhost", "127."))
            if local:  # a fake server starts empty; a real account's database exists already
                session.execute(f"CREATE DATABASE IF NOT EXISTS {wh.database}")
            events = Relation(wh.database, "raw", "events")
            adapter.ensure_schema(session, events)
            rows = adapter.load_seed(session, csv, adapter.table(events), types)
        finally:
            adapter.close()
    return int(rows or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="snowflake", help="profiles.yml output to load into (default snowflake)")
    parser.add_argument("--rows-per-day", type=int, default=1100, help="base events per day (default 1100)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = load(args.target, args.rows_per_day)
    print(f"raw.events: {rows:,} rows loaded into the {args.target} target in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
