"""`sqlassets check`: exit codes 0/1/2, output naming asset/partition/check/column/observed/expected,
JUnit XML valid against junit-10.xsd, GitHub annotations, and GX never imported by commands that run no
suite. Also suite discovery rules (file name, sqlassets.yml mapping, bad files -> exit 2)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import xmlschema
from checks_support import exp, make_shop_checks, suite, write_suite
from conftest import invoke, tree

XSD = Path(__file__).parent / "data" / "junit-10.xsd"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """The shop_checks project materialized without checks, then given suites."""
    root = make_shop_checks(tmp_path / "p")
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 0, res.stdout + res.stderr
    write_suite(root, "daily", suite(
        "daily",
        exp("expect_column_values_to_be_between", "critical", column="net", min_value=0),
        exp("expect_column_values_to_not_be_null", "critical", column="customer_id"),
        exp("expect_column_values_to_be_between", "warning", column="n", min_value=2),
        exp("expect_column_values_to_be_between", "info", column="nope", min_value=0),
    ))
    write_suite(root, "summary", suite("summary", exp("expect_table_row_count_to_equal", "critical", value=10)))
    return root


def test_check_blocking_failure_exit_1_names_everything_and_writes_valid_junit(built: Path, tmp_path: Path):
    junit = tmp_path / "out" / "checks.xml"
    res = invoke(["--project", str(built), "check", "--junit", str(junit)])
    assert res.exit_code == 1, res.stdout + res.stderr
    line = next(ln for ln in res.stdout.splitlines() if "FAIL" in ln and "critical" in ln)
    assert "daily" in line and "column_values_to_be_between(net)" in line and "column net" in line
    assert "observed 1 of 40 rows unexpected" in line and "expected net values >= 0" in line
    assert "ERROR info" in res.stdout and "nope" in res.stdout  # an erroring expectation is an error
    assert "summary: 1 passed" in res.stdout
    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(str(junit))  # raises on any violation
    doc = schema.to_dict(str(junit))
    assert doc["@tests"] == "5" and doc["@failures"] == "1" and doc["@errors"] == "0"
    text = junit.read_text()
    assert "<failure" in text and "observed: 1 of 40 rows unexpected" in text
    assert "INFO: expectation errored" in text  # non-blocking problems are system-out, not failures


def test_check_only_passing_partition_exit_0_and_results_stored(built: Path):
    res = invoke(["--project", str(built), "check", "-s", "daily", "--partitions", "2024-01-01..2024-01-02"])
    assert res.exit_code == 0, res.stdout
    assert "daily (2 partitions): 4/8 passed" in res.stdout  # the warning and the info problem per day
    runs = invoke(["--project", str(built), "runs"])
    assert "check" in runs.stdout


@pytest.mark.parametrize("args, message", [
    (["check", "--partitions", "2024-13-01"], "error:"),
    (["check", "--partitions", "2024-01-01'; drop table daily; --"], "error:"),
    (["check", "-s", "no_such_asset"], "no_such_asset"),
    (["check", "-s", "summary", "--partitions", "2024-01-01"], "none of the selected assets"),
])
def test_usage_errors_exit_2_and_write_nothing(built: Path, args: list[str], message: str):
    before = tree(built)
    res = invoke(["--project", str(built), *args])
    assert res.exit_code == 2, res.stdout + res.stderr
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert tree(built) == before


def test_github_annotations(built: Path):
    res = invoke(["--project", str(built), "check", "-s", "daily"], env={"GITHUB_ACTIONS": "true"})
    ann = [ln for ln in res.stdout.splitlines() if ln.startswith("::")]
    error = next(a for a in ann if a.startswith("::error "))
    assert "file=checks/daily.json" in error and "line=" in error
    line = int(error.split("line=")[1].split(",")[0])
    assert '"expect_column_values_to_be_between"' in (built / "checks/daily.json").read_text().splitlines()[line - 1]
    assert any(a.startswith("::warning ") for a in ann) and any(a.startswith("::notice ") for a in ann)


def test_suite_discovery_errors(built: Path):
    write_suite(built, "dayly", suite("typo", exp("expect_column_values_to_not_be_null", column="x")))
    res = invoke(["--project", str(built), "check"])
    assert res.exit_code == 2 and "dayly" in res.stderr and "matches no asset" in res.stderr
    (built / "checks" / "dayly.json").unlink()
    write_suite(built, "daily", suite("daily", exp("expect_column_values_to_not_be_null", "urgent", column="x")))
    res = invoke(["--project", str(built), "check"])
    assert res.exit_code == 2 and "urgent" in res.stderr and "daily.json" in res.stderr


def test_explicit_mapping_in_sqlassets_yml(built: Path):
    shared = built / "shared" / "not_null_customer.json"
    shared.parent.mkdir()
    # no meta.severity on the expectation: the mapping's severity (or the default, critical) applies
    shared.write_text(json.dumps({"name": "shared", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "customer_id"}}]}))
    (built / "sqlassets.yml").write_text(
        "warehouse: {type: duckdb, path: warehouse.duckdb}\n"
        "checks:\n  suites:\n    shared/not_null_customer.json: [daily, {asset: summary, severity: warning}]\n")
    (built / "checks" / "daily.json").unlink()
    (built / "checks" / "summary.json").unlink()
    res = invoke(["--project", str(built), "check", "-v"])
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "PASS  critical daily" in res.stdout and "PASS  warning  summary" in res.stdout


def test_list_and_graph_never_import_gx(built: Path):
    code = ("import sys\nfrom sqlassets.cli import main\n"
            "for cmd in (['list'], ['graph']):\n"
            "    try:\n        main(['--project', sys.argv[1], *cmd])\n    except SystemExit:\n        pass\n"
            "print('GX_LOADED' if 'great_expectations' in sys.modules else 'GX_NOT_LOADED', file=sys.stderr)\n")
    out = subprocess.run([sys.executable, "-c", code, str(built)], capture_output=True, text=True, check=True)
    assert "GX_NOT_LOADED" in out.stderr
    code_check = code.replace("(['list'], ['graph'])", "(['check'],)")
    out = subprocess.run([sys.executable, "-c", code_check, str(built)], capture_output=True, text=True)
    assert "GX_NOT_LOADED" in out.stderr  # every expectation here is covered by the SQL engine
    code_check = code.replace("(['list'], ['graph'])", "(['check', '--engine', 'gx'],)")
    out = subprocess.run([sys.executable, "-c", code_check, str(built)], capture_output=True, text=True)
    assert "GX_LOADED" in out.stderr  # the test can fail: `check --engine gx` does load GX
    assert "leaked" not in out.stderr  # and exits without nanobind noise
