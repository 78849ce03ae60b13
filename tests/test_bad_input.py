"""Bad-input corpus: every case must give exit code 2, exactly one `error: ...` line on stderr naming the
file / asset, no traceback, nothing on stdout, and nothing written to the project.

Each case builds its own broken project (a copy of a fixture, then one edit) and says which words the
error line must contain. "Nothing written" is checked by snapshotting the whole project tree (paths,
sizes, mtimes) before and after the command. A failed `dbt parse` must not leave a manifest behind that
a later run would trust, so dbt cases also run the command a second time and expect the same error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from conftest import copy_fixture, copy_parsed, invoke, tree
from state_bad_cases import STATE_CASES


@dataclass
class Case:
    root: Path
    argv: list[str]
    mentions: tuple[str, ...]  # substrings the error line must contain (file, line, asset, ...)
    dbt_parse: bool = False  # the failure comes out of a real `dbt parse`
    # reads a WAL state.db: SQLite makes and removes its -wal/-shm beside it (the folder's mtime moves;
    # every file, state.db included, must still be as it was)
    reads_wal_state: bool = False


Builder = Callable[[Path, Path], Case]


def _sql_only(tmp: Path) -> Path:
    return copy_fixture("sql_only", tmp / "proj")


def _shop(tmp: Path, shop_root: Path) -> Path:
    return copy_parsed(shop_root, tmp / "shop")


def _edit_dbt_file(path: Path, text: str) -> None:
    """Write a dbt project file so it is newer than the manifest (the loader must parse again)."""
    time.sleep(0.01)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _sql(tmp: Path, name: str, text: str) -> Case:
    root = _sql_only(tmp)
    (root / "sql" / name).write_text(text)
    return Case(root, ["list"], (f"sql/{name}",))


# -- raw SQL files -------------------------------------------------------------------------------------


def bad_materialized(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "bad_mat.sql", "-- name: bad_mat\n-- materialized: tabel\nselect 1 as x\n")
    c.mentions += ("sql/bad_mat.sql:2", "tabel")
    return c


def unknown_header_key(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "unk.sql", "-- owner: me@example.com\n-- partition_by: day\nselect 1 as x\n")
    c.mentions += ("sql/unk.sql:2", "partition_by")
    return c


def header_name_not_identifier(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "n.sql", "-- name: daily revenue\nselect 1 as x\n")
    c.mentions += ("sql/n.sql:1", "daily revenue")
    return c


def header_key_twice(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "twice.sql", "-- name: a_one\n-- tags: x\n-- name: a_two\nselect 1 as x\n")
    c.mentions += ("sql/twice.sql:3", "name")
    return c


def bad_partitioned_value(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "p.sql", "-- partitioned: fortnightly\nselect 1 as x\n")
    c.mentions += ("sql/p.sql:1", "fortnightly")
    return c


def unknown_dialect(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "d.sql", "-- dialect: oracle9000\nselect 1 as x\n")
    c.mentions += ("sql/d.sql:1", "oracle9000")
    return c


def unparseable_sql(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "broken.sql", "-- name: broken\nselect a,\n  b\nfrom t where (x = 1\n")
    c.mentions += ("sql/broken.sql:4",)  # the line of the unclosed parenthesis
    return c


def unparseable_sql_later_line(tmp: Path, shop: Path) -> Case:
    body = "-- name: later\nselect\n  a,\n  b\nfrom t\nwhere a = 1\n  and b in (select from)\n"
    c = _sql(tmp, "later.sql", body)
    c.mentions += ("sql/later.sql:7",)
    return c


def two_statements(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "two.sql", "select 1 as x;\nselect 2 as y;\n")
    c.mentions += ("sql/two.sql",)
    return c


def not_a_select(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "ddl.sql", "create table x as select 1 as a\n")
    c.mentions += ("sql/ddl.sql",)
    return c


def empty_sql_file(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "empty.sql", "-- name: empty\n-- owner: me@example.com\n")
    c.mentions += ("sql/empty.sql",)
    return c


def file_stem_not_identifier(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "my-report.sql", "select 1 as x\n")
    c.mentions += ("my-report",)
    return c


def not_utf8(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sql" / "latin1.sql").write_bytes("-- description: café\nselect 1 as x\n".encode("latin-1"))
    return Case(root, ["list"], ("sql/latin1.sql",))


def duplicate_sql_keys(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "orders_copy.sql", "-- name: orders_clean\nselect 1 as x\n")
    c.mentions += ("orders_clean", "sql/orders_clean.sql")
    return c


def cycle_between_sql_assets(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sql" / "loop_a.sql").write_text("select * from loop_b\n")
    (root / "sql" / "loop_b.sql").write_text("select * from loop_c\n")
    (root / "sql" / "loop_c.sql").write_text("select * from loop_a\n")
    return Case(root, ["graph"], ("cycle", "loop_a", "loop_b", "loop_c"))


def sql_asset_on_a_source_table(tmp: Path, shop: Path) -> Case:
    """A raw SQL file writing the table of the dbt source raw.orders would overwrite the source."""
    root = _shop(tmp, shop)
    (root / "sql" / "orders.sql").write_text("-- name: orders\n-- schema: raw\nselect 1 as order_id\n")
    return Case(root, ["materialize", "-s", "orders"], ("sql/orders.sql", "models/_sources.yml", "raw.orders"))


def names_differing_only_in_case(tmp: Path, shop: Path) -> Case:
    """DuckDB compares identifiers case-insensitively: Daily and daily are one table."""
    root = _sql_only(tmp)
    (root / "sql" / "Daily.sql").write_text("select 1 as x\n")
    (root / "sql" / "daily.sql").write_text("select 2 as x\n")
    return Case(root, ["materialize", "-s", "daily"], ("sql/Daily.sql", "sql/daily.sql"))


def sql_nested_3000_deep(tmp: Path, shop: Path) -> Case:
    c = _sql(tmp, "deep.sql", "select " + "(" * 3000 + "1" + ")" * 3000 + " as x\n")
    c.mentions += ("nested too deeply",)
    return c


# -- settings and project files -------------------------------------------------------------------------


def checks_paths_missing(tmp: Path, shop: Path) -> Case:
    """A typo in checks_paths would silently turn every check off."""
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nchecks_paths: [nope]\n")
    return Case(root, ["check"], ("sqlassets.yml", "checks_paths", "nope"))


def unknown_warehouse_key(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nwarehouse: {type: duckdb, pth: w.duckdb}\n")
    return Case(root, ["list"], ("sqlassets.yml", "warehouse", "pth"))


def unknown_warehouse_type(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nwarehouse: {type: duckbd}\n")
    return Case(root, ["list"], ("sqlassets.yml", "duckbd"))


def unknown_checks_key(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nchecks: {default_severty: warning}\n")
    return Case(root, ["materialize"], ("sqlassets.yml", "default_severty"))


def state_dir_is_a_file(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nstate_dir: state\n")
    (root / "state").write_text("not a folder\n")
    return Case(root, ["materialize"], ("sqlassets.yml", "state_dir", "state"))




def malformed_sqlassets_yml(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql\nstate_dir: .x\n")
    return Case(root, ["list"], ("sqlassets.yml",))


def unknown_setting(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\nsql_path: [other]\n")
    return Case(root, ["list"], ("sqlassets.yml", "sql_path"))


def missing_sql_folder(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    (root / "sqlassets.yml").write_text("sql_paths: [sql, queries]\n")
    return Case(root, ["list"], ("sqlassets.yml", "queries"))


def malformed_dbt_project_yml(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    (root / "dbt_project.yml").write_text("name: shop\nversion: '1.0'\nprofile: shop\nmodels:\n  shop:\n"
                                          "    +materialized: [view\n")
    return Case(root, ["list"], ("dbt_project.yml:",))


def dbt_project_without_name(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    (root / "dbt_project.yml").write_text("version: '1.0'\nconfig-version: 2\nprofile: shop\n")
    return Case(root, ["list"], ("dbt_project.yml", "name"))


def malformed_profiles_yml(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    (root / "profiles.yml").write_text("shop:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: x.duckdb\n")
    return Case(root, ["list"], ("profiles.yml",))


def unknown_target(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    return Case(root, ["--target", "prdo", "list"], ("profiles.yml", "prdo"))


def profile_env_var_missing(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    (root / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        "      path: \"{{ env_var('SQLASSETS_TEST_UNSET_VAR') }}\"\n")
    return Case(root, ["list"], ("profiles.yml", "SQLASSETS_TEST_UNSET_VAR"))


def nonexistent_project_dir(tmp: Path, shop: Path) -> Case:
    tmp.joinpath("empty").mkdir()
    return Case(tmp / "empty", ["--project", str(tmp / "empty" / "nope"), "list"], ("nope",))


def dir_without_any_project(tmp: Path, shop: Path) -> Case:
    root = tmp / "nothing"
    root.mkdir()
    (root / "README.md").write_text("not a project\n")
    return Case(root, ["list"], ("dbt_project.yml", "nothing"))


# -- manifests -------------------------------------------------------------------------------------------


def _manifest_case(tmp: Path, shop: Path, mutate: Callable[[bytes], bytes]) -> Case:
    root = _shop(tmp, shop)
    path = root / "target" / "manifest.json"
    st = path.stat()
    path.write_bytes(mutate(path.read_bytes()))
    # Keep it "fresh": the loader must read it (not re-parse) and reject it.
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    stamp = root / ".sqlassets" / "dbt_parse.json"
    if stamp.exists():
        stamp.unlink()
    return Case(root, ["list"], ("target/manifest.json",))


def _with_version(v: int) -> Callable[[bytes], bytes]:
    def mutate(raw: bytes) -> bytes:
        data = orjson.loads(raw)
        data["metadata"]["dbt_schema_version"] = f"https://schemas.getdbt.com/dbt/manifest/v{v}.json"
        return orjson.dumps(data)

    return mutate


def manifest_v9(tmp: Path, shop: Path) -> Case:
    c = _manifest_case(tmp, shop, _with_version(9))
    c.mentions += ("v9",)
    return c


def manifest_v13(tmp: Path, shop: Path) -> Case:
    c = _manifest_case(tmp, shop, _with_version(13))
    c.mentions += ("v13",)
    return c


def manifest_truncated(tmp: Path, shop: Path) -> Case:
    return _manifest_case(tmp, shop, lambda raw: raw[: len(raw) // 2])


def manifest_not_a_manifest(tmp: Path, shop: Path) -> Case:
    return _manifest_case(tmp, shop, lambda raw: b'{"hello": "world"}')


def manifest_without_schema_version(tmp: Path, shop: Path) -> Case:
    def mutate(raw: bytes) -> bytes:
        data = orjson.loads(raw)
        del data["metadata"]["dbt_schema_version"]
        return orjson.dumps(data)

    return _manifest_case(tmp, shop, mutate)


def manifest_depends_on_string(tmp: Path, shop: Path) -> Case:
    def mutate(raw: bytes) -> bytes:
        data = orjson.loads(raw)
        node = next(n for n in data["nodes"].values() if n.get("resource_type") == "model")
        node["depends_on"] = "model.shop.stg_orders"
        return orjson.dumps(data)

    c = _manifest_case(tmp, shop, mutate)
    c.mentions += ("depends_on",)
    return c


def manifest_depends_on_nodes_string(tmp: Path, shop: Path) -> Case:
    def mutate(raw: bytes) -> bytes:
        data = orjson.loads(raw)
        node = next(n for n in data["nodes"].values() if n.get("resource_type") == "model")
        node["depends_on"] = {"nodes": "model.shop.stg_orders"}
        return orjson.dumps(data)

    c = _manifest_case(tmp, shop, mutate)
    c.mentions += ("depends_on",)
    return c


# -- dbt parse failures ------------------------------------------------------------------------------------


def missing_ref(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    _edit_dbt_file(root / "models" / "marts" / "broken.sql", "select * from {{ ref('stg_nope') }}\n")
    return Case(root, ["list"], ("models/marts/broken.sql", "stg_nope"), dbt_parse=True)


def jinja_syntax_error(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    _edit_dbt_file(root / "models" / "marts" / "bad_jinja.sql", "select * from {{ ref('stg_orders') \n")
    return Case(root, ["list"], ("bad_jinja",), dbt_parse=True)


def malformed_schema_yml(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    _edit_dbt_file(root / "models" / "marts" / "_broken.yml", "version: 2\nmodels:\n  - name: fct_orders\n"
                   "    columns: [\n")
    return Case(root, ["list"], ("_broken.yml",), dbt_parse=True)


def first_parse_fails(tmp: Path, shop: Path) -> Case:
    """Never parsed before (no target/, no state dir) and the first `dbt parse` fails."""
    root = copy_fixture("shop", tmp / "fresh")
    (root / "models" / "marts" / "broken.sql").write_text("select * from {{ ref('stg_nope') }}\n")
    return Case(root, ["list"], ("models/marts/broken.sql", "stg_nope"), dbt_parse=True)


def duplicate_key_sql_vs_dbt(tmp: Path, shop: Path) -> Case:
    root = _shop(tmp, shop)
    (root / "sql" / "stg_orders.sql").write_text("select 1 as order_id\n")
    return Case(root, ["list"], ("stg_orders", "sql/stg_orders.sql", "models/staging/stg_orders.sql"))


# -- selectors and commands -------------------------------------------------------------------------------


def _cli_case(tmp: Path, shop: Path, argv: list[str], *mentions: str) -> Case:
    return Case(_shop(tmp, shop), argv, mentions)


def unknown_selector_method(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["list", "--select", "colour:red"], "colour")


def selector_digits_plus_only(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["list", "--select", "3+"], "3+")


def selector_double_plus(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["graph", "--select", "++fct_orders"], "++fct_orders")


def selector_unknown_name(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["graph", "--select", "fct_ordres+"], "fct_ordres")


def exclude_unknown_kind(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["list", "--exclude", "kind:view"], "view")


def show_unknown_asset(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["show", "fct_order"], "fct_order")


def bad_format_value(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["graph", "--format", "xml"], "xml")


def bad_output_value(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["list", "--output", "yaml"], "yaml")


def unknown_command(tmp: Path, shop: Path) -> Case:
    return _cli_case(tmp, shop, ["grpah"], "grpah")


def bad_partition_key(tmp: Path, shop: Path) -> Case:
    """Refused before anything is written: not even a state database."""
    root = _sql_only(tmp)
    return Case(root, ["materialize", "--partitions", "2024-13-01"], ("2024-13-01",))


def resume_unknown_backfill(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    return Case(root, ["backfill", "resume", "7"], ("backfill 7",))


def full_refresh_with_a_range(tmp: Path, shop: Path) -> Case:
    root = _sql_only(tmp)
    return Case(root, ["materialize", "--full-refresh", "--partitions", "2024-01-01..2024-01-02"],
                ("--full-refresh",))


CASES: list[Builder] = [
    bad_materialized, unknown_header_key, header_name_not_identifier, header_key_twice, bad_partitioned_value,
    unknown_dialect, unparseable_sql, unparseable_sql_later_line, two_statements, not_a_select, empty_sql_file,
    file_stem_not_identifier, not_utf8, duplicate_sql_keys, cycle_between_sql_assets,
    malformed_sqlassets_yml, unknown_setting, missing_sql_folder, malformed_dbt_project_yml,
    dbt_project_without_name, malformed_profiles_yml, unknown_target, profile_env_var_missing,
    nonexistent_project_dir, dir_without_any_project,
    manifest_v9, manifest_v13, manifest_truncated, manifest_not_a_manifest, manifest_without_schema_version,
    manifest_depends_on_string, manifest_depends_on_nodes_string,
    sql_asset_on_a_source_table, names_differing_only_in_case, sql_nested_3000_deep,
    checks_paths_missing, unknown_warehouse_key, unknown_warehouse_type, unknown_checks_key, state_dir_is_a_file,
    missing_ref, jinja_syntax_error, malformed_schema_yml, first_parse_fails, duplicate_key_sql_vs_dbt,
    unknown_selector_method, selector_digits_plus_only, selector_double_plus, selector_unknown_name,
    exclude_unknown_kind, show_unknown_asset, bad_format_value, bad_output_value, unknown_command,
    bad_partition_key, resume_unknown_backfill, full_refresh_with_a_range,
]


CASES += STATE_CASES  # bad state databases: tests/state_bad_cases.py


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("build", CASES, ids=[c.__name__ for c in CASES])
def test_bad_input(build: Builder, tmp_path: Path, shop_root: Path) -> None:
    case = build(tmp_path, shop_root)
    argv = case.argv if "--project" in case.argv else ["--project", str(case.root), *case.argv]
    before = tree(case.root)
    r = invoke(argv)
    assert r.exit_code == 2, (r.exit_code, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{r.stderr}"
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    for m in case.mentions:
        assert m in line, f"{m!r} not in {line!r}"
    assert r.stdout == "", f"nothing on stdout for an error, got {r.stdout[:200]!r}"
    after = tree(case.root)
    if case.reads_wal_state:
        before.pop(".sqlassets", None)
        after.pop(".sqlassets", None)
    assert after == before, _diff(before, after)
    if case.dbt_parse:
        # The failed parse left nothing that a second run would trust: same error again.
        again = invoke(argv)
        assert again.exit_code == 2 and again.stderr == r.stderr


def _diff(before: dict, after: dict) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return f"project changed: added={added} removed={removed} changed={changed}"


def test_debug_flag_shows_the_traceback(tmp_path: Path, shop_root: Path) -> None:
    """`--debug` re-raises the UserError so a developer sees where it came from."""
    from sqlassets.errors import UserError

    case = show_unknown_asset(tmp_path, shop_root)
    with pytest.raises(UserError):
        from sqlassets.cli import main

        main(["--debug", "--project", str(case.root), *case.argv])
