"""In-process dbt invocations: failures become one-line errors, Ctrl-C stays Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from sqlassets.dbt import invoke as dbt_invoke
from sqlassets.errors import ConfigError
from sqlassets.project import load_project

PROFILE = "p:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n      path: wh.duckdb\n      threads: 1\n"


def _project(root: Path, model: str) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "dbt_project.yml").write_text("name: p\nversion: '1.0'\nprofile: p\n")
    (root / "profiles.yml").write_text(PROFILE)
    (root / "models" / "m.sql").write_text(model)
    return root


def test_a_dbt_error_is_one_line_config_error(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", "select {{ ref('nope') }}")
    project = load_project(root)
    with pytest.raises(ConfigError) as info:
        dbt_invoke.invoke(project, "parse", [], profiles_dir=root, log_dir=tmp_path / "logs", what="dbt parse")
    assert "dbt parse failed" in str(info.value) and "\n" not in str(info.value)


def test_ctrl_c_inside_dbt_is_an_interrupt_not_a_dbt_failure(tmp_path: Path) -> None:
    """dbtRunner catches KeyboardInterrupt and returns it as a failed result; we must re-raise it."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("needs the main thread to receive SIGINT")
    root = _project(tmp_path / "p", "select 1 as x")
    project = load_project(root)
    # A cold parse takes well over a second; the signal lands inside dbtRunner.invoke.
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            dbt_invoke.invoke(project, "parse", [], profiles_dir=root, log_dir=tmp_path / "logs", what="dbt parse")
    finally:
        timer.cancel()
