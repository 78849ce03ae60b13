"""Error types that the CLI turns into one-line messages with exit code 2.

Everything a user can fix (bad project files, bad selectors, bad partition keys) raises `UserError`
with a message that names the file / asset / partition and what to do. Anything else is a bug and
shows a traceback only under `--debug`.
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: the CLI prints `error: <message>` and exits 2 without writing anything."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        where = ""
        if path:
            where = f"{path}:{line}: " if line else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class ConfigError(UserError):
    """dbt_project.yml, profiles.yml, sqlassets.yml or a manifest that cannot be used."""


class SelectionError(UserError):
    """A selector that does not parse or names nothing that could exist."""


class GraphError(UserError):
    """A cycle, a duplicate key or a missing reference in the asset graph."""


class PartitionError(UserError):
    """A bad partition key, range or partitions spec."""
