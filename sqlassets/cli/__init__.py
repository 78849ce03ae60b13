"""The `sqlassets` command line.

Subcommands live in their own modules and are imported only when invoked, so `sqlassets --help`
stays fast: nothing here imports dbt, sqlglot, GX, pandas or a warehouse SDK.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

# command name -> "module:attribute"; each module imports its heavy dependencies lazily too.
COMMANDS: dict[str, tuple[str, str]] = {
    "graph": ("sqlassets.cli.graph_cmds:graph", "Show the asset graph (text, json, dot, mermaid)."),
    "list": ("sqlassets.cli.graph_cmds:list_cmd", "List selected assets."),
    "show": ("sqlassets.cli.graph_cmds:show", "Show one asset in detail."),
    "materialize": ("sqlassets.cli.run_cmds:materialize", "Build assets and fill missing or stale partitions."),
    "backfill": ("sqlassets.cli.run_cmds:backfill", "Fill partitions as a resumable backfill."),
    "status": ("sqlassets.cli.run_cmds:status", "Done / failed / missing / stale partitions per asset."),
    "runs": ("sqlassets.cli.run_cmds:runs", "Run history, or one run's steps and logs."),
    "lineage": ("sqlassets.cli.lineage_cmds:lineage", "Column-level lineage, stats and the HTML report."),
    "check": ("sqlassets.cli.check_cmds:check", "Run asset checks (Great Expectations, dbt tests)."),
    "ci": ("sqlassets.cli.check_cmds:ci", "CI gate: build what changed against production, run checks."),
    "ui": ("sqlassets.cli.ui_cmds:ui", "Local web UI: asset graph, partitions, runs, checks, lineage."),
    "schedule": ("sqlassets.cli.schedule_cmds:schedule", "Run declared schedules and sensors in the foreground."),
    "state": ("sqlassets.cli.state_cmds:state", "The run-state store: info, migrate, export, import."),
    "unlock": ("sqlassets.cli.state_cmds:unlock", "Clear a run's lease on an asset by hand."),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                return None
            raise

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Listing commands from the table keeps `sqlassets --help` from importing any of them.
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="SQLASSETS_PROJECT",
    help="Project directory (default: the current directory).",
)
@click.option("--profiles-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where profiles.yml is (default as dbt: DBT_PROFILES_DIR, the project dir, ~/.dbt).")
@click.option("--target", default=None, help="dbt target (default: the profile's target).")
@click.option("--vars", "dbt_vars", default=None, metavar="YAML",
              help="dbt vars, as dbt's --vars takes them (over sqlassets.yml's `vars:`).")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="sqlassets")
@click.pass_context
def cli(ctx: click.Context, project_dir: Path | None, profiles_dir: Path | None, target: str | None,
        dbt_vars: str | None, debug: bool) -> None:
    """Software-defined assets for dbt projects and plain SQL files."""
    from sqlassets.cli.context import CliContext

    ctx.obj = CliContext(project_dir=project_dir or Path.cwd(), profiles_dir=profiles_dir, target=target,
                         dbt_vars=dbt_vars, debug=debug)


SELECTOR_OPTIONS = ("--select", "-s", "--exclude")


def join_selector_args(args: list[str]) -> list[str]:
    """`-s a b --all` -> `-s "a b" --all`: selector options take several words, as in dbt.

    click options take one value each; dbt users type `--select a b` daily, and a space already means
    union inside one selector string, so the words that follow (up to the next option) are joined.
    """
    out: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        out.append(tok)
        i += 1
        if tok == "--":
            out.extend(args[i:])
            break
        if tok in SELECTOR_OPTIONS and i < len(args) and not args[i].startswith("-"):
            words = [args[i]]
            i += 1
            while i < len(args) and not args[i].startswith("-"):
                words.append(args[i])
                i += 1
            out.append(" ".join(words))
    return out


# Commands that only read the project and print: nothing to flush or close but stdout/stderr.
READ_ONLY_COMMANDS = frozenset({"graph", "list", "show"})


def _command_of(args: list[str]) -> str | None:
    return next((a for a in args if a in COMMANDS), None)


def _exit_without_teardown() -> None:
    """Exit now instead of freeing every object one by one.

    A 5,000-model manifest is millions of small objects, and CPython's teardown spends ~0.2 s
    freeing them after the output is already written (40% of `graph`). Used only for read-only
    commands in a real process (not under CliRunner), after flushing what was printed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


GLOBAL_OPTIONS = ("--project", "--profiles-dir", "--target", "--vars")  # each takes one value
GLOBAL_FLAGS = ("--debug",)


def hoist_global_options(args: list[str]) -> list[str]:
    """`sqlassets graph --project X` -> `sqlassets --project X graph`, as dbt takes `--project-dir` anywhere.

    No subcommand defines these names, so moving them in front of the subcommand is unambiguous.
    """
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if tok == "--":
            rest.extend(args[i:])
            break
        name = tok.split("=", 1)[0]
        if name in GLOBAL_OPTIONS:
            if "=" in tok or i + 1 >= len(args):
                front.append(tok)
                i += 1
            else:
                front += [tok, args[i + 1]]
                i += 2
            continue
        if tok in GLOBAL_FLAGS:
            front.append(tok)
        else:
            rest.append(tok)
        i += 1
    return front + rest


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line and exit 2; tracebacks only with --debug."""
    from sqlassets.errors import UserError

    args = join_selector_args(hoist_global_options(list(sys.argv[1:] if argv is None else argv)))
    # Nothing sqlassets writes (state, logs, caches, reports, scratch profiles) is world-readable.
    os.umask(os.umask(0o077) | 0o007)
    debug = "--debug" in args or os.environ.get("SQLASSETS_DEBUG") == "1"
    from sqlassets.dbt import manifest_cache
    from sqlassets.run.signals import exit_code_for, sigterm_as_interrupt

    manifest_cache.defer_writes()  # a refused command writes nothing, not even a cache
    try:
        with sigterm_as_interrupt():
            cli.main(args=args, prog_name="sqlassets", standalone_mode=False)
        manifest_cache.flush()
        if argv is None and _command_of(args) in READ_ONLY_COMMANDS and "multiprocessing" not in sys.modules:
            # (after an in-process `dbt parse`, dbt's multiprocessing semaphores need the normal exit)
            _exit_without_teardown()
    except UserError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns a KeyboardInterrupt (Ctrl-C, or SIGTERM as `Terminated`) into Abort.
        cause = exc.__cause__ or exc.__context__
        click.echo("interrupted" if isinstance(cause, KeyboardInterrupt) else "aborted", err=True)
        sys.exit(exit_code_for(cause))
    except click.UsageError as exc:
        # One line like every other user error; `sqlassets COMMAND --help` has the usage.
        hint = f" (see 'sqlassets {exc.ctx.command_path.split(' ', 1)[1]} --help')" if exc.ctx and " " in \
            exc.ctx.command_path else " (see 'sqlassets --help')"
        click.echo(f"error: {exc.format_message()}{hint}", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(2 if exc.exit_code == 1 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt as exc:
        click.echo("interrupted", err=True)
        sys.exit(exit_code_for(exc))
    except Exception as exc:
        line = None if debug else _environment_error(exc)
        if line is None:
            raise
        click.echo(f"error: {line}", err=True)
        sys.exit(2)
    finally:
        manifest_cache.discard()  # (after a success flush() has written it all)


def _environment_error(exc: BaseException) -> str | None:
    """One line for what the machine refuses (a read-only project, a full disk), not a traceback.

    These are not bugs: the user fixes them by making the state dir writable or moving it.
    """
    import errno

    hint = ("sqlassets writes its state and caches under the state dir: make it writable, or point "
            "state_dir in sqlassets.yml at a writable folder")
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {exc.filename or 'a file'}: {exc.strerror}; {hint}"
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return f"no space left on the device writing {exc.filename or 'a file'}; free some and re-run"
    if type(exc).__module__ == "sqlite3" and any(t in str(exc) for t in (
            "unable to open database file", "readonly database", "disk I/O error")):
        return f"cannot write the state database ({exc}); {hint}"
    return None
