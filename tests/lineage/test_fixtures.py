"""Table-driven SQL coverage: every fixtures/<name>.sql is resolved and compared with fixtures/<name>.yml.

The YAML beside each query gives the upstream tables (asset -> columns, null when unknown), an
optional `relations:` map (db.schema.table -> asset) and the expected lineage. Edge sets are
compared exactly, so a missing edge and an extra (wrong) edge both fail.

    lineage:     {column: ["asset.column kind", ...]}    exact set per column
    unresolved:  {column or "*": substring of the reason}
    notes:       {column: substring of the best-effort note}
    inferred:    {asset: [columns seen on an asset whose columns are unknown]}
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sqlassets.lineage.build import resolve_asset

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.stem for p in FIXTURES.glob("*.sql"))


def _load(name: str) -> tuple[str, dict]:
    sql = (FIXTURES / f"{name}.sql").read_text()
    spec = yaml.safe_load((FIXTURES / f"{name}.yml").read_text())
    return sql, spec


def _run(name: str):
    sql, spec = _load(name)
    tables = {k: (tuple(v) if v is not None else None) for k, v in (spec.get("tables") or {}).items()}
    index = {k.lower(): v for k, v in (spec.get("relations") or {}).items()}
    for key in tables:
        index.setdefault(key.lower(), key)
    rec = resolve_asset(name, "model", sql, spec.get("dialect", "duckdb"), tables, index)
    return rec, spec["expect"]


def test_every_fixture_has_expectations():
    assert len(CASES) >= 25
    for name in CASES:
        assert (FIXTURES / f"{name}.yml").exists(), f"{name}.sql has no {name}.yml"


@pytest.mark.parametrize("name", CASES)
def test_fixture(name: str) -> None:
    rec, expect = _run(name)
    if "columns" in expect:
        assert list(rec.columns) == expect["columns"]
    got: dict[str, set[str]] = {c: set() for c in rec.columns}
    for col, up_asset, up_col, kind in rec.edges:
        got.setdefault(col, set()).add(f"{up_asset}.{up_col} {kind}")
    for col, edges in (expect.get("lineage") or {}).items():
        assert got.get(col, set()) == set(edges), f"{name}: lineage of '{col}'"
    expected_unresolved = expect.get("unresolved") or {}
    for col, fragment in expected_unresolved.items():
        assert col in rec.unresolved, f"{name}: '{col}' should be unresolved; got {rec.unresolved}"
        assert fragment in rec.unresolved[col], rec.unresolved[col]
    # nothing is unresolved that the fixture does not expect: no silent gaps either way
    assert set(rec.unresolved) == set(expected_unresolved), rec.unresolved
    for col, fragment in (expect.get("notes") or {}).items():
        assert fragment in rec.notes.get(col, ""), f"{name}: note of '{col}': {rec.notes.get(col)}"
    if "inferred" in expect:
        assert {k: sorted(v) for k, v in rec.inferred.items()} == {k: sorted(v) for k, v in expect["inferred"].items()}
    if "reads" in expect:
        assert sorted(rec.reads) == sorted(expect["reads"])


def test_columns_without_notes_are_certain():
    """A fixture with every upstream column declared produces no best-effort notes at all."""
    for name in CASES:
        rec, expect = _run(name)
        _, spec = _load(name)
        if all(v is not None for v in (spec.get("tables") or {}).values()) and not expect.get("notes"):
            assert not rec.notes, f"{name}: unexpected guesses {rec.notes}"


def test_inferred_columns_are_carried_through_select_star_assets() -> None:
    """`stg = select * from src` (src columns unknown), `mart` reads stg.id: src.id is inferred, stg.id <- src.id."""
    from sqlassets.lineage.graph import ColumnGraph

    stg = resolve_asset("stg", "model", "with s as (select * from src) select * from s", "duckdb", {"src": None},
                        {"src": "src"})
    assert stg.star_source == "src" and "*" in stg.unresolved
    mart = resolve_asset("mart", "model", "select id, upper(name) as name from stg", "duckdb", {"stg": None},
                         {"stg": "stg"})
    cg = ColumnGraph.build([stg, mart])
    up = {r.column: r.edge for r in cg.walk(cg.resolve("mart.name"), "upstream")}
    assert up == {"stg.name": "transform", "src.name": "copy"}
    assert cg.info[cg.resolve("src.name")].status == "inferred"
    assert cg.info[cg.resolve("mart.name")].status == "inferred"  # one hop from an inferred column
