"""A warm `sqlassets check` (plans and SQL files remembered from the last run) gives the same results
without importing sqlglot; an edited SQL file or suite is compiled again. Real processes, real DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from checks_support import exp, make_shop_checks, suite, write_suite
from conftest import invoke

from sqlassets.project import load_project
from sqlassets.run.state import StateStore

PROBE = r'''
import sys
from sqlassets.cli import main
try:
    main(["--project", sys.argv[1], *sys.argv[2:]])
except SystemExit as exc:
    code = exc.code
print("sqlglot imported:", "sqlglot" in sys.modules, file=sys.stderr)
sys.exit(code)
'''


def _check(root: Path, *args: str) -> tuple[int, str, bool]:
    r = subprocess.run([sys.executable, "-c", PROBE, str(root), "check", *args], capture_output=True, text=True,
                       timeout=300)
    assert "Traceback" not in r.stderr, r.stderr
    return r.returncode, r.stdout, "sqlglot imported: True" in r.stderr


def _results(root: Path, run_id: int) -> list[tuple]:
    with StateStore(load_project(root).state_dir) as st:
        rows = st._q("select asset, check_name, partition, status, observed, expected, message, details "
                     "from check_results where run_id = ? order by id", (run_id,))
    return [(*r[:-1], {k: v for k, v in json.loads(r[-1]).items() if k != "seconds"}) for r in rows]


def test_a_warm_check_replays_without_sqlglot_and_gives_the_same_results(tmp_path: Path) -> None:
    root = make_shop_checks(tmp_path / "p")
    assert invoke(["--project", str(root), "materialize"]).exit_code == 0
    write_suite(root, "daily", suite(
        "daily",
        exp("expect_column_values_to_not_be_null", "critical", column="customer_id"),
        exp("expect_compound_columns_to_be_unique", "critical", column_list=["day", "customer_id"]),
        exp("expect_column_median_to_be_between", "info", column="net", min_value=0),
        exp("expect_table_row_count_to_be_between", "critical", min_value=1),
        exp("expect_column_to_exist", "critical", column="nope"),
    ))
    cold = _check(root)
    warm = _check(root)
    assert cold[0] == warm[0] == 1  # column 'nope' does not exist
    assert cold[1].splitlines()[:-1] == warm[1].splitlines()[:-1]  # (the last line names the run)
    assert cold[2] and not warm[2]  # the cold run parsed and compiled with sqlglot; the warm one did not
    assert _results(root, 2) == _results(root, 3)

    # unexpected rows to list: the replayed plan compiles for real (sqlglot), same results as cold
    write_suite(root, "daily", suite("daily", exp("expect_column_values_to_be_between", "critical", column="net",
                                                  min_value=0)))
    first, second = _check(root), _check(root)
    assert first[0] == second[0] == 1 and "-500" in first[1] and "-500" in second[1]
    assert _results(root, 4) == _results(root, 5)
    assert second[2]  # it needed the predicate of an unexpected row

    # an edited SQL file is parsed again: its new upstream shows up
    (root / "sql" / "summary.sql").write_text("-- materialized: table\nselect * from daily join raw.other using (customer_id)\n")
    listing = invoke(["--project", str(root), "list", "--select", "+summary"])
    assert "raw.other" in listing.stdout, listing.stdout
