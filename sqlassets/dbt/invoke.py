"""Running dbt in-process, one way for every caller (parse, compile models, compile tests).

dbt is imported only here and only when a command really needs it (~1.5 s). Every invocation is
quiet, sends no telemetry, keeps its logs out of the project tree, and turns a failure into one
`ConfigError` line, because a dbt failure is a project problem the user fixes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import ConfigError

if TYPE_CHECKING:
    from sqlassets.project import Project

QUIET_FLAGS = (
    "--log-level", "none",
    "--log-level-file", "none",
    "--quiet",
    "--no-send-anonymous-usage-stats",
    "--no-version-check",
)


def invoke(project: Project, command: str, args: list[str], *, profiles_dir: Path, log_dir: Path,
           what: str) -> Any:
    """Run `dbt <command>` on the project; return dbt's result or raise a one-line ConfigError."""
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from dbt.cli.main import dbtRunner

    argv = [command, "--project-dir", str(project.root), "--profiles-dir", str(profiles_dir),
            "--log-path", str(log_dir), *QUIET_FLAGS, *args]
    if project.profile_name:
        argv += ["--profile", project.profile_name]
    if project.target:
        argv += ["--target", project.target]
    result = dbtRunner().invoke(argv)
    if not result.success:
        exc = result.exception
        if isinstance(exc, KeyboardInterrupt):
            # dbtRunner catches Ctrl-C and returns it as a failure; it is the user stopping us, not dbt failing.
            raise KeyboardInterrupt from None
        message = " ".join(str(exc).split())[:400] if exc else ""
        if not message and result.result is not None:
            errors = [f"{r.node.name}: {' '.join(str(r.message).split())[:200]}" for r in result.result
                      if getattr(r, "status", None) in ("error", "fail")]
            message = "; ".join(errors[:3])
        raise ConfigError(f"{what} failed: {message or 'see the dbt logs in ' + str(log_dir)}")
    return result


def compiled_code(result: Any) -> dict[str, str]:
    """unique_id -> compiled SQL from a `dbt compile` result."""
    return {res.node.unique_id: res.node.compiled_code for res in (result.result or [])
            if getattr(res.node, "compiled_code", None) is not None}


def scratch_profiles(project: Project, base: Path) -> Path | None:
    """A profiles.yml in `base` whose DuckDB path is a scratch file named like the warehouse.

    Compiling must never open (and lock) the real warehouse; the scratch file keeps the database
    name, so compiled relations are the same.
    """
    wh = project.warehouse
    if wh.type != "duckdb" or wh.path is None:
        return None
    import yaml

    scratch = base / "db" / wh.path.name
    scratch.parent.mkdir(parents=True, exist_ok=True)
    output = dict(wh.options or {})
    output.update({"type": "duckdb", "path": str(scratch), "threads": 1})
    target = project.target or "dev"
    profile = project.profile_name or project.name
    (base / "profiles.yml").write_text(
        yaml.safe_dump({profile: {"target": target, "outputs": {target: output}}}), encoding="utf-8")
    return base
