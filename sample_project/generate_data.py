"""Deterministic synthetic shop events for the sample project: `raw.events` in the project's DuckDB file.

The events are generated inside DuckDB (one `range()` per day, hash-based pseudo-randomness keyed on the event
id and a fixed seed), so a year of ~400k rows takes a fraction of a second and every run writes exactly the same
rows. Customer, product and channel ids are taken from the seed CSVs in `seeds/`, so relationships tests hold:
a customer only appears after their signup date, amounts are the product's list price times quantity less a
discount, views carry no amount.

Only `raw.events` is dropped and recreated; every other schema in the file (the dbt models in `main`,
snapshots, sqlassets state) is left alone, so re-running the generator is safe.

    .venv/bin/python sample_project/generate_data.py [--rows-per-day N] [--path FILE] [--start D] [--end D]

or, from Python, `generate(path, rows_per_day=...)`.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PATH = HERE / "data" / "warehouse.duckdb"
SEEDS = HERE / "seeds"
DEFAULT_ROWS_PER_DAY = 1100
DEFAULT_START = date(2024, 1, 1)
DEFAULT_END = date(2024, 12, 31)  # inclusive
DEFAULT_SEED = 42
MAX_ROWS_PER_DAY = 500_000  # event ids are day_index * 1e6 + n; busy days get up to ~1.7x the base rate

# $seed, $rows_per_day, $start, $end are bound as prepared-statement parameters.
_EVENTS_SQL = """
CREATE OR REPLACE TABLE raw.events AS
WITH days AS (
    SELECT CAST(d AS DATE) AS day,
           CAST(row_number() OVER (ORDER BY d) - 1 AS BIGINT) AS day_idx
    FROM range(CAST($start AS TIMESTAMP), CAST($end AS TIMESTAMP) + INTERVAL 1 DAY, INTERVAL 1 DAY) AS t(d)
),
day_sizes AS (
    -- weekends are busier, Jan/Feb and August are quiet, Black Friday to Christmas is the peak
    SELECT day, day_idx,
           CAST(round($rows_per_day
                * CASE WHEN isodow(day) IN (6, 7) THEN 1.20 ELSE 0.92 END
                * CASE WHEN month(day) IN (1, 2) THEN 0.85
                       WHEN month(day) = 8 THEN 0.90
                       WHEN day BETWEEN make_date(year(day), 11, 25) AND make_date(year(day), 12, 22) THEN 1.45
                       ELSE 1.0 END) AS BIGINT) AS n_events
    FROM days
),
slots AS (
    SELECT day, day_idx, unnest(range(n_events)) AS n FROM day_sizes
),
customers_active AS (
    -- a quarter of the customers churn at some point in the period and never come back
    SELECT customer_id, signup_date,
           CASE WHEN hash(customer_id, $seed, 'churn') % 100 < 25
                THEN CAST($start AS DATE) + CAST(hash(customer_id, $seed, 'churn_day')
                                                  % (CAST($end AS DATE) - CAST($start AS DATE) + 1) AS INTEGER)
           END AS churn_date
    FROM _seed_customers
),
eligible AS (
    -- who can cause an event on a day: signed up by then and not churned, ranked oldest sign-up first
    SELECT d.day, c.customer_id,
           CAST(row_number() OVER (PARTITION BY d.day ORDER BY c.signup_date, c.customer_id) - 1 AS BIGINT)
               AS signup_rank,
           count(*) OVER (PARTITION BY d.day) AS n_customers
    FROM days AS d
    JOIN customers_active AS c
      ON c.signup_date <= d.day AND (c.churn_date IS NULL OR c.churn_date > d.day)
),
eligible_counts AS (
    SELECT day, max(n_customers) AS n_customers FROM eligible GROUP BY day
),
products_shuffled AS (
    SELECT product_id, unit_price,
           CAST(row_number() OVER (ORDER BY hash(product_id, $seed)) - 1 AS BIGINT) AS popularity_rank
    FROM _seed_products
),
draws AS (
    SELECT s.day,
           s.day_idx * 1000000 + s.n + 1 AS event_id,
           (hash(s.day_idx * 1000000 + s.n + 1, $seed, 1) % 1000003) / 1000003.0 AS u_customer,
           (hash(s.day_idx * 1000000 + s.n + 1, $seed, 2) % 1000003) / 1000003.0 AS u_product,
           (hash(s.day_idx * 1000000 + s.n + 1, $seed, 3) % 1000003) / 1000003.0 AS u_channel,
           (hash(s.day_idx * 1000000 + s.n + 1, $seed, 4) % 1000003) / 1000003.0 AS u_kind,
           (hash(s.day_idx * 1000000 + s.n + 1, $seed, 5) % 1000003) / 1000003.0 AS u_time_a,
           (hash(s.day_idx * 1000000 + s.n + 1, $seed, 6) % 1000003) / 1000003.0 AS u_time_b,
           hash(s.day_idx * 1000000 + s.n + 1, $seed, 7) % 100 AS pct_quantity,
           hash(s.day_idx * 1000000 + s.n + 1, $seed, 8) % 100 AS pct_discount
    FROM slots AS s
),
shaped AS (
    SELECT d.*,
           -- early sign-ups are the loyal, frequent buyers; popular products get most of the traffic
           CAST(floor(e.n_customers * pow(d.u_customer, 2.2)) AS BIGINT) AS customer_rank,
           CAST(floor((SELECT count(*) FROM _seed_products) * pow(d.u_product, 1.3)) AS BIGINT) AS product_rank,
           CASE WHEN d.u_channel < 0.42 THEN 'web'
                WHEN d.u_channel < 0.72 THEN 'mobile_app'
                WHEN d.u_channel < 0.84 THEN 'marketplace'
                WHEN d.u_channel < 0.93 THEN 'email'
                ELSE 'social' END AS channel
    FROM draws AS d JOIN eligible_counts AS e USING (day)
),
events AS (
    SELECT sh.event_id,
           sh.day + to_seconds(CAST(floor(86399 * (sh.u_time_a + sh.u_time_b) / 2) AS BIGINT)) AS event_ts,
           c.customer_id,
           p.product_id,
           sh.channel,
           CASE WHEN sh.u_kind < 0.72 THEN 'view'
                WHEN sh.u_kind < CASE WHEN sh.channel = 'marketplace' THEN 0.955 ELSE 0.972 END THEN 'purchase'
                ELSE 'refund' END AS kind,
           CASE WHEN sh.pct_quantity < 70 THEN 1 WHEN sh.pct_quantity < 92 THEN 2 ELSE 3 END AS qty,
           CASE WHEN sh.pct_discount < 75 THEN 0.0
                WHEN sh.pct_discount < 93 THEN 0.10 ELSE 0.20 END AS discount,
           p.unit_price
    FROM shaped AS sh
    JOIN eligible AS c ON c.day = sh.day AND c.signup_rank = sh.customer_rank
    JOIN products_shuffled AS p ON p.popularity_rank = sh.product_rank
)
SELECT CAST(event_id AS BIGINT) AS event_id,
       CAST(event_ts AS TIMESTAMP) AS event_ts,
       CAST(customer_id AS INTEGER) AS customer_id,
       CAST(product_id AS INTEGER) AS product_id,
       CAST(channel AS VARCHAR) AS channel,
       CAST(kind AS VARCHAR) AS kind,
       CAST(CASE WHEN kind = 'view' THEN NULL ELSE qty END AS INTEGER) AS quantity,
       CAST(CASE WHEN kind = 'view' THEN NULL
                 ELSE round(unit_price * qty * (1 - discount), 2) END AS DECIMAL(12, 2)) AS amount,
       'EUR' AS currency,
       CAST(date_trunc('hour', event_ts) + INTERVAL 65 MINUTE AS TIMESTAMP) AS _loaded_at
FROM events
ORDER BY event_ts, event_id
"""


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def generate(path: str | Path = DEFAULT_PATH, rows_per_day: int = DEFAULT_ROWS_PER_DAY, *,
             start: date = DEFAULT_START, end: date = DEFAULT_END, seed: int = DEFAULT_SEED) -> int:
    """(Re)create `raw.events` in the DuckDB file at `path` and return its row count.

    Same arguments, same rows: the output depends only on the arguments and the seed CSVs.
    """
    import duckdb  # imported here so `--help` stays instant

    if not 1 <= rows_per_day <= MAX_ROWS_PER_DAY:
        raise ValueError(f"rows_per_day must be between 1 and {MAX_ROWS_PER_DAY}, got {rows_per_day}")
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute("BEGIN")
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        # Seeds are read into temp tables: table functions take no prepared parameters.
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _seed_customers AS "
            "SELECT CAST(customer_id AS INTEGER) AS customer_id, CAST(signup_date AS DATE) AS signup_date "
            f"FROM read_csv({_sql_string(str(SEEDS / 'customers.csv'))}, header = true, all_varchar = true)")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _seed_products AS "
            "SELECT CAST(product_id AS INTEGER) AS product_id, CAST(unit_price AS DECIMAL(10, 2)) AS unit_price "
            f"FROM read_csv({_sql_string(str(SEEDS / 'products.csv'))}, header = true, all_varchar = true)")
        con.execute(_EVENTS_SQL, {"seed": seed, "rows_per_day": rows_per_day,
                                  "start": start.isoformat(), "end": end.isoformat()})
        con.execute("COMMENT ON TABLE raw.events IS 'Synthetic shop events made by sample_project/generate_data.py'")
        con.execute("COMMIT")
        (count,) = con.execute("SELECT count(*) FROM raw.events AS e").fetchone()
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return int(count)


def checksum(path: str | Path = DEFAULT_PATH) -> str:
    """An order-independent fingerprint of `raw.events`, to show that two runs wrote the same rows."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        (n, h) = con.execute("SELECT count(*), sum(hash(e)) FROM raw.events AS e").fetchone()
    finally:
        con.close()
    return f"{n}:{h}"


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {value!r}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--path", type=Path, default=DEFAULT_PATH,
                        help="DuckDB file (default: data/warehouse.duckdb next to this script)")
    parser.add_argument("--rows-per-day", type=int, default=DEFAULT_ROWS_PER_DAY,
                        help=f"base events per day; weekends and the holiday peak get more (default {DEFAULT_ROWS_PER_DAY})")
    parser.add_argument("--start", type=_date, default=DEFAULT_START, help="first day (default 2024-01-01)")
    parser.add_argument("--end", type=_date, default=DEFAULT_END, help="last day, inclusive (default 2024-12-31)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="pseudo-random seed (default 42)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        rows = generate(args.path, args.rows_per_day, start=args.start, end=args.end, seed=args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"raw.events: {rows:,} rows, {args.start}..{args.end}, in {time.perf_counter() - started:.2f}s "
          f"-> {args.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
