"""YAML reading with errors that name the file and line (PyYAML's C loader when available)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from sqlassets.errors import ConfigError

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: Path, *, what: str = "YAML file") -> Any:
    """Parse one YAML file; a syntax error becomes a ConfigError naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}", path=str(path)) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"malformed {what}: {problem}; fix the YAML syntax", path=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed {what}: {exc}", path=str(path)) from None
