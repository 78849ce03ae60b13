"""Files only their owner can read, written atomically: how sqlassets writes its caches and scratch profiles.

A reader (another process, the next run) sees the old file or the new one, never half of one, and the file
is 0600 from its first byte: compiled SQL, catalogs and profiles can carry what the user did not mean to
share with other accounts on the machine.
"""
from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` (0600) through a temp file and a rename; str is written as UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)


def save_cache(path: Path, data: str | bytes) -> None:
    """`write_private` for a cache: a read-only state folder only costs the next run its shortcut."""
    try:
        write_private(path, data)
    except OSError:
        pass
