"""The files a dbt project is built from, for freshness checks and cache keys.

Three callers need them: the loader (is target/manifest.json newer than every project file?), the
compile cache (which macros and models could change a model's compiled SQL?) and the dbt-test cache.
One walk, with folders read from dbt_project.yml (`model-paths`, `macro-paths`, ...) as dbt does.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlassets.project import Project

TOP_LEVEL_FILES = ("dbt_project.yml", "packages.yml", "dependencies.yml", "selectors.yml")
FOLDER_DEFAULTS = {
    "model-paths": ["models"],
    "seed-paths": ["seeds"],
    "snapshot-paths": ["snapshots"],
    "macro-paths": ["macros"],
    "test-paths": ["tests"],
    "analysis-paths": ["analyses"],
}
_SKIP_DIRS = frozenset({"target", "logs", ".git", "__pycache__"})


def iter_project_files(project: Project, folder_keys: Iterable[str], *, packages: bool = True,
                       include_dirs: bool = False) -> Iterator[str]:
    """Paths of the top-level dbt files and of everything under the given folders (and dbt_packages).

    `include_dirs` also yields the folders themselves: a deleted file changes only its folder's mtime.
    """
    for name in TOP_LEVEL_FILES:
        path = project.root / name
        if path.exists():
            yield str(path)
    folders = [p for key in folder_keys for p in project.dbt_paths(key, FOLDER_DEFAULTS[key])]
    if packages:
        folders.append(project.root / ((project.dbt_config or {}).get("packages-install-path") or "dbt_packages"))
    stack = [str(f) for f in folders if f.is_dir()]
    while stack:
        folder = stack.pop()
        if include_dirs:
            yield folder
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name not in _SKIP_DIRS:
                        stack.append(entry.path)
                else:
                    yield entry.path


def newest_mtime(paths: Iterable[str]) -> float:
    return max((os.stat(p).st_mtime for p in paths), default=0.0)


def stat_digest(paths: Iterable[str]) -> str:
    """A digest of (path, mtime, size) for every path, in a stable order: cheap, and any edit changes it."""
    h = hashlib.sha256()
    for path in sorted(paths):
        st = os.stat(path)
        h.update(f"{path}:{st.st_mtime_ns}:{st.st_size}\n".encode())
    return h.hexdigest()
