"""`check` and `ci`: asset checks on demand, and the CI gate.

Exit codes: 0 no blocking check failed, 1 a blocking check failed (or, for `ci`, a build failed or a
breaking column change was found), 2 usage or configuration error. GX and dbt are imported only when a
suite runs or the compiled-test cache is cold.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sqlassets.cli.context import CliContext

select_option = click.option("--select", "-s", "select", multiple=True,
                             help="dbt-style selector(s) of the assets whose checks run (default: all).")
exclude_option = click.option("--exclude", "exclude", multiple=True, help="Selector(s) to leave out.")
engine_option = click.option(
    "--engine", type=click.Choice(["auto", "gx"]), default=None,
    help="Who evaluates GX suites: auto (default; covered expectations as one SQL query per batch, the rest "
         "in Great Expectations) or gx (all in Great Expectations). Default from checks.engine.")


def _color() -> bool:
    return sys.stdout.isatty()


def _emit(results, project, graph, *, junit: Path | None, verbose: bool) -> None:
    from sqlassets.checks import report

    click.echo(report.terminal(results, color=_color(), verbose=verbose))
    if junit is not None:
        from sqlassets.checks.junit import write_junit

        write_junit(results, junit)
        click.echo(f"JUnit XML: {junit}")
    if report.in_github_actions():
        for line in report.annotations(results, project.root, {a.key: a.path for a in graph}):
            click.echo(line)


@click.command("check")
@select_option
@exclude_option
@click.option("--partitions", default=None, metavar="START..END|KEY",
              help="Check only these partitions of partitioned assets (default: whole tables).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results as JUnit XML to FILE.")
@click.option("--verbose", "-v", is_flag=True, help="List passing checks one by one too.")
@engine_option
@click.pass_obj
def check(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...], partitions: str | None,
          junit: Path | None, verbose: bool, engine: str | None) -> None:
    """Run asset checks (Great Expectations suites, dbt tests) against the warehouse.

    Exit 0 when no blocking (critical) check fails, 1 when one does, 2 on usage errors.
    """
    from sqlassets.checks.ondemand import run_on_demand

    project, graph = obj.project, obj.graph
    outcome = run_on_demand(project, graph, select=select, exclude=exclude, partitions=partitions,
                            command=" ".join(["sqlassets", *sys.argv[1:]]), engine=engine)
    if outcome is None:
        click.echo("no checks on the selected assets")
        return
    _emit(outcome.results, project, graph, junit=junit, verbose=verbose)
    if outcome.run_id is not None:
        click.echo(f"run {outcome.run_id}: results stored; see `sqlassets runs {outcome.run_id}`")
    sys.exit(1 if outcome.blocking else 0)


@click.group("ci", invoke_without_command=True)
@click.option("--base", "base", type=click.Path(path_type=Path), default=None,
              help="What production runs: a folder saved by `sqlassets ci save-base` (its warehouse copy is "
                   "the default --seed-from), or production's dbt manifest.json (or its folder).")
@click.option("--junit", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write check results, column changes and build failures as JUnit XML to FILE.")
@click.option("--markdown", "markdown_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the PR comment (markdown) to FILE.")
@click.option("--seed-from", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Production DuckDB file to seed the CI database from, whatever its name (default: the "
                   "--base folder's copy, else the project's warehouse).")
@click.option("--ci-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where the isolated CI database and state live (default: <state_dir>/ci).")
@click.option("--partitions", default=None, metavar="START..END|KEY",
              help="Rebuild only these partitions of changed partitioned assets (default: all).")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None,
              help="Partitions rebuilt (and checked) per statement (default 366; 1 = one at a time).")
@click.option("--allow-breaking", is_flag=True, help="Report breaking column changes without failing.")
@click.option("--keep", is_flag=True, help="Keep the CI schemas cloned on a cloud warehouse (default: dropped).")
@engine_option
@click.pass_context
def ci(ctx: click.Context, base: Path | None, junit: Path | None, markdown_file: Path | None,
       seed_from: Path | None, ci_dir: Path | None, partitions: str | None, batch_size: int | None,
       allow_breaking: bool, keep: bool, engine: str | None) -> None:
    """CI gate: build what changed against production in an isolated database, run its checks.

    Exit 0 pass, 1 build failure, blocking check failure or breaking column change, 2 usage error.
    First save production's base once per deploy: `sqlassets ci save-base DIR`; then in CI:
    `sqlassets ci --base DIR`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if base is None:
        from sqlassets.errors import UserError

        raise UserError("ci needs --base: save production's base with `sqlassets ci save-base DIR` and pass "
                        "--base DIR (or production's dbt manifest.json)")
    from sqlassets.checks import report
    from sqlassets.checks.gate import DEFAULT_BATCH_SIZE, run_gate

    obj: CliContext = ctx.obj
    project, graph = obj.project, obj.graph
    outcome = run_gate(project, graph, base=base, seed_from=seed_from, ci_dir=ci_dir, partitions=partitions,
                       allow_breaking=allow_breaking, batch_size=batch_size or DEFAULT_BATCH_SIZE, engine=engine,
                       echo=click.echo, keep=keep)
    _emit(outcome.results, project, graph, junit=None, verbose=False)
    if junit is not None:
        from sqlassets.checks.junit import write_junit

        write_junit([*outcome.gate_results(), *outcome.results], junit, name="sqlassets CI gate")
        click.echo(f"JUnit XML: {junit}")
    if report.in_github_actions():
        for line in outcome.annotations(project, graph):
            click.echo(line)
    text = outcome.markdown()
    if markdown_file is not None:
        markdown_file.parent.mkdir(parents=True, exist_ok=True)
        markdown_file.write_text(text, encoding="utf-8")
        click.echo(f"PR comment: {markdown_file}")
    click.echo(outcome.verdict_line())
    sys.exit(outcome.exit_code)


@ci.command("save-base")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-warehouse", is_flag=True, help="Save only the asset versions, not a copy of the DuckDB file.")
@click.pass_obj
def save_base_cmd(obj: CliContext, dest: Path, no_warehouse: bool) -> None:
    """Save production's base for `ci --base DEST`: asset code versions (+ dbt manifest, + DuckDB copy).

    Run it where production is deployed (after each deploy), keep DEST as a CI artifact or cache.
    """
    from sqlassets.checks.gate import save_base

    for path in save_base(obj.project, obj.graph, dest, warehouse=not no_warehouse):
        click.echo(f"saved {path}")
    click.echo(f"CI: sqlassets ci --base {dest}")
