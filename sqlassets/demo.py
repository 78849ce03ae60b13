"""`make demo`: run the main job on a project through the real CLI, one step after another.

Each step is a plain `sqlassets` command line, so what the demo shows is exactly what a user can type.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

# (title, argv after `sqlassets --project DIR`, exit codes that are expected)
STEPS: list[tuple[str, list[str], tuple[int, ...]]] = [
    ("The asset graph", ["graph"], (0,)),
    ("Assets as a table", ["list"], (0,)),
    ("One asset in detail", ["show", "fct_daily_customer_events"], (0,)),
    # issue 3 (materialize/backfill/status), issue 4 (lineage), issue 5 (checks) add their steps here.
    ("Backfill a quarter of the daily fact (and what it reads)",
     ["backfill", "--select", "+fct_daily_customer_events", "--partitions", "2024-01-01..2024-03-31"], (0,)),
    ("Build the marts and raw SQL assets for that quarter",
     ["materialize", "--partitions", "2024-01-01..2024-03-31"], (0,)),
    ("Nothing missing: a re-run is a no-op", ["materialize", "--partitions", "2024-01-01..2024-03-31"], (0,)),
    ("Partition status", ["status"], (0,)),
    ("Backfills and runs", ["backfill", "list"], (0,)),
    ("Run history", ["runs"], (0,)),
    ("Where a mart column comes from (column lineage, typed edges)",
     ["lineage", "customer_lifetime_value.net_revenue", "--upstream"], (0,)),
    ("Lineage coverage: parsed, resolved, unresolved with reasons", ["lineage", "--stats"], (0,)),
    ("The offline HTML lineage report", ["lineage", "--report", "lineage.html"], (0,)),
    # issue 5: GX suites + dbt tests on the quarter just built; one warning-level expectation
    # (customer_lifetime_value region in [Europe, North America]) fails on purpose and does not block.
    ("Asset checks: GX suites and dbt tests (one warning fails on purpose, exit 0)",
     ["check", "--partitions", "2024-01-01..2024-03-31", "--junit", ".sqlassets/checks.xml"], (0,)),
]


def _step(root: Path, title: str, args: list[str], ok_codes: tuple[int, ...]) -> bool:
    argv = [sys.executable, "-m", "sqlassets", "--project", str(root), *args]
    print(f"\n=== {title}\n$ sqlassets --project {root} {shlex.join(args)}", flush=True)
    started = time.perf_counter()
    code = subprocess.call(argv)
    print(f"({time.perf_counter() - started:.2f}s, exit {code})", flush=True)
    if code not in ok_codes:
        print(f"demo step failed: {title} (exit {code})", file=sys.stderr)
        return False
    return True


def pull_request_copy(root: Path, dest: Path) -> Path:
    """A changed copy of the project, as a pull request would have it (code only: no data, no state).

    The change: `avg_order_value` retyped to text (vip_customers reads it: breaking),
    `country_revenue_rank` dropped (nobody reads it) and a `loyalty_points` column added.
    """
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(root, dest, ignore=shutil.ignore_patterns(".sqlassets", "target", "logs", "data", "*.duckdb*",
                                                              "lineage.html"))
    model = dest / "models" / "marts" / "customer_lifetime_value.sql"
    text = model.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^(\s*)(.+) as avg_order_value,$", r"\1cast(\2 as varchar) as avg_order_value,", text)
    text = re.sub(r"(?m)^\s*rank\(\) over \(partition by country_code .*\n", "", text)
    text = text.replace("as lifecycle_stage,", "as lifecycle_stage,\n    1 as loyalty_points,", 1)
    model.write_text(text, encoding="utf-8")
    return dest


def main(project: str) -> int:
    root = Path(project)
    for title, args, ok_codes in STEPS:
        if not _step(root, title, args, ok_codes):
            return 1
    # issue 11: the CI gate recipe, end to end. Production saves its base after a deploy; CI runs the
    # gate on the pull request's copy, seeded from that base's warehouse copy.
    base = (root / ".sqlassets" / "prod-base").resolve()
    if not _step(root, "CI gate, step 1 (in production, after each deploy): save the base",
                 ["ci", "save-base", str(base)], (0,)):
        return 1
    pr = pull_request_copy(root, (root / ".sqlassets" / "demo-pr").resolve())
    print(f"\n(pull request copy at {pr}: customer_lifetime_value retypes avg_order_value, drops "
          "country_revenue_rank, adds loyalty_points)", flush=True)
    return 0 if _step(pr, "CI gate, step 2 (in CI, on the pull request): build what changed, check it, compare "
                          "columns (fails on purpose: vip_customers reads the retyped column, exit 1)",
                      ["ci", "--base", str(base), "--partitions", "2024-03-01..2024-03-31",
                       "--junit", str(pr / ".sqlassets" / "ci.xml"), "--markdown", str(pr / ".sqlassets" / "ci.md")],
                      (1,)) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "sample_project"))
