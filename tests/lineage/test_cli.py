"""`sqlassets lineage` through the real entry point on a parsed copy of the shop fixture."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import copy_parsed, invoke, tree


@pytest.fixture(scope="module")
def shop(shop_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return copy_parsed(shop_root, tmp_path_factory.mktemp("lineage_cli") / "shop")


def run(shop: Path, *args: str):
    return invoke(["--project", str(shop), "lineage", *args])


def test_json_shape(shop: Path) -> None:
    r = run(shop, "fct_orders.amount", "--format", "json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["column"] == "fct_orders.amount"
    assert {"column": "stg_orders.amount", "edge": "copy", "depth": 1, "via": "fct_orders.amount"} in data["upstream"]
    assert {"column": "raw.orders.amount", "edge": "copy", "depth": 2, "via": "stg_orders.amount"} in data["upstream"]
    down = {d["column"]: d for d in data["downstream"]}
    assert down["customer_revenue.revenue"]["edge"] == "aggregate"
    assert down["ltv_segments.segment"]["depth"] == 3


def test_direction_and_depth(shop: Path) -> None:
    r = run(shop, "fct_orders.amount", "--upstream", "--depth", "1", "--format", "json")
    data = json.loads(r.stdout)
    assert "downstream" not in data
    assert {u["depth"] for u in data["upstream"]} == {1}
    r = run(shop, "fct_orders.amount", "--downstream", "--format", "json")
    assert "upstream" not in json.loads(r.stdout)


def test_text_tree(shop: Path) -> None:
    r = run(shop, "customer_revenue.revenue", "--upstream")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "customer_revenue.revenue  (resolved)"
    assert "  <- [aggregate] fct_orders.amount" in lines
    assert "    <- [copy] stg_orders.amount" in lines


def test_dot_and_mermaid(shop: Path) -> None:
    dot = run(shop, "customer_revenue.revenue", "--format", "dot").stdout
    assert dot.startswith("digraph lineage {")
    assert '"fct_orders.amount" -> "customer_revenue.revenue" [label="aggregate"];' in dot
    mer = run(shop, "customer_revenue.revenue", "--format", "mermaid").stdout
    assert mer.startswith("flowchart LR")
    assert "-- aggregate -->" in mer and "-. filter .->" in mer


def test_stats(shop: Path) -> None:
    r = run(shop, "--stats")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.startswith("assets: ")
    assert "stg_payments: select * over raw.payments" in r.stdout
    data = json.loads(run(shop, "--stats", "--format", "json").stdout)
    assert data["parsed"] == 0 and data["from_cache"] == data["assets_with_sql"]  # second run: warm cache
    assert data["columns_by_status"]["unresolved"] >= 1
    assert set(data["edges_by_kind"]) == {"copy", "transform", "aggregate", "filter"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["fct_orders.nope"], "error: asset 'fct_orders' has no column 'nope'"),
        (["nope.amount"], "error: unknown asset 'nope'"),
        (["fct_orders"], "is not ASSET.COLUMN"),
        (["fct_orders.amount", "--depth", "0"], "--depth must be >= 1"),
        (["fct_orders.amount", "--depth", "two"], "--depth must be a whole number"),
        (["fct_orders.amount", "--format", "svg"], "unknown --format 'svg'"),
        ([], "give ASSET.COLUMN, --report FILE.html or --stats"),
        (["fct_orders.amount", "--select", "fct_orders"], "--select/--exclude apply to --report"),
        (["--report", "no/such/dir/l.html"], "does not exist"),
        (["--report", "x.html", "--select", "nothing_like_this"], "error:"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(shop: Path, args: list[str], message: str) -> None:
    before = tree(shop)
    r = run(shop, *args)
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stdout == ""
    after = tree(shop)
    assert {k for k in after if not k.startswith(".sqlassets")} == {k for k in before if not k.startswith(".sqlassets")}


def test_report_with_select(shop: Path, tmp_path: Path) -> None:
    out = tmp_path / "lineage.html"
    r = run(shop, "--report", str(out), "--select", "customer_revenue")
    assert r.exit_code == 0, r.stderr
    text = out.read_text()
    assert text.startswith("<!doctype html>") and "cytoscape" in text
    assert "http://" not in text.split("<script>/* cytoscape.js", 1)[0].split("</style>", 1)[1]
    start = text.index('id="lineage-data">') + len('id="lineage-data">')
    data = json.loads(text[start:text.index("</script>", start)])
    keys = {a["key"] for a in data["assets"]}
    assert "customer_revenue" in keys and "fct_orders" in keys  # its lineage stays whole
    assert "calendar_days" not in keys  # unrelated assets are left out
    full = tmp_path / "full.html"
    assert run(shop, "--report", str(full)).exit_code == 0
    assert len(full.read_text()) > len(text)


def test_help_does_not_import_lineage() -> None:
    code = ("import sys; from sqlassets.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('LOADED', [m for m in ('sqlglot', 'sqlassets.lineage', 'sqlassets.cli.lineage_cmds') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out


def test_no_filter_follows_value_edges_only(shop: Path) -> None:
    full = json.loads(run(shop, "customer_revenue.revenue", "--upstream", "--format", "json").stdout)
    values = json.loads(run(shop, "customer_revenue.revenue", "--upstream", "--no-filter", "--format", "json").stdout)
    assert any(u["edge"] == "filter" for u in full["upstream"])
    assert values["upstream"] and all(u["edge"] != "filter" for u in values["upstream"])
    assert {u["column"] for u in values["upstream"]} == {"fct_orders.amount", "stg_orders.amount", "raw.orders.amount"}
    mer = run(shop, "customer_revenue.revenue", "--upstream", "--no-filter", "--format", "mermaid").stdout
    assert "filter" not in mer


def test_upstream_and_downstream_flags_together_mean_both(shop: Path) -> None:
    one = json.loads(run(shop, "fct_orders.amount", "--upstream", "--format", "json").stdout)
    both = json.loads(run(shop, "fct_orders.amount", "--upstream", "--downstream", "--format", "json").stdout)
    default = json.loads(run(shop, "fct_orders.amount", "--format", "json").stdout)
    assert set(one) >= {"upstream"} and "downstream" not in one
    assert both["upstream"] == one["upstream"] and both["downstream"]
    assert both == default


def test_show_of_an_ephemeral_model_says_what_it_is(shop: Path) -> None:
    r = invoke(["--project", str(shop), "show", "int_order_payments"])
    assert r.exit_code == 2
    assert "is an ephemeral dbt model" in r.stderr and "unknown asset" not in r.stderr
    assert "fct_orders" in r.stderr  # the model it is part of


def test_unknown_column_hint_lists_every_column_or_says_how_many_more() -> None:
    from sqlassets.errors import UserError
    from sqlassets.lineage.graph import ColumnGraph
    from sqlassets.lineage.result import AssetLineage

    cols = tuple(f"col_{i:02d}" for i in range(18))
    cg = ColumnGraph.build([AssetLineage("wide", cols)])
    with pytest.raises(UserError) as err:
        cg.resolve("wide.zzz_unrelated")
    assert "its 18 columns:" in str(err.value) and all(c in str(err.value) for c in cols)
    cg = ColumnGraph.build([AssetLineage("wider", tuple(f"c{i}" for i in range(30)))])
    with pytest.raises(UserError) as err:
        cg.resolve("wider.zzz_unrelated")
    assert "and 10 more" in str(err.value)
