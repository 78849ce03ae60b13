"""Running dbt in-process, one way for every caller (parse, compile models, compile tests).

dbt is imported only here and only when a command really needs it (~1.5 s). Every invocation is
quiet, sends no telemetry, keeps its logs out of the project tree, and turns a failure into one
`ConfigError` line, because a dbt failure is a project problem the user fixes.

Two things here exist for safety rather than speed:
- scratch profiles keep the user's `{{ env_var(...) }}` expressions as written: dbt renders them from
  the environment at run time, so no secret is ever written to disk (files are 0600 besides);
- `dbt_lock` serializes dbt invocations that touch the scratch DuckDB file across processes (two
  runs compiling at once would otherwise fail on DuckDB's file lock).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import ConfigError
from sqlassets.private_files import write_private

if TYPE_CHECKING:
    from sqlassets.project import Project

QUIET_FLAGS = (
    "--log-level", "none",
    "--log-level-file", "none",
    "--quiet",
    "--no-send-anonymous-usage-stats",
    "--no-version-check",
)
_THREAD_LOCK = threading.RLock()
_HELD: dict[int, bool] = {}


def _lock_path(project: Project) -> Path:
    """Outside the project (a refused command leaves nothing in it), one per state dir."""
    import hashlib
    import tempfile

    digest = hashlib.sha256(str(project.state_dir.resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"sqlassets-dbt-{digest}.lock"


@contextlib.contextmanager
def dbt_lock(project: Project) -> Iterator[None]:
    """One dbt invocation at a time: across threads (dbt's globals) and processes (the scratch DuckDB file).

    A file lock per state dir (in the temp dir); a second run waits for the first, then finds its work
    in the cache.
    """
    import fcntl

    with _THREAD_LOCK:
        if _HELD.get(0):  # re-entered by the thread holding it: the file lock is already ours
            yield
            return
        fd = os.open(_lock_path(project), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _HELD[0] = True
            yield
        finally:
            _HELD[0] = False
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


@contextlib.contextmanager
def _empty_warehouse_offline() -> Iterator[None]:
    """Offline (`--no-introspect`) model compiles: `adapter.list_relations` answers "no tables", not an error.

    `is_incremental()` looks its own table up (`adapter.get_relation`) before it asks whether this is a
    full refresh, so on a warehouse nobody can reach every incremental model failed to compile although
    sqlassets compiles with `--full-refresh`, where the answer is False whatever exists. An unreachable
    warehouse is compiled as an empty one: existence checks say "not there" (the full-refresh branch);
    macros that need columns or rows (`dbt_utils.star`, `get_column_values`, date spines) still fail
    and are reported as needing a live warehouse. Restored on exit.
    """
    from dbt.adapters.base.impl import BaseAdapter

    saved = BaseAdapter.__dict__["list_relations"]
    BaseAdapter.list_relations = lambda self, database, schema: []  # type: ignore[method-assign]
    try:
        yield
    finally:
        BaseAdapter.list_relations = saved  # type: ignore[method-assign]


#: answers `adapter.get_columns_in_relation` offline: (relation, compiling node's unique_id) -> column names,
#: or None when they are not known (the model then fails as needing a live warehouse)
ColumnsAnswer = Callable[[Any, str], "list[str] | None"]


@contextlib.contextmanager
def _columns_known_offline(adapter_type: str, answer: ColumnsAnswer) -> Iterator[None]:
    """Offline compiles: `adapter.get_columns_in_relation` (what dbt_utils.star, get_filtered_columns_in_relation
    and union_relations read) answered from columns the project already knows (see
    `sqlassets.dbt.compile.compile_with_known_columns`) instead of a query nobody can run. A relation whose
    columns are not known raises, as the unreachable warehouse would. Restored on exit.
    """
    import importlib

    from dbt.adapters.base.impl import BaseAdapter
    from dbt_common.exceptions import DbtRuntimeError

    with contextlib.suppress(ImportError):  # the plugin's class must exist to be patched
        importlib.import_module(f"dbt.adapters.{adapter_type}.impl")

    from dbt.task.compile import CompileRunner

    compiling = threading.local()  # the node this thread compiles (offline, dbt names no connection after it)
    saved_compile = CompileRunner.__dict__["compile"]

    def compile_node(self: Any, manifest: Any) -> Any:
        compiling.node = self.node.unique_id
        try:
            return saved_compile(self, manifest)
        finally:
            compiling.node = ""

    def get_columns_in_relation(self: Any, relation: Any) -> list[Any]:
        names = answer(relation, getattr(compiling, "node", ""))
        if names is None:
            raise DbtRuntimeError(
                f"the columns of {relation} are not known offline (adapter.get_columns_in_relation needs the "
                "warehouse)")
        return [self.Column.create(name, "varchar") for name in names]

    todo, classes = [BaseAdapter], []
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if "get_columns_in_relation" in cls.__dict__:
            classes.append((cls, cls.__dict__["get_columns_in_relation"]))
    for cls, _ in classes:
        cls.get_columns_in_relation = get_columns_in_relation  # type: ignore[method-assign]
    CompileRunner.compile = compile_node  # type: ignore[method-assign]
    try:
        yield
    finally:
        CompileRunner.compile = saved_compile  # type: ignore[method-assign]
        for cls, saved in classes:
            cls.get_columns_in_relation = saved  # type: ignore[method-assign]


@contextlib.contextmanager
def _compile_each_node_on_its_own() -> Iterator[None]:
    """dbt's compile task stops at the first failing node and skips its children; make it go on.

    `CompileTask.raise_on_first_error()` is True, so one model whose macro needs a live warehouse
    takes the whole compile down, and `MARK_DEPENDENT_ERRORS_STATUSES` skips every descendant of a
    failed node although a `ref()` to a table compiles fine. For sqlassets each node's result stands on
    its own (children of a failed *ephemeral* model fail with their own error, since they inline it).
    Restored on exit; dbt runs one invocation at a time (`dbt_lock`).
    """
    from dbt.task.compile import CompileTask

    saved = CompileTask.__dict__.get("raise_on_first_error"), CompileTask.__dict__.get(
        "MARK_DEPENDENT_ERRORS_STATUSES")
    CompileTask.raise_on_first_error = lambda self: False  # type: ignore[method-assign]
    CompileTask.MARK_DEPENDENT_ERRORS_STATUSES = []
    try:
        yield
    finally:
        for name, value in zip(("raise_on_first_error", "MARK_DEPENDENT_ERRORS_STATUSES"), saved, strict=True):
            if value is None:
                with contextlib.suppress(AttributeError):
                    delattr(CompileTask, name)
            else:
                setattr(CompileTask, name, value)


def with_user_vars(project: Project, args: list[str]) -> list[str]:
    """`args` with the project's dbt vars merged into its `--vars` (sqlassets' own vars, the window
    sentinels, win), or added: every parse, compile and test sees the same vars, as `dbt --vars` would."""
    if not project.dbt_vars:
        return list(args)
    import json

    out = list(args)
    if "--vars" in out:
        i = out.index("--vars") + 1
        out[i] = json.dumps({**project.dbt_vars, **json.loads(out[i])}, sort_keys=True, default=str)
    else:
        out += ["--vars", json.dumps(project.dbt_vars, sort_keys=True, default=str)]
    return out


def invoke(project: Project, command: str, args: list[str], *, profiles_dir: Path, log_dir: Path,
           what: str, per_node: bool = False, columns: ColumnsAnswer | None = None) -> Any:
    """Run `dbt <command>` on the project; return dbt's result or raise a one-line ConfigError.

    `per_node=True` (compile): node failures do not stop the run; the result is returned with each
    node's status, and only a failure of the whole invocation (parse error, bad profile) raises.
    `columns`: an offline compile answers `adapter.get_columns_in_relation` with it (`_columns_known_offline`).
    """
    os.environ.setdefault("DBT_SEND_ANONYMOUS_USAGE_STATS", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    from dbt.cli.main import dbtRunner

    argv = [command, "--project-dir", str(project.root), "--profiles-dir", str(profiles_dir),
            "--log-path", str(log_dir), *QUIET_FLAGS, *with_user_vars(project, args)]
    if project.profile_name:
        argv += ["--profile", project.profile_name]
    if project.target:
        argv += ["--target", project.target]
    # the models' compile (`--full-refresh`: is_incremental() is False whatever exists), offline
    offline = per_node and "--no-introspect" in args and "--full-refresh" in args
    with _compile_each_node_on_its_own() if per_node else contextlib.nullcontext(), \
            _empty_warehouse_offline() if offline else contextlib.nullcontext(), \
            _columns_known_offline(project.warehouse.type, columns) if offline and columns is not None \
            else contextlib.nullcontext():
        try:
            result = dbtRunner().invoke(argv)
        finally:
            _release_duckdb()
    if per_node and result.exception is None and result.result is not None:
        return result
    if not result.success:
        exc = result.exception
        if isinstance(exc, KeyboardInterrupt):
            # dbtRunner catches Ctrl-C and returns it as a failure; it is the user stopping us, not dbt failing.
            raise type(exc)() from None  # (a SIGTERM stays a SIGTERM: sqlassets.run.signals.Terminated)
        message = " ".join(str(exc).split())[:400] if exc else ""
        if not message and result.result is not None:
            errors = [f"{r.node.name}: {' '.join(str(r.message).split())[:200]}" for r in result.result
                      if getattr(r, "status", None) in ("error", "fail")]
            message = "; ".join(errors[:3])
        raise ConfigError(f"{what} failed: {message or 'see the dbt logs in ' + str(log_dir)}")
    return result


def _release_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open between invocations in this process.

    dbt-duckdb holds its environment (and the file, here the scratch database) in a class attribute after
    an invocation returns. Left open, the next use of that file in this process sees the old file (the
    scratch is rebuilt by replacing it) or is refused ("already attached": a run attaches the scratch to
    its own warehouse session to refresh it, see `compile.compile_in_run`). Private dbt-duckdb names,
    guarded: another version only loses this cleanup.
    """
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:
        return
    lock = getattr(DuckDBConnectionManager, "_LOCK", None)
    with lock if lock is not None else contextlib.nullcontext():
        env = getattr(DuckDBConnectionManager, "_ENV", None)
        if env is None:
            return
        DuckDBConnectionManager._ENV = None
    with contextlib.suppress(Exception):
        env.close()


def compiled_code(result: Any) -> dict[str, str]:
    """unique_id -> compiled SQL from a `dbt compile` result."""
    return {res.node.unique_id: res.node.compiled_code for res in (result.result or [])
            if getattr(res.node, "compiled_code", None) is not None and str(getattr(res, "status", "")) != "error"}


def node_errors(result: Any) -> dict[str, str]:
    """unique_id -> dbt's one-line message, for every node that failed to compile."""
    out: dict[str, str] = {}
    for res in result.result or []:
        if str(getattr(res, "status", "")) in ("error", "skipped"):
            text = " ".join(str(res.message or "").split())
            out[res.node.unique_id] = text[:400] or str(res.status)
    return out


def _raw_output(project: Project) -> dict[str, Any] | None:
    """The profile output as written (Jinja such as `env_var()` unrendered), or None."""
    from sqlassets.yamlio import load_yaml

    if project.settings.raw.get("warehouse") is not None:
        return dict(project.settings.raw["warehouse"])
    if project.profiles_dir is None or not project.profile_name:
        return None
    profiles = load_yaml(project.profiles_dir / "profiles.yml", what="profiles.yml") or {}
    profile = profiles.get(project.profile_name) if isinstance(profiles, dict) else None
    outputs = (profile or {}).get("outputs") if isinstance(profile, dict) else None
    if not isinstance(outputs, dict):
        return None
    output = outputs.get(project.target or "dev")
    return dict(output) if isinstance(output, dict) else None



def scratch_db(project: Project, base: Path) -> Path | None:
    """The scratch DuckDB file dbt compiles against (named like the warehouse, so relations match)."""
    wh = project.warehouse
    if wh.type != "duckdb" or wh.path is None:
        return None
    return base / "db" / wh.path.name


def scratch_profiles(project: Project, base: Path, *, write_to: Path | None = None) -> Path | None:
    """A profiles.yml in `base` whose DuckDB path is a scratch file named like the warehouse.

    Compiling must never open (and lock) the real warehouse; the scratch file keeps the database
    name, so compiled relations are the same. Every other setting is copied as written in the user's
    profiles.yml: `{{ env_var('S3_SECRET') }}` stays an expression that dbt renders from the
    environment, so the secret never lands on disk.
    """
    if project.warehouse.type == "bigquery":
        return _bigquery_profiles(project, write_to or base)
    scratch = scratch_db(project, base)
    if scratch is None:
        return None
    import yaml

    output = _raw_output(project) or {}
    output.update({"type": "duckdb", "path": str(scratch), "threads": 1})
    target = project.target or "dev"
    profile = project.profile_name or project.name
    folder = write_to or base
    if write_to is None:
        scratch.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(folder / "profiles.yml", yaml.safe_dump({profile: {"target": target, "outputs": {target: output}}}))
    return folder


def _bigquery_profiles(project: Project, folder: Path) -> Path:
    """dbt-bigquery builds a client (so needs credentials) even for `compile --no-introspect`: compile with
    the user's project/dataset/location and a throwaway key (see `compile_profile_output`), so compiling
    needs no Google login and the user's own secrets are never written."""
    import yaml

    from sqlassets.adapters.bigquery import compile_profile_output

    output = compile_profile_output(project.warehouse.options or {}, key_file=project.state_dir / "compile-only.pem")
    target = project.target or "dev"
    profile = project.profile_name or project.name
    write_private(folder / "profiles.yml", yaml.safe_dump({profile: {"target": target, "outputs": {target: output}}}))
    return folder
