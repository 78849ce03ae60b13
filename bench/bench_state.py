"""State store: SQLite file vs a local PostgreSQL server, same operations, same run (figures, no asserts).

    python bench/bench_state.py

What a run costs the state store: opening it (connect + schema check), one flush of one unit, one
flush of 256 units, taking and releasing a lease, and reading 10,000 materializations. PostgreSQL is
a real server this script starts (Debian's binaries, as the tests do) on loopback, so the figures are
its floor: a team's server across a network adds a round trip per statement.
"""

from __future__ import annotations

import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pg_server import start_postgres  # noqa: E402

from sqlassets.run.state import StateStore, UnitRecord  # noqa: E402
from sqlassets.run.state.postgres import PostgresBackend  # noqa: E402
from sqlassets.run.state.sqlite import SQLiteBackend  # noqa: E402


def timed(fn: Callable[[], None], n: int) -> float:
    """Best-of-3 mean seconds per call."""
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t0) / n)
    return best


def measure(make: Callable[[], object]) -> dict[str, float]:
    out: dict[str, float] = {}
    out["open + schema check"] = timed(lambda: StateStore(backend=make()).close(), 10)
    st = StateStore(backend=make())
    run = st.start_run("backfill", command="bench", options={})
    counter = [0]

    def units(n: int) -> list[UnitRecord]:
        t = time.time()
        counter[0] += 1
        return [UnitRecord("daily", f"{counter[0]}-{i}", "done", t, t + 0.01, rows=i) for i in range(n)]

    out["flush of 1 unit"] = timed(lambda: st.record_units(run, units(1)), 100)
    out["flush of 256 units"] = timed(lambda: st.record_units(run, units(256)), 5)

    def lease() -> None:
        st.acquire_leases(["daily", "monthly"], run)
        st.release_leases(run)

    out["acquire + release 2 leases"] = timed(lease, 50)
    st.record_units(run, units(10_000 - st.count("materializations") % 10_000))
    out["read all materializations"] = timed(lambda: st.all_materializations(), 3)
    rows = st.count("materializations")
    st.finish_run(run, "success", planned=0, done=0, failed=0, skipped=0)
    st.close()
    out["_rows"] = rows
    return out


def main() -> int:
    try:
        server_cm = start_postgres()
        server = server_cm.__enter__()
    except LookupError as exc:
        print(f"skipped: {exc}")
        return 0
    try:
        with tempfile.TemporaryDirectory() as tmp:
            lite = measure(lambda: SQLiteBackend(Path(tmp)))
        schema = "bench_" + uuid.uuid4().hex[:8]
        pg = measure(lambda: PostgresBackend(server.url, schema))
    finally:
        server_cm.__exit__(None, None, None)
    print(f"{'operation':<30} {'SQLite':>10} {'PostgreSQL':>12} {'PG/SQLite':>10}")
    for key in lite:
        if key.startswith("_"):
            continue
        print(f"{key:<30} {lite[key] * 1000:>8.2f}ms {pg[key] * 1000:>10.2f}ms {pg[key] / lite[key]:>9.1f}x")
    print(f"(materializations read: SQLite {lite['_rows']:.0f}, PostgreSQL {pg['_rows']:.0f} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
