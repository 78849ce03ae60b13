"""The CI gate recipe end to end on the real sample project: `ci save-base`, then `ci --base DIR` on a
changed copy seeded from a DuckDB file named unlike the profile's database; every changed column named
(breaking or not) in console, markdown and JUnit, with a failing testcase per breaking change."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema
from checks_support import built_sample  # noqa: F401  (session fixture)
from conftest import invoke

XSD = Path(__file__).parent / "data" / "junit-10.xsd"


def _change_clv(root: Path) -> None:
    """Retype avg_order_value (read by vip_customers), drop country_revenue_rank (read by nobody), add a column."""
    model = root / "models" / "marts" / "customer_lifetime_value.sql"
    text = model.read_text()
    text, n = re.subn(r"(?m)^(\s*)(.+) as avg_order_value,$", r"\1cast(\2 as varchar) as avg_order_value,", text)
    assert n == 1
    text, n = re.subn(r"(?m)^\s*rank\(\) over \(partition by country_code .*\n", "", text)
    assert n == 1
    text = text.replace("as lifecycle_stage,", "as lifecycle_stage,\n    1 as loyalty_points,", 1)
    model.write_text(text)


def test_save_base_then_gate_a_changed_copy(built_sample: Path, tmp_path: Path):  # noqa: F811
    prod = shutil.copytree(built_sample, tmp_path / "prod")
    base = tmp_path / "base"
    saved = invoke(["--project", str(prod), "ci", "save-base", str(base)])
    assert saved.exit_code == 0, saved.stdout + saved.stderr
    assert {p.name for p in base.iterdir()} >= {"sqlassets_base.json", "manifest.json", "warehouse.duckdb"}

    v2 = shutil.copytree(prod, tmp_path / "v2")
    _change_clv(v2)
    # production's file under another name than the profile's database ("warehouse")
    snapshot = tmp_path / "prod-snapshot-2024.duckdb"
    shutil.copyfile(base / "warehouse.duckdb", snapshot)
    junit, md = tmp_path / "ci.xml", tmp_path / "ci.md"
    res = invoke(["--project", str(v2), "ci", "--base", str(base), "--seed-from", str(snapshot),
                  "--junit", str(junit), "--markdown", str(md), "--partitions", "2024-01-01..2024-01-03"])
    out = res.stdout + res.stderr
    assert res.exit_code == 1, out
    assert "is not a catalog" not in out and "CI gate: FAIL - 1 breaking column change(s)" in out
    assert ("  breaking: customer_lifetime_value.avg_order_value retyped DECIMAL(12,2) -> VARCHAR; "
            "read by vip_customers.avg_order_value") in res.stdout
    assert "  not breaking: customer_lifetime_value.country_revenue_rank removed (was BIGINT)" in res.stdout
    assert "  not breaking: customer_lifetime_value.loyalty_points added (INTEGER)" in res.stdout

    text = md.read_text()
    assert "`customer_lifetime_value.avg_order_value` | retyped DECIMAL(12,2) -> VARCHAR" in text
    assert "`customer_lifetime_value.country_revenue_rank` | removed (was BIGINT)" in text
    assert "`customer_lifetime_value.loyalty_points` | added (INTEGER)" in text

    schema = xmlschema.XMLSchema(str(XSD))
    schema.validate(str(junit))
    doc = schema.to_dict(str(junit))
    assert int(doc["@failures"]) >= 1  # agrees with the FAIL verdict
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    breaking = cases["column avg_order_value retyped DECIMAL(12,2) -> VARCHAR"]
    assert "vip_customers.avg_order_value" in breaking.find("failure").text
    removed = cases["column country_revenue_rank removed (was BIGINT)"]
    assert removed.find("failure") is None and "not breaking" in removed.find("system-out").text
    assert "column loyalty_points added (INTEGER)" in cases

    # the saved folder alone is enough: its warehouse copy is the default seed
    again = invoke(["--project", str(v2), "ci", "--base", str(base), "--ci-dir", str(tmp_path / "ci2"),
                    "--partitions", "2024-01-01..2024-01-03", "--allow-breaking"])
    assert again.exit_code == 0, again.stdout + again.stderr
    assert f"seeding from the saved base: {base / 'warehouse.duckdb'}" in again.stdout
    assert "CI gate: PASS (1 breaking column change(s) (allowed))" in again.stdout


def test_build_failure_is_a_failing_junit_testcase(built_sample: Path, tmp_path: Path):  # noqa: F811
    root = shutil.copytree(built_sample, tmp_path / "v2")
    base = tmp_path / "manifest.json"
    shutil.copyfile(root / "target" / "manifest.json", base)
    model = root / "models" / "marts" / "customer_lifetime_value.sql"
    model.write_text(model.read_text().replace("as lifecycle_stage,",
                                               "as lifecycle_stage,\n    cast('abc' as integer) as broken,", 1))
    junit = tmp_path / "ci.xml"
    res = invoke(["--project", str(root), "ci", "--base", str(base), "--junit", str(junit),
                  "--partitions", "2024-01-01..2024-01-03", "--batch-size", "1"])
    assert res.exit_code == 1, res.stdout + res.stderr
    doc = xmlschema.XMLSchema(str(XSD)).to_dict(str(junit))
    assert int(doc["@errors"]) + int(doc["@failures"]) >= 1
    cases = [c for c in ET.parse(junit).iter("testcase") if c.get("name") == "build"]
    assert cases and "Could not convert string 'abc'" in cases[0].find("error").get("message")


def test_ci_without_base_is_a_usage_error(built_sample: Path):  # noqa: F811
    res = invoke(["--project", str(built_sample), "ci"])
    assert res.exit_code == 2 and "ci save-base" in res.stderr and len(res.stderr.strip().splitlines()) == 1
