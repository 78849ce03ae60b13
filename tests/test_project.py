"""Project discovery: profiles.yml found as dbt finds it, --target, env_var(), sqlassets.yml, zero config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import invoke

from sqlassets.errors import ConfigError
from sqlassets.project import find_profiles_dir, load_project

DBT_PROJECT = "name: proj\nversion: '1.0'\nconfig-version: 2\nprofile: proj\n"


def profiles(where: Path, tag: str) -> Path:
    """A profiles.yml whose dev output's DuckDB file is named after `tag`, so we can tell which was used."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "profiles.yml").write_text(
        "proj:\n  target: dev\n  outputs:\n"
        f"    dev:\n      type: duckdb\n      path: {tag}.duckdb\n      schema: main\n"
        f"    prod:\n      type: duckdb\n      path: /srv/{tag}_prod.duckdb\n      schema: analytics\n"
    )
    return where


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bare dbt project; HOME and DBT_PROFILES_DIR point nowhere unless a test sets them."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DBT_PROFILES_DIR", raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    (root / "dbt_project.yml").write_text(DBT_PROJECT)
    return root


def used(root: Path, **kw: object) -> str:
    p = load_project(root, **kw)
    return p.warehouse.path.stem if p.warehouse.path else ""


def test_profiles_discovery_order(proj: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home_dbt = profiles(tmp_path / "home" / ".dbt", "home")
    assert used(proj) == "home"
    assert load_project(proj).profiles_dir == home_dbt.resolve()
    profiles(proj, "projectdir")
    assert used(proj) == "projectdir"  # the project dir beats ~/.dbt
    env_dir = profiles(tmp_path / "envdir", "envvar")
    monkeypatch.setenv("DBT_PROFILES_DIR", str(env_dir))
    assert used(proj) == "envvar"  # DBT_PROFILES_DIR beats the project dir
    explicit = profiles(tmp_path / "explicit", "explicit")
    assert used(proj, profiles_dir=explicit) == "explicit"  # --profiles-dir beats everything


def test_env_profiles_dir_without_a_file_falls_through(proj: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBT_PROFILES_DIR", str(tmp_path / "empty"))
    profiles(proj, "projectdir")
    assert find_profiles_dir(proj, None) == proj.resolve()


def test_explicit_profiles_dir_must_hold_profiles_yml(proj: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="profiles.yml"):
        load_project(proj, profiles_dir=tmp_path / "empty")


def test_no_profiles_anywhere_defaults_to_duckdb_in_state_dir(proj: Path) -> None:
    p = load_project(proj)
    assert p.profiles_dir is None
    assert p.warehouse.type == "duckdb"
    assert p.warehouse.path == proj.resolve() / ".sqlassets" / "warehouse.duckdb"


def test_target_default_explicit_and_unknown(proj: Path) -> None:
    profiles(proj, "t")
    p = load_project(proj)
    assert p.target == "dev" and p.warehouse.path == proj.resolve() / "t.duckdb" and p.warehouse.schema == "main"
    p = load_project(proj, target="prod")
    assert p.target == "prod" and p.warehouse.path == Path("/srv/t_prod.duckdb")
    assert p.warehouse.schema == "analytics" and p.warehouse.database == "t_prod"
    with pytest.raises(ConfigError) as info:
        load_project(proj, target="staging")
    assert "staging" in str(info.value) and "dev" in str(info.value) and "prod" in str(info.value)


def test_env_var_rendering(proj: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (proj / "profiles.yml").write_text(
        "proj:\n  target: \"{{ env_var('PROJ_TARGET', 'dev') }}\"\n  outputs:\n"
        "    dev:\n      type: duckdb\n      path: \"{{ env_var('PROJ_DB') }}\"\n"
        "      schema: \"{{ env_var('PROJ_SCHEMA', 'main') }}\"\n"
        "    ci:\n      type: duckdb\n      path: ci.duckdb\n"
    )
    monkeypatch.setenv("PROJ_DB", str(proj / "from_env.duckdb"))
    p = load_project(proj)
    assert p.warehouse.path == proj / "from_env.duckdb" and p.warehouse.schema == "main"
    monkeypatch.setenv("PROJ_SCHEMA", "analytics")
    assert load_project(proj).warehouse.schema == "analytics"
    monkeypatch.setenv("PROJ_TARGET", "ci")
    assert load_project(proj).target == "ci"
    monkeypatch.delenv("PROJ_TARGET")
    monkeypatch.delenv("PROJ_DB")
    with pytest.raises(ConfigError, match="PROJ_DB"):
        load_project(proj)


def test_sqlassets_yml_settings(proj: Path, tmp_path: Path) -> None:
    (proj / "queries").mkdir()
    (proj / "more_sql").mkdir()
    (proj / "suites").mkdir()
    (proj / "sqlassets.yml").write_text(
        "sql_paths: [queries, more_sql]\nstate_dir: .state\nchecks_paths: suites\n"
        f"warehouse: {{type: duckdb, path: {tmp_path / 'override.duckdb'}}}\n"
    )
    profiles(proj, "ignored")
    p = load_project(proj)
    assert p.settings.sql_paths == ((proj / "queries").resolve(), (proj / "more_sql").resolve())
    assert p.state_dir == (proj / ".state").resolve()
    assert p.settings.checks_paths == ((proj / "suites").resolve(),)
    assert p.warehouse.path == tmp_path / "override.duckdb"  # sqlassets.yml overrides the dbt profile
    assert p.settings.raw["state_dir"] == ".state"


def test_state_dir_absolute(proj: Path, tmp_path: Path) -> None:
    (proj / "sqlassets.yml").write_text(f"state_dir: {tmp_path / 'elsewhere'}\n")
    assert load_project(proj).state_dir == (tmp_path / "elsewhere").resolve()


def test_zero_config_defaults(proj: Path) -> None:
    p = load_project(proj)
    assert p.name == "proj" and p.has_dbt and p.profile_name == "proj"
    assert p.settings.sql_paths == () and p.settings.checks_paths == ()
    assert p.state_dir == (proj / ".sqlassets").resolve()
    assert p.target_path == proj.resolve() / "target"
    (proj / "sql").mkdir()
    assert load_project(proj).settings.sql_paths == ((proj / "sql").resolve(),)  # sql/ is picked up by default


def test_target_path_from_dbt_project(proj: Path) -> None:
    (proj / "dbt_project.yml").write_text(DBT_PROJECT + "target-path: build\n")
    assert load_project(proj).target_path == proj.resolve() / "build"


def test_sqlassets_yml_without_dbt(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / "sql").mkdir(parents=True)
    (root / "sqlassets.yml").write_text("sql_paths: [sql]\n")
    p = load_project(root)
    assert not p.has_dbt and p.name == "plain" and p.dbt_config is None


def test_directory_with_nothing_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dbt_project.yml"):
        load_project(tmp_path)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_project(tmp_path / "nope")


def test_cli_target_and_profiles_dir_reach_the_loader(shop_copy: Path, tmp_path: Path) -> None:
    """`--target prod` re-parses for that target: relations come from the prod output."""
    pdir = tmp_path / "profiles"
    pdir.mkdir()
    (pdir / "profiles.yml").write_text(
        "shop:\n  target: dev\n  outputs:\n"
        "    dev:\n      type: duckdb\n      path: shop.duckdb\n      schema: main\n"
        "    prod:\n      type: duckdb\n      path: prod_wh.duckdb\n      schema: analytics\n"
    )
    r = invoke(["--project", str(shop_copy), "--profiles-dir", str(pdir), "--target", "prod",
                "list", "--select", "fct_orders", "--output", "json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["assets"][0]["relation"] == "prod_wh.analytics.fct_orders"
    # And back to dev: the manifest parsed for prod must not be reused.
    r = invoke(["--project", str(shop_copy), "--profiles-dir", str(pdir),
                "list", "--select", "fct_orders", "--output", "json"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["assets"][0]["relation"] == "shop.main.fct_orders"
