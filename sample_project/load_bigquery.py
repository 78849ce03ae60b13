"""Load the sample's raw events into the `bigquery` target: `<project>.raw.events`.

The events are made by `generate_data.py` (deterministic, in DuckDB), written to a CSV and loaded with
one BigQuery load job (WRITE_TRUNCATE, an explicit schema), through the same client sqlassets uses (the
`bigquery` output of profiles.yml: the local emulator by default, `make bqemu`; see the README).

    .venv/bin/python sample_project/load_bigquery.py [--rows-per-day N] [--start D] [--end D] [--target bigquery]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent

# DuckDB column types of raw.events -> BigQuery types.
_TYPES = {"BIGINT": "INT64", "INTEGER": "INT64", "TIMESTAMP": "TIMESTAMP", "VARCHAR": "STRING", "DATE": "DATE",
          "DOUBLE": "FLOAT64", "BOOLEAN": "BOOL"}


def load(target: str = "bigquery", rows_per_day: int = 1100, *, start: date | None = None, end: date | None = None
         ) -> int:
    import duckdb

    sys.path.insert(0, str(HERE))
    from generate_data import generate

    from sqlassets.adapters.base import adapter_for
    from sqlassets.model import Relation
    from sqlassets.project import load_project

    project = load_project(HERE, target=target)
    wh = project.warehouse
    if wh.type != "bigquery":
        raise SystemExit(f"error: target {target!r} is a {wh.type} warehouse, not bigquery")
    span = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    with tempfile.TemporaryDirectory() as tmp:
        duck = Path(tmp) / "events.duckdb"
        generate(duck, rows_per_day, **span)
        csv = Path(tmp) / "events.csv"
        con = duckdb.connect(str(duck))
        try:
            described = con.execute("DESCRIBE raw.events").fetchall()
            # Timestamps as 'YYYY-MM-DD HH:MM:SS[.ffffff]' (a load job reads them as UTC).
            con.execute(f"COPY raw.events TO '{csv.as_posix()}' (HEADER, DELIMITER ',', TIMESTAMPFORMAT "
                        "'%Y-%m-%d %H:%M:%S.%f')")
        finally:
            con.close()
        types = {str(name): _TYPES.get(str(t).upper(), str(t).replace("DECIMAL", "NUMERIC"))
                 for name, t, *_ in described}
        adapter = adapter_for(wh)
        try:
            adapter.open()
            session = adapter.session()
            events = Relation(adapter.project, "raw", "events")
            adapter.ensure_schema(session, events)
            rows = adapter.load_seed(session, csv, adapter.table(events), types)
        finally:
            adapter.close()
    return int(rows or 0)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="bigquery", help="profiles.yml output to load into (default bigquery)")
    parser.add_argument("--rows-per-day", type=int, default=1100, help="base events per day (default 1100)")
    parser.add_argument("--start", type=_date, help="first day (default 2024-01-01)")
    parser.add_argument("--end", type=_date, help="last day, inclusive (default 2024-12-31)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = load(args.target, args.rows_per_day, start=args.start, end=args.end)
    print(f"raw.events: {rows:,} rows loaded into the {args.target} target in {time.perf_counter() - started:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
