"""AssetGraph: validation (cycles, duplicates, missing deps), topological order, walks, relation lookup."""

from __future__ import annotations

import re

import pytest

from sqlassets.errors import GraphError, UserError
from sqlassets.graph import AssetGraph
from sqlassets.model import Asset, Relation
from sqlassets.selection import select_keys


def node(key: str, *deps: str, kind: str = "model", path: str | None = None,
         relation: Relation | None = None) -> Asset:
    return Asset(key=key, kind=kind, relation=relation or Relation("db", "main", key), materialization="view",
                 deps=deps, path=path)


def diamond() -> AssetGraph:
    #   a -> b -> d -> e
    #   a -> c -> d
    return AssetGraph([node("e", "d"), node("d", "b", "c"), node("c", "a"), node("b", "a"), node("a")])


def test_topological_order_parents_first_and_stable() -> None:
    g = diamond()
    assert g.topo_order == ["a", "b", "c", "d", "e"]
    pos = {k: i for i, k in enumerate(g.topo_order)}
    for a in g:
        assert all(pos[d] < pos[a.key] for d in a.deps)
    assert [a.key for a in g] == g.topo_order == g.keys
    # Same graph, assets given in another order: same topological order.
    assert AssetGraph(reversed(list(diamond()))).topo_order == g.topo_order


def test_topo_order_on_a_wide_graph_is_valid() -> None:
    assets = [node(f"n{i:03d}", *(f"n{j:03d}" for j in range(max(0, i - 3), i) if (i + j) % 2)) for i in range(300)]
    g = AssetGraph(reversed(assets))
    pos = {k: i for i, k in enumerate(g.topo_order)}
    assert len(pos) == 300
    assert all(pos[d] < pos[a.key] for a in g for d in a.deps)


def test_parents_children_upstream_downstream_with_depth() -> None:
    g = diamond()
    assert g.parents("d") == ("b", "c")
    assert set(g.children("a")) == {"b", "c"}
    assert g.children("e") == ()
    assert g.upstream("e") == {"a", "b", "c", "d"}
    assert g.upstream("e", depth=1) == {"d"}
    assert g.upstream("e", depth=2) == {"d", "b", "c"}
    assert g.downstream("a") == {"b", "c", "d", "e"}
    assert g.downstream("a", depth=1) == {"b", "c"}
    assert g.downstream("a", depth=0) == set()
    assert g.upstream("a") == set() and g.downstream("e") == set()


def test_sort_and_subgraph() -> None:
    g = diamond()
    assert g.sort(["e", "a", "c"]) == ["a", "c", "e"]
    sub = g.subgraph(["c", "d", "e"])
    assert sub.topo_order == ["c", "d", "e"]
    assert sub["d"].deps == ("c",)  # b dropped: outside the subgraph
    assert len(sub) == 3 and "a" not in sub


def test_cycle_error_names_the_cycle_in_order() -> None:
    # x -> y -> z -> x, plus a healthy branch hanging off it
    with pytest.raises(GraphError) as info:
        AssetGraph([node("ok"), node("x", "z", "ok"), node("y", "x"), node("z", "y"), node("after", "z")])
    msg = str(info.value)
    assert "\n" not in msg
    m = re.search(r"([\w.]+(?: -> [\w.]+)+)", msg)
    assert m, msg
    chain = m.group(1).split(" -> ")
    assert chain[0] == chain[-1]
    assert set(chain[:-1]) == {"x", "y", "z"} and len(chain) == 4
    # each step goes from a parent to its child
    deps = {"x": {"z"}, "y": {"x"}, "z": {"y"}}
    for parent, child in zip(chain, chain[1:], strict=False):
        assert parent in deps[child], f"{parent} -> {child} is not an edge in {chain}"
    assert "ok" not in chain and "after" not in chain


def test_self_cycle() -> None:
    with pytest.raises(GraphError, match=r"self_ref -> self_ref"):
        AssetGraph([node("self_ref", "self_ref")])


def test_two_node_cycle_reports_both() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("p", "q"), node("q", "p")])
    assert re.search(r"\b(p -> q -> p|q -> p -> q)\b", str(info.value))


def test_duplicate_key_names_both_places() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("orders", path="models/orders.sql"), node("orders", kind="sql", path="sql/orders.sql")])
    msg = str(info.value)
    assert "orders" in msg and "models/orders.sql" in msg and "sql/orders.sql" in msg
    assert isinstance(info.value, UserError)


def test_missing_dependency_names_asset_and_dep() -> None:
    with pytest.raises(GraphError) as info:
        AssetGraph([node("a"), node("b", "a", "ghost", path="models/b.sql")])
    msg = str(info.value)
    assert "'b'" in msg and "ghost" in msg and "models/b.sql" in msg


def test_unknown_key_lookup_is_a_user_error() -> None:
    g = diamond()
    with pytest.raises(GraphError, match="nope"):
        g["nope"]
    assert g.get("nope") is None and "nope" not in g
    with pytest.raises(GraphError):
        g.upstream("nope")


def test_by_relation_case_insensitive_and_ambiguity() -> None:
    g = AssetGraph([
        node("orders", relation=Relation("wh", "main", "orders")),
        node("raw.orders", kind="source", relation=Relation("wh", "raw", "orders")),
        node("customers", relation=Relation("wh", "main", "Customers")),
    ])
    assert g.by_relation("WH.MAIN.ORDERS").key == "orders"
    assert g.by_relation("raw.orders").key == "raw.orders"
    assert g.by_relation("orders") is None  # two assets have the bare identifier
    assert g.by_relation("customers").key == "customers"
    assert g.by_relation("other.thing") is None


def test_empty_graph() -> None:
    g = AssetGraph([])
    assert len(g) == 0 and g.topo_order == [] and select_keys(g) == []
