"""Which state store a project uses: the `state:` block of sqlassets.yml.

    state:
      url: "{{ env_var('SQLASSETS_STATE_URL') }}"   # postgresql://user:pw@host:5432/db ; omit for SQLite
      schema: sqlassets                              # PostgreSQL schema holding the tables (default)
      lease_ttl: 60                                  # seconds a lease outlives its last heartbeat

Without `url`, the state is `state.db` (SQLite) in `state_dir`. The URL must come from an environment
variable: a literal URL in sqlassets.yml would put a password in the repository, so it is refused.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import ConfigError
from sqlassets.run.state.leases import DEFAULT_TTL, MIN_TTL

if TYPE_CHECKING:
    from sqlassets.project import Project
    from sqlassets.run.state.store import StateStore

_ENV = re.compile(r"^\s*\{\{\s*env_var\(\s*['\"]([A-Za-z_][A-Za-z0-9_]*)['\"]\s*\)\s*\}\}\s*$")
KEYS = ("url", "schema", "lease_ttl")


@dataclass(frozen=True)
class StateConfig:
    url_env: str | None = None  # the environment variable holding the PostgreSQL URL
    schema: str = "sqlassets"
    lease_ttl: float = DEFAULT_TTL


def state_config(raw: Any, settings_path: Path) -> StateConfig:
    if raw is None:
        return StateConfig()
    where = str(settings_path)
    if not isinstance(raw, dict):
        raise ConfigError("'state' must be a mapping (url, schema, lease_ttl)", path=where)
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(str, unknown))} under 'state'; known: {', '.join(KEYS)}",
                          path=where)
    url_env = None
    if raw.get("url") is not None:
        m = _ENV.match(str(raw["url"]))
        if not m:
            raise ConfigError("state url must come from an environment variable, as "
                              "url: \"{{ env_var('SQLASSETS_STATE_URL') }}\" (a URL written here would put "
                              "its password in the repository)", path=where)
        url_env = m.group(1)
    schema = raw.get("schema", "sqlassets")
    if not isinstance(schema, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", schema):
        raise ConfigError(f"state schema {schema!r} must be a plain identifier (letters, digits, _)", path=where)
    ttl = raw.get("lease_ttl", DEFAULT_TTL)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl < MIN_TTL:
        raise ConfigError(f"state lease_ttl must be a number of seconds >= {MIN_TTL:g}, got {ttl!r}", path=where)
    return StateConfig(url_env=url_env, schema=schema, lease_ttl=float(ttl))


def project_state_config(project: Project) -> StateConfig:
    from sqlassets.project import SETTINGS_FILE

    return state_config(project.settings.raw.get("state"), project.root / SETTINGS_FILE)


def make_backend(project: Project, config: StateConfig | None = None) -> Any:
    from sqlassets.project import SETTINGS_FILE

    cfg = config or project_state_config(project)
    if cfg.url_env is None:
        from sqlassets.run.state.sqlite import SQLiteBackend

        return SQLiteBackend(project.state_dir)
    url = os.environ.get(cfg.url_env)
    if not url:
        raise ConfigError(f"env var {cfg.url_env} (the state url) is not set; export it, e.g. "
                          f"{cfg.url_env}=postgresql://user:password@host:5432/db",
                          path=str(project.root / SETTINGS_FILE))
    if not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(f"env var {cfg.url_env} must hold a postgresql:// URL (SQLite needs no url: "
                          "leave it out)", path=str(project.root / SETTINGS_FILE))
    from sqlassets.run.state.postgres import PostgresBackend

    return PostgresBackend(url, cfg.schema)


def target_key(project: Project) -> str:
    """Where the project's target writes, as the state keys it: `type:location/database/schema`.

    State is per target because `--target dev` and `--target prod` write different relations: a dev
    backfill must not make prod look done. The key is where the relations live, not the target's name:
    two targets writing the same schema do share data, so they share records, and renaming a target in
    profiles.yml loses nothing. Location: the Snowflake account (or host:port of a local fake), the
    BigQuery endpoint when one is set, the DuckDB file's absolute path (two checkouts writing one file
    share its records; a CI copy of the file does not; moving the project folder makes its DuckDB
    partitions look missing, so they are rebuilt rather than wrongly skipped). A relocated warehouse
    (the CI gate building into a clone) is its own target.
    """
    wh = project.warehouse
    o = wh.options
    if wh.type == "duckdb":
        where = Path(wh.path).resolve().as_posix() if wh.path is not None else ":memory:"
    elif o.get("host") or o.get("api_endpoint"):
        where = str(o.get("api_endpoint") or f"{o.get('host')}:{o.get('port') or ''}")
    else:
        where = str(o.get("account") or "")
    key = f"{wh.type}:{where}/{wh.database or ''}/{wh.schema or ''}"
    if wh.relocate:
        key += " relocated " + ",".join(f"{a}.{b}->{c}.{d}" for (a, b), (c, d) in wh.relocate)
    return key.lower() if wh.type != "duckdb" else key


def open_state(project: Project, *, readonly: bool = False, history: bool = False) -> StateStore:
    """The project's state store, scoped to its target (`target_key`). `history`: may mark crashed runs,
    never creates a database."""
    from sqlassets.run.state.store import StateStore

    cfg = project_state_config(project)
    backend = make_backend(project, cfg)
    target = target_key(project)
    if history:
        return StateStore(backend=backend, readonly=not backend.exists(), lease_ttl=cfg.lease_ttl, create=False,
                          target=target)
    return StateStore(backend=backend, readonly=readonly, lease_ttl=cfg.lease_ttl, target=target)
