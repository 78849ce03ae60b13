"""`sqlassets graph | list | show` through click's CliRunner, plus one real run of the installed entry point."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import invoke

from sqlassets.graph import AssetGraph
from sqlassets.selection import select_keys

ISSUE_KEYS = {"key", "kind", "relation", "deps", "materialization", "tags", "group", "owner", "columns",
              "code_version", "path"}


def cli(root: Path, *args: str):
    return invoke(["--project", str(root), *args])


def edges(graph: AssetGraph, keys: set[str]) -> set[tuple[str, str]]:
    return {(d, a.key) for a in graph if a.key in keys for d in a.deps if d in keys}


def test_graph_json_is_the_documented_shape(shop_root: Path, shop_graph: AssetGraph) -> None:
    r = cli(shop_root, "graph", "--format", "json")
    assert r.exit_code == 0, r.stderr
    data = json.loads(r.stdout)
    assert list(data) == ["assets"]
    assets = data["assets"]
    assert [a["key"] for a in assets] == shop_graph.topo_order
    for a in assets:
        assert ISSUE_KEYS <= set(a), a["key"]
        assert set(a) - ISSUE_KEYS <= {"description"}, f"undocumented keys: {set(a) - ISSUE_KEYS}"
        assert isinstance(a["deps"], list) and all(isinstance(d, str) for d in a["deps"])
        assert isinstance(a["tags"], list)
        assert a["relation"] is None or isinstance(a["relation"], str)
        for c in a["columns"]:
            assert set(c) == {"name", "type", "description"}
    fct = next(a for a in assets if a["key"] == "fct_orders")
    assert fct["kind"] == "model" and fct["materialization"] == "table"
    assert fct["relation"] == "shop.main.fct_orders"
    assert set(fct["deps"]) == {"stg_orders", "stg_payments", "shop.stg_customers"}
    assert fct["group"] == "finance" and fct["owner"] == "alice@example.com"
    assert fct["path"] == "models/marts/fct_orders.sql"
    assert fct["columns"][0] == {"name": "order_id", "type": "bigint", "description": "Order primary key."}
    assert fct["code_version"] == shop_graph["fct_orders"].code_version


def test_list_json_equals_graph_json_and_respects_selection(shop_root: Path) -> None:
    full = json.loads(cli(shop_root, "list", "--output", "json").stdout)
    assert full == json.loads(cli(shop_root, "graph", "--format", "json").stdout)
    r = cli(shop_root, "list", "--select", "+fct_orders", "--exclude", "kind:source", "--output", "json")
    assert r.exit_code == 0, r.stderr
    assert [a["key"] for a in json.loads(r.stdout)["assets"]] == [
        k for k in [a["key"] for a in full["assets"]]
        if k in {"raw_customers", "shop.stg_customers", "stg_orders", "stg_payments", "fct_orders"}]


def test_graph_text(shop_root: Path, shop_graph: AssetGraph) -> None:
    r = cli(shop_root, "graph")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    n_edges = len(edges(shop_graph, set(shop_graph.keys)))
    assert lines[0] == f"{len(shop_graph)} assets, {n_edges} edges"
    assert "\x1b[" not in r.stdout  # no colour codes when stdout is not a terminal
    body = "\n".join(lines[1:])
    for key in shop_graph.keys:
        assert re.search(rf"^\s*{re.escape(key)}\s", body, re.M), key
    fct_line = next(ln for ln in lines if ln.strip().startswith("fct_orders "))
    assert all(p in fct_line for p in ("stg_orders", "stg_payments", "shop.stg_customers"))


def test_graph_dot(shop_root: Path, shop_graph: AssetGraph) -> None:
    r = cli(shop_root, "graph", "--format", "dot", "--select", "+customer_revenue")
    assert r.exit_code == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith("digraph") and out.endswith("}")
    got = set(re.findall(r'^\s*"([^"]+)" -> "([^"]+)";$', out, re.M))
    keys = set(select_keys(shop_graph, "+customer_revenue"))
    assert got == edges(shop_graph, keys)
    declared = set(re.findall(r'^\s*"([^"]+)" \[label=', out, re.M))
    assert declared == keys


def test_graph_mermaid(shop_root: Path, shop_graph: AssetGraph) -> None:
    r = cli(shop_root, "graph", "--format", "mermaid")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "flowchart LR"
    node_lines = [ln for ln in lines if re.match(r"^\s+\w+[\[\(]", ln)]
    ids = {}
    for ln in node_lines:
        m = re.match(r'^\s+(\w+)[\[\(/]+"(.+?)"', ln)
        assert m, ln
        ids[m.group(1)] = m.group(2).split(" [")[0]
    assert set(ids.values()) == set(shop_graph.keys)
    arrows = {(ids[a], ids[b]) for a, b in re.findall(r"^\s+(\w+) --> (\w+)$", r.stdout, re.M)}
    assert arrows == edges(shop_graph, set(shop_graph.keys))
    # Mermaid ids must be plain identifiers even for keys with dots.
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", i) for i in ids)


def test_list_text(shop_root: Path, shop_graph: AssetGraph) -> None:
    r = cli(shop_root, "list", "--select", "tag:finance")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["KEY", "KIND", "MATERIALIZATION"]
    keys = [ln.split()[0] for ln in lines[1:]]
    assert keys == select_keys(shop_graph, "tag:finance")
    assert "alice@example.com" in r.stdout


def test_show(shop_root: Path) -> None:
    r = cli(shop_root, "show", "fct_orders")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    for expected in ("fct_orders", "model", "table", "shop.main.fct_orders", "models/marts/fct_orders.sql",
                     "alice@example.com", "finance", "order_id", "bigint", "Order primary key.",
                     "stg_orders", "customer_revenue"):
        assert expected in out, expected
    assert re.search(r"upstream:.*stg_payments", out)
    assert re.search(r"downstream:.*customer_revenue", out)
    # names, types and descriptions each start in one column
    lines = out.split("  columns:\n", 1)[1].split("  sql:", 1)[0].splitlines()
    described = [ln for ln in lines if len(re.split(r"\s{2,}", ln.strip())) == 3]
    assert len(described) >= 2
    starts = {ln.index(re.split(r"\s{2,}", ln.strip())[2]) for ln in described}
    assert len(starts) == 1, described


def test_show_sql_asset_and_source(shop_root: Path) -> None:
    r = cli(shop_root, "show", "customer_ltv")
    assert r.exit_code == 0 and "sql/customer_ltv.sql" in r.stdout and "finance_ext.fx_rates" in r.stdout
    r = cli(shop_root, "show", "raw.orders")
    assert r.exit_code == 0 and "source" in r.stdout and "updated_at" in r.stdout


def test_select_takes_several_words_as_in_dbt(shop_root: Path) -> None:
    """`--select a b` (dbt's daily habit) is the union, like `--select "a b"`; words stop at the next option."""
    from sqlassets.cli import join_selector_args

    assert join_selector_args(["list", "-s", "a", "b", "--exclude", "c", "d", "-o", "json"]) == \
        ["list", "-s", "a b", "--exclude", "c d", "-o", "json"]
    assert join_selector_args(["list", "--select", "--output", "json"]) == ["list", "--select", "--output", "json"]
    r = cli(shop_root, "list", "--select", "stg_orders", "country_codes", "stg_payments", "--exclude",
            "stg_payments", "--output", "json")
    assert r.exit_code == 0, r.stderr
    assert sorted(a["key"] for a in json.loads(r.stdout)["assets"]) == ["country_codes", "stg_orders"]


def test_selection_that_matches_nothing_warns_and_succeeds(shop_root: Path) -> None:
    r = cli(shop_root, "list", "--select", "tag:does_not_exist", "--output", "json")
    assert r.exit_code == 0
    assert json.loads(r.stdout) == {"assets": []}
    assert "warning" in r.stderr and "no assets" in r.stderr


def test_project_from_cwd_and_env(shop_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(shop_root)
    r = invoke(["list", "--output", "json"])
    assert r.exit_code == 0, r.stderr
    n = len(json.loads(r.stdout)["assets"])
    monkeypatch.chdir(shop_root.parent)
    r = invoke(["list", "--output", "json"], env={"SQLASSETS_PROJECT": str(shop_root)})
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)["assets"]) == n


def test_help_lists_the_graph_commands() -> None:
    r = invoke(["--help"])
    assert r.exit_code == 0
    for cmd in ("graph", "list", "show"):
        assert re.search(rf"^\s+{cmd}\s", r.stdout, re.M)
    r = invoke(["graph", "--help"])
    assert r.exit_code == 0 and "--format" in r.stdout and "mermaid" in r.stdout


def test_installed_entry_point_in_a_real_process(shop_root: Path) -> None:
    exe = Path(sys.executable).parent / "sqlassets"
    assert exe.exists(), "the package must be installed with its console script"
    ok = subprocess.run([str(exe), "--project", str(shop_root), "graph", "--format", "json",
                         "--select", "fct_orders+"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert [a["key"] for a in json.loads(ok.stdout)["assets"]] == ["fct_orders", "customer_revenue", "customer_ltv",
                                                                   "ltv_segments"]
    bad = subprocess.run([str(exe), "--project", str(shop_root), "show", "no_such_asset"],
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1 and "no_such_asset" in bad.stderr


def test_global_options_may_follow_the_subcommand(shop_root: Path) -> None:
    """dbt users type `dbt run --project-dir X`; `sqlassets list --project X` works the same."""
    front = invoke(["--project", str(shop_root), "list", "-o", "json"])
    after = invoke(["list", "-o", "json", "--project", str(shop_root)])
    joined = invoke(["list", f"--project={shop_root}", "-s", "fct_orders", "stg_orders"])
    assert front.exit_code == after.exit_code == joined.exit_code == 0, after.stderr + joined.stderr
    assert json.loads(after.stdout) == json.loads(front.stdout)
    assert "fct_orders" in joined.stdout and "stg_orders" in joined.stdout
