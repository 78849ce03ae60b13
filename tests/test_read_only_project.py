"""A read-only project directory (a mounted checkout, a CI cache): read-only commands work, the others
say why in one line. Real processes with real file permissions; as root, permission bits are enforced by
dropping CAP_DAC_OVERRIDE with `setpriv` (util-linux), since root ignores them otherwise."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import copy_fixture, copy_parsed, tree

SETPRIV = shutil.which("setpriv")


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    if SETPRIV is None:
        if os.environ.get("CI") == "true":
            pytest.fail("setpriv (util-linux) is needed to test a read-only project as root")
        pytest.skip("running as root without setpriv: cannot make a directory read-only for us")
    return [SETPRIV, "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]


def _chmod_tree(root: Path, writable: bool) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames, "."]:
            p = Path(dirpath) / name
            mode = p.stat().st_mode
            p.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.fixture
def read_only() -> Iterator[list[Path]]:
    roots: list[Path] = []
    yield roots
    for r in roots:
        _chmod_tree(r, True)


def _run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_prefix(), sys.executable, "-m", "sqlassets", "--project", str(root), *args],
                          capture_output=True, text=True, timeout=300)


def test_never_parsed_read_only_dbt_project_lists_and_explains(tmp_path: Path, read_only: list[Path]) -> None:
    root = copy_fixture("shop", tmp_path / "shop")
    _chmod_tree(root, False)
    read_only.append(root)
    before = tree(root)
    r = _run(root, "list")
    assert r.returncode == 0, r.stderr
    assert "fct_orders" in r.stdout and "Traceback" not in r.stderr
    assert tree(root) == before


def test_parsed_read_only_project(tmp_path: Path, shop_root: Path, read_only: list[Path]) -> None:
    root = copy_parsed(shop_root, tmp_path / "shop")
    _chmod_tree(root, False)
    read_only.append(root)
    before = tree(root)
    for args in (["graph"], ["status"], ["show", "fct_orders"], ["runs"], ["materialize", "--dry-run"]):
        r = _run(root, *args)
        assert r.returncode == 0, (args, r.stderr)
    for args in (["materialize"], ["lineage", "fct_orders.order_id"]):
        r = _run(root, *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
        assert "state_dir" in lines[0] and "writ" in lines[0]
    assert tree(root) == before
