"""`graph`, `list` and `show`: read-only views of the asset graph (no warehouse, no dbt run)."""

from __future__ import annotations

import sys

import click

from sqlassets.cli.context import CliContext

select_option = click.option("--select", "-s", "select", multiple=True,
                             help="dbt-style selector(s): name, +name, name+, tag:x, path:..., kind:..., ...")
exclude_option = click.option("--exclude", "exclude", multiple=True, help="Selector(s) to leave out.")


def _selected(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...]) -> list[str]:
    from sqlassets.selection import select_keys

    keys = select_keys(obj.graph, select or None, exclude or None)
    if not keys and (select or exclude):
        click.echo("warning: the selection matches no assets", err=True)
    return keys


def _color() -> bool:
    return sys.stdout.isatty()


@click.command()
@select_option
@exclude_option
@click.option("--format", "fmt", type=click.Choice(["text", "json", "dot", "mermaid"]), default="text",
              show_default=True)
@click.pass_obj
def graph(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...], fmt: str) -> None:
    """Show the asset graph (text, json, dot, mermaid)."""
    from sqlassets import render

    keys = _selected(obj, select, exclude)
    g = obj.graph
    if fmt == "json":
        sys.stdout.buffer.write(render.to_json(g, keys) + b"\n")
    elif fmt == "dot":
        click.echo(render.to_dot(g, keys))
    elif fmt == "mermaid":
        click.echo(render.to_mermaid(g, keys))
    else:
        click.echo(render.to_text(g, keys, _color()))


@click.command("list")
@select_option
@exclude_option
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def list_cmd(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...], output: str) -> None:
    """List selected assets."""
    from sqlassets import render

    keys = _selected(obj, select, exclude)
    if output == "json":
        sys.stdout.buffer.write(render.to_json(obj.graph, keys) + b"\n")
    else:
        click.echo(render.to_table(obj.graph, keys, _color()))


@click.command()
@click.argument("asset")
@click.pass_obj
def show(obj: CliContext, asset: str) -> None:
    """Show one asset in detail."""
    from sqlassets import render
    from sqlassets.errors import GraphError

    try:
        click.echo(render.show(obj.graph, asset, _color()))
    except GraphError:
        from sqlassets.dbt.loader import ephemeral_note

        note = ephemeral_note(obj.project, asset) if asset not in obj.graph else None
        if note is None:
            raise
        raise GraphError(note) from None
