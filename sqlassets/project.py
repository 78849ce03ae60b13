"""Project discovery: dbt_project.yml, profiles.yml (found as dbt finds it), and optional sqlassets.yml.

A directory with only dbt_project.yml works with zero configuration. `sqlassets.yml` adds raw SQL
folders, the state dir and later settings:

    sql_paths: [sql]            # folders of plain .sql assets (default: ["sql"] if it exists)
    state_dir: .sqlassets       # state database, caches (default)
    checks_paths: [checks]      # Great Expectations suites
    warehouse: {type: duckdb, path: data/warehouse.duckdb}   # overrides the dbt profile
    state: {url: "{{ env_var('SQLASSETS_STATE_URL') }}"}     # shared PostgreSQL state (see run/state/config.py)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlassets.errors import ConfigError
from sqlassets.yamlio import load_yaml

SETTINGS_FILE = "sqlassets.yml"
DBT_PROJECT_FILE = "dbt_project.yml"


@dataclass(frozen=True)
class Settings:
    sql_paths: tuple[Path, ...] = ()
    state_dir: Path = Path(".sqlassets")
    checks_paths: tuple[Path, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Warehouse:
    """The connection the executor uses: the dbt profile's output, or a DuckDB file in the state dir."""

    type: str
    database: str | None = None
    schema: str = "main"
    path: Path | None = None  # DuckDB file
    # The profile output as dbt reads it: may hold secrets (password, private key, token), so it is
    # kept out of repr and never written anywhere; adapters read it through `connect_args`.
    options: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # ((database, schema) -> (database, schema)) pairs, lower-cased: every statement the adapter sends
    # reads and writes the second instead of the first. The CI gate uses it to build into a clone of
    # the production schema with SQL compiled for production.
    relocate: tuple[tuple[tuple[str, str], tuple[str, str]], ...] = ()


@dataclass(frozen=True)
class Project:
    root: Path
    name: str
    dbt_config: dict[str, Any] | None
    settings: Settings
    profiles_dir: Path | None
    profile_name: str | None
    target: str | None
    warehouse: Warehouse
    #: dbt vars (`vars:` in sqlassets.yml, then `--vars`), passed to every dbt parse / compile / test
    dbt_vars: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def has_dbt(self) -> bool:
        return self.dbt_config is not None

    @property
    def state_dir(self) -> Path:
        return self.settings.state_dir

    @property
    def target_path(self) -> Path:
        rel = (self.dbt_config or {}).get("target-path") or "target"
        return self.root / rel

    def dbt_paths(self, key: str, default: list[str]) -> list[Path]:
        """Folders dbt reads for `key` (model-paths, seed-paths, ...), resolved against the root."""
        value = (self.dbt_config or {}).get(key) or default
        if isinstance(value, str):
            value = [value]
        return [self.root / v for v in value]


def _as_paths(root: Path, value: Any, key: str, settings_path: Path) -> tuple[Path, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"'{key}' must be a folder or a list of folders", path=str(settings_path))
    return tuple((root / v).resolve() for v in value)


# Every key sqlassets.yml may hold. An unknown key is an error, never ignored: a typo such as
# `check_paths:` would otherwise silently turn a feature off. Add new settings here.
SETTINGS_KEYS = frozenset({"sql_paths", "state_dir", "checks_paths", "warehouse", "checks", "vars",
                           "openlineage", "schedules", "sensors", "freshness",  # these four: integrations
                           "state"})
CHECKS_KEYS = frozenset({"default_severity", "dbt_tests", "engine", "suites"})
# `warehouse:` keys per type: the dbt profile keys of that adapter (the block overrides the profile).
_COMMON_WAREHOUSE_KEYS = frozenset({"type", "database", "schema", "threads"})
WAREHOUSE_KEYS: dict[str, frozenset[str]] = {
    "duckdb": _COMMON_WAREHOUSE_KEYS | {
        "path", "extensions", "settings", "attach", "filesystems", "external_root", "plugins", "module_paths",
        "secrets", "disable_transactions", "keep_open", "config_options", "retries", "use_credential_provider"},
    "snowflake": _COMMON_WAREHOUSE_KEYS | {
        "account", "user", "password", "role", "warehouse", "authenticator", "private_key", "private_key_path",
        "private_key_passphrase", "token", "oauth_client_id", "oauth_client_secret", "client_session_keep_alive",
        "passcode", "query_tag", "connect_retries", "connect_timeout", "retry_on_database_errors", "retry_all",
        "reuse_connections", "insecure_mode", "host", "port", "protocol"},
    "bigquery": _COMMON_WAREHOUSE_KEYS | {
        "method", "project", "dataset", "keyfile", "keyfile_json", "location", "priority", "timeout_seconds",
        "job_execution_timeout_seconds", "job_creation_timeout_seconds", "job_retries",
        "job_retry_deadline_seconds", "maximum_bytes_billed", "impersonate_service_account", "execution_project",
        "token", "refresh_token", "client_id", "client_secret", "token_uri", "scopes", "api_endpoint", "row_counts"},
}


def _reject_unknown(raw: dict[str, Any], known: frozenset[str], what: str, path: Path) -> None:
    unknown = sorted(str(k) for k in set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown {what} {', '.join(unknown)}; known: {', '.join(sorted(known))}",
                          path=str(path))


def _check_warehouse_block(block: Any, path: Path) -> None:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise ConfigError("'warehouse' must be a mapping with a 'type'", path=str(path))
    known = WAREHOUSE_KEYS.get(block["type"])
    if known is None:
        raise ConfigError(f"unknown warehouse type '{block['type']}'; known: {', '.join(sorted(WAREHOUSE_KEYS))}",
                          path=str(path))
    _reject_unknown(block, known, f"key(s) under 'warehouse' ({block['type']}):", path)


def _load_settings(root: Path) -> Settings:
    path = root / SETTINGS_FILE
    raw: dict[str, Any] = {}
    if path.exists():
        loaded = load_yaml(path, what=SETTINGS_FILE)
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError("expected a mapping of settings at the top level", path=str(path))
        raw = loaded
    _reject_unknown(raw, SETTINGS_KEYS, "setting(s)", path)
    if isinstance(raw.get("checks"), dict):
        _reject_unknown(raw["checks"], CHECKS_KEYS, "key(s) under 'checks':", path)
    if raw.get("warehouse") is not None:
        _check_warehouse_block(raw["warehouse"], path)
    if raw.get("vars") is not None and not isinstance(raw["vars"], dict):
        raise ConfigError("'vars' must be a mapping of dbt vars, e.g. vars: {load_source_data: true}", path=str(path))
    sql_paths = _as_paths(root, raw.get("sql_paths"), "sql_paths", path)
    if "sql_paths" not in raw and (root / "sql").is_dir():
        sql_paths = ((root / "sql").resolve(),)
    for p in sql_paths:
        if not p.is_dir():
            raise ConfigError(f"sql_paths folder {p} does not exist; create it or fix sql_paths", path=str(path))
    checks_paths = _as_paths(root, raw.get("checks_paths"), "checks_paths", path)
    if "checks_paths" not in raw and (root / "checks").is_dir():
        checks_paths = ((root / "checks").resolve(),)
    for p in checks_paths if "checks_paths" in raw else ():
        # A typo here would silently turn every check off: as strict as sql_paths.
        if not p.is_dir():
            raise ConfigError(f"checks_paths folder {p} does not exist; create it or fix checks_paths",
                              path=str(path))
    from sqlassets.run.state.config import state_config

    state_config(raw.get("state"), path)  # a bad `state:` block fails every command, not only runs
    state = raw.get("state_dir", ".sqlassets")
    if not isinstance(state, str):
        raise ConfigError("'state_dir' must be a folder path", path=str(path))
    state_dir = Path(state) if os.path.isabs(state) else (root / state)
    if state_dir.exists() and not state_dir.is_dir():
        raise ConfigError(f"state_dir {state_dir} is a file, not a folder; point state_dir at a folder",
                          path=str(path))
    return Settings(sql_paths=sql_paths, state_dir=state_dir.resolve(), checks_paths=checks_paths, raw=raw)


def find_profiles_dir(root: Path, explicit: Path | None) -> Path | None:
    """As dbt: --profiles-dir, then DBT_PROFILES_DIR, then the project dir, then ~/.dbt."""
    if explicit is not None:
        if not (explicit / "profiles.yml").exists():
            raise ConfigError(f"no profiles.yml in --profiles-dir {explicit}")
        return explicit.resolve()
    env = os.environ.get("DBT_PROFILES_DIR")
    candidates = [Path(env)] if env else []
    candidates += [root, Path.home() / ".dbt"]
    for c in candidates:
        if (c / "profiles.yml").exists():
            return c.resolve()
    return None


_ENV_VAR = re.compile(r"\{\{\s*env_var\(\s*['\"]([^'\"]+)['\"]\s*(?:,\s*['\"]([^'\"]*)['\"]\s*)?\)\s*"
                      r"(?:\|\s*(as_number|int|as_text|string)\s*)?\}\}")


def _render_env(value: Any, path: Path) -> Any:
    """Render `{{ env_var('X', 'default') }}` as dbt does in profiles (with `| as_number` / `| int`, as
    dbt needs for `port`); other Jinja is left alone."""
    if isinstance(value, str) and "{{" in value:
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(f"env var {name} is not set and has no default; export it", path=str(path))

        whole = _ENV_VAR.fullmatch(value.strip())
        if whole is not None and whole.group(3) in ("as_number", "int"):
            text = sub(whole)
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"env var {whole.group(1)} must be a number, not {text!r}", path=str(path)) from None
        return _ENV_VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _render_env(v, path) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_env(v, path) for v in value]
    return value


def _resolve_warehouse(root: Path, settings: Settings, profiles_dir: Path | None, profile_name: str | None,
                       target: str | None) -> tuple[Warehouse, str | None]:
    override = settings.raw.get("warehouse")
    output: dict[str, Any] | None = None
    target_name = target
    if profiles_dir is not None and profile_name:
        ppath = profiles_dir / "profiles.yml"
        profiles = load_yaml(ppath, what="profiles.yml") or {}
        profile = profiles.get(profile_name) if isinstance(profiles, dict) else None
        if profile is None:
            if override is None and target is not None:
                raise ConfigError(f"profile '{profile_name}' not found; add it or fix 'profile' in dbt_project.yml",
                                  path=str(ppath))
        elif not isinstance(profile, dict) or not isinstance(profile.get("outputs"), dict):
            raise ConfigError(f"profile '{profile_name}' has no 'outputs' mapping", path=str(ppath))
        else:
            target_name = target or _render_env(profile.get("target"), ppath) or "dev"
            outputs = profile["outputs"]
            if target_name not in outputs:
                raise ConfigError(f"target '{target_name}' not in profile '{profile_name}' "
                                  f"(has: {', '.join(outputs)})", path=str(ppath))
            output = _render_env(outputs[target_name], ppath)
    if override is not None:
        if not isinstance(override, dict) or "type" not in override:
            raise ConfigError("'warehouse' must be a mapping with a 'type'", path=str(root / SETTINGS_FILE))
        output = dict(override)
    if output is None:
        return Warehouse(type="duckdb", path=settings.state_dir / "warehouse.duckdb"), target_name
    wtype = str(output.get("type", "duckdb"))
    path = None
    if wtype == "duckdb":
        raw_path = str(output.get("path", ":memory:"))
        if raw_path == ":memory:":
            path = settings.state_dir / "warehouse.duckdb"
        else:
            p = Path(os.path.expanduser(raw_path))
            path = p if p.is_absolute() else (root / p)
    database = output.get("database") or output.get("project") or (path.stem if path is not None else None)
    schema = str(output.get("schema") or output.get("dataset") or "main")
    return Warehouse(type=wtype, database=database, schema=schema, path=path, options=output), target_name


def load_project(directory: Path, *, profiles_dir: Path | None = None, target: str | None = None,
                 dbt_vars: str | dict[str, Any] | None = None) -> Project:
    """Discover a project in `directory`: dbt_project.yml and/or sqlassets.yml.

    `dbt_vars`: dbt vars as `--vars` takes them (a YAML / JSON mapping), over sqlassets.yml's `vars:`.
    """
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ConfigError(f"project directory {directory} does not exist; pass --project DIR")
    dbt_file = root / DBT_PROJECT_FILE
    dbt_config: dict[str, Any] | None = None
    if dbt_file.exists():
        loaded = load_yaml(dbt_file, what=DBT_PROJECT_FILE)
        if not isinstance(loaded, dict):
            raise ConfigError("expected a mapping at the top level", path=str(dbt_file))
        if not isinstance(loaded.get("name"), str):
            raise ConfigError("missing 'name'; every dbt project needs a name", path=str(dbt_file))
        dbt_config = loaded
    elif not (root / SETTINGS_FILE).exists():
        raise ConfigError(f"no {DBT_PROJECT_FILE} or {SETTINGS_FILE} in {root}; pass --project DIR")
    settings = _load_settings(root)
    name = dbt_config["name"] if dbt_config else root.name
    profile_name = (dbt_config or {}).get("profile") or (name if dbt_config else None)
    pdir = find_profiles_dir(root, profiles_dir)
    warehouse, target_name = _resolve_warehouse(root, settings, pdir, profile_name, target)
    return Project(root=root, name=name, dbt_config=dbt_config, settings=settings, profiles_dir=pdir,
                   profile_name=profile_name, target=target_name, warehouse=warehouse,
                   dbt_vars={**(settings.raw.get("vars") or {}), **_parse_vars(dbt_vars)})


def _parse_vars(value: str | dict[str, Any] | None) -> dict[str, Any]:
    """`--vars '{"load_source_data": true}'` (or `'load_source_data: true'`): a mapping, as dbt reads it."""
    if value is None or isinstance(value, dict):
        return dict(value or {})
    import yaml

    try:
        loaded = yaml.safe_load(value)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--vars is not YAML: {' '.join(str(exc).split())[:160]}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError("--vars must be a mapping, e.g. --vars '{\"load_source_data\": true}'")
    return loaded
