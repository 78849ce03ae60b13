"""Shared fixtures: copies of the fixture projects under tests/fixtures, parsed by real dbt once per session.

`dbt parse` takes seconds, so each fixture project is copied and loaded once per test session
(session-scoped). Tests that change a project work on a function-scoped copy of the *parsed* project:
`shutil.copytree` keeps mtimes, so the copied target/manifest.json stays newer than every project
file and the loader takes the fast path until the test edits a dbt file.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

# a real PostgreSQL server per session, for the state-store tests (see tests/pg_server.py)
from pg_server import pg_schema, pg_server  # noqa: E402,F401

from sqlassets.graph import AssetGraph

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REPO = FIXTURES.parent.parent
SAMPLE_PROJECT = REPO / "sample_project"
# Never copied from the fixture sources: products of a run, not of the project.
_RUN_ARTIFACTS = ("target", ".sqlassets", "logs", "*.duckdb", "*.duckdb.wal", "__pycache__")


@pytest.fixture(autouse=True, scope="session")
def _isolated_dbt_env() -> Iterator[None]:
    """Keep the developer's ~/.dbt and DBT_* settings out of the tests; dbt must not phone home."""
    saved = {k: os.environ.get(k) for k in ("DBT_PROFILES_DIR", "DBT_TARGET", "DBT_PROJECT_DIR")}
    for k in saved:
        os.environ.pop(k, None)
    os.environ["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
    os.environ["DO_NOT_TRACK"] = "1"
    yield
    for k, v in saved.items():
        if v is not None:
            os.environ[k] = v


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy tests/fixtures/<name> to dest (without run artifacts) and return dest."""
    shutil.copytree(FIXTURES / name, dest, ignore=shutil.ignore_patterns(*_RUN_ARTIFACTS))
    return dest


def write_project(root: Path, files: dict[str, str], events_sql: str | None = None, db: str = "wh.duckdb") -> Path:
    """Write a small project ({relative path: text}) and, with `events_sql`, run it on a new DuckDB file
    (typically `create schema raw; create table raw.events as ...`)."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    if events_sql is not None:
        import duckdb

        con = duckdb.connect(str(root / db))
        try:
            con.execute(events_sql)
        finally:
            con.close()
    return root


def copy_parsed(src: Path, dest: Path) -> Path:
    """Copy an already-loaded project, target/ and state included, keeping mtimes (manifest stays fresh)."""
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("*.duckdb", "*.duckdb.wal"))
    return dest


def load(root: Path, **kwargs: object) -> AssetGraph:
    """load_project + load_graph, as the CLI does."""
    from sqlassets.loaders import load_graph
    from sqlassets.project import load_project

    return load_graph(load_project(root, **kwargs))


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """{relative path: (size, mtime_ns)} of every file and folder under root: a before/after snapshot."""
    out: dict[str, tuple[int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[p.relative_to(root).as_posix()] = (0 if p.is_dir() else st.st_size, st.st_mtime_ns)
    return out


@dataclass(frozen=True)
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def invoke(args: Sequence[str], *, env: dict[str, str | None] | None = None, input: str | None = None
           ) -> CliResult:
    """Run `sqlassets.cli.main(args)` inside click's CliRunner isolation; return code and both streams.

    `main` is the installed entry point (UserError -> `error: ...`, exit 2), so this is what users
    get, minus the process start. Any other exception propagates and fails the test with its traceback.
    """
    from sqlassets.cli import main

    runner = CliRunner()
    code = 0
    with runner.isolation(input=input, env=env) as (out, err, _mixed):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return CliResult(code, stdout, stderr)


# -- session-scoped parsed projects -------------------------------------------------------------


@pytest.fixture(scope="session")
def shop_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/shop copied once and loaded once (real `dbt parse`); later loads hit the fast path."""
    root = copy_fixture("shop", tmp_path_factory.mktemp("shop") / "shop")
    load(root)
    assert (root / "target" / "manifest.json").exists()
    return root


@pytest.fixture(scope="session")
def shop_graph(shop_root: Path) -> AssetGraph:
    return load(shop_root)


@pytest.fixture
def shop_copy(shop_root: Path, tmp_path: Path) -> Path:
    """A private copy of the parsed shop project for tests that change files."""
    return copy_parsed(shop_root, tmp_path / "shop")


@pytest.fixture(scope="session")
def sql_only_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/fixtures/sql_only: no dbt_project.yml, only sqlassets.yml and SQL files."""
    return copy_fixture("sql_only", tmp_path_factory.mktemp("sql_only") / "sql_only")


@pytest.fixture
def sql_only_copy(tmp_path: Path) -> Path:
    return copy_fixture("sql_only", tmp_path / "sql_only")


def _sample_ready() -> bool:
    return (SAMPLE_PROJECT / "dbt_project.yml").exists() and (SAMPLE_PROJECT / "models").is_dir()


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A parsed copy of sample_project/ (copied so the tests never write into the repository)."""
    if not _sample_ready():
        pytest.skip("sample_project/ is not there yet")
    root = tmp_path_factory.mktemp("sample") / "sample_project"
    shutil.copytree(SAMPLE_PROJECT, root, ignore=shutil.ignore_patterns(*_RUN_ARTIFACTS, "data"))
    load(root)
    return root


@pytest.fixture(scope="session")
def sample_graph(sample_root: Path) -> AssetGraph:
    return load(sample_root)


@pytest.fixture(scope="session")
def bq_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The BigQuery emulator (bqemulator in .venv-bqemu), started once per session: see bqemu_harness."""
    from bqemu_harness import start_emulator

    yield from start_emulator(tmp_path_factory.mktemp("bqemu"))
