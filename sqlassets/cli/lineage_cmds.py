"""`sqlassets lineage`: one column's lineage, `--stats`, or the offline HTML `--report`.

Arguments are validated before anything is loaded so bad input fails fast, in one line, with exit
code 2 and nothing written. Lineage modules (and sqlglot) are imported only inside the command.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sqlassets.cli.context import CliContext
from sqlassets.errors import UserError

_FORMATS = ("text", "json", "dot", "mermaid")


def _parse_depth(depth: str | None) -> int | None:
    if depth is None:
        return None
    try:
        value = int(depth)
    except ValueError:
        raise UserError(f"--depth must be a whole number >= 1, got '{depth}'") from None
    if value < 1:
        raise UserError(f"--depth must be >= 1, got {value}; leave it out for the whole lineage")
    return value


@click.command("lineage")
@click.argument("column", required=False, metavar="ASSET.COLUMN")
@click.option("--upstream", is_flag=True, help="Where the column comes from.")
@click.option("--downstream", is_flag=True, help="What the column feeds.")
@click.option("--both", is_flag=True, help="Both directions (the default when neither is given).")
@click.option("--depth", default=None, metavar="N", help="At most N hops (default: all).")
@click.option("--format", "fmt", default="text", metavar="FORMAT", help="text | json | dot | mermaid (default text).")
@click.option("--report", "report", default=None, metavar="FILE.html",
              help="Write the self-contained HTML lineage report (opens offline).")
@click.option("--select", "-s", "select", multiple=True, help="With --report: only these assets (dbt-style selectors).")
@click.option("--exclude", "exclude", multiple=True, help="With --report: leave these assets out.")
@click.option("--no-filter", "no_filter", is_flag=True,
              help="Follow value edges only (copy/transform/aggregate), not WHERE/JOIN/GROUP BY filter edges.")
@click.option("--stats", is_flag=True, help="Assets parsed, columns resolved, unresolved columns with reasons.")
@click.option("--no-cache", is_flag=True, help="Recompute everything; the cache is neither read nor written.")
@click.option("--catalog", "catalog", default="auto", metavar="MODE",
              help="Warehouse columns for sources and unbuilt tables: auto (DuckDB file; Snowflake/BigQuery "
                   "snapshot in the state dir, fetched when missing or a day old, skipped when unreachable) "
                   "| warehouse (query INFORMATION_SCHEMA now; unreachable is an error) | offline.")
@click.pass_obj
def lineage(obj: CliContext, column: str | None, upstream: bool, downstream: bool, both: bool, depth: str | None, fmt: str, report: str | None,
            select: tuple[str, ...], exclude: tuple[str, ...], no_filter: bool, stats: bool, no_cache: bool,
            catalog: str) -> None:
    """Column-level lineage across the whole project (dbt models and raw SQL assets).

    \b
      sqlassets lineage customers.customer_id
      sqlassets lineage fct_orders.amount --upstream --depth 2 --format json
      sqlassets lineage --report lineage.html [--select marts]
      sqlassets lineage --stats
      sqlassets lineage --stats --catalog warehouse   # refresh the Snowflake/BigQuery catalog now
    """
    fmt = fmt.lower()
    if fmt not in _FORMATS:
        raise UserError(f"unknown --format '{fmt}'; use one of {', '.join(_FORMATS)}")
    n_depth = _parse_depth(depth)
    catalog = catalog.lower()
    if catalog not in ("auto", "warehouse", "offline"):
        raise UserError(f"unknown --catalog '{catalog}'; use one of auto, warehouse, offline")
    if column is None and report is None and not stats:
        raise UserError("give ASSET.COLUMN, --report FILE.html or --stats; see 'sqlassets lineage --help'")
    if column is not None and "." not in column:
        raise UserError(f"'{column}' is not ASSET.COLUMN; e.g. 'customers.customer_id'")
    if (select or exclude) and report is None:
        raise UserError("--select/--exclude apply to --report; for one column pass ASSET.COLUMN")
    out_path = None
    if report is not None:
        out_path = Path(report)
        if out_path.is_dir():
            raise UserError(f"--report {report} is a directory; give a file name like lineage.html")
        if not out_path.parent.exists():
            raise UserError(f"--report: folder {out_path.parent} does not exist; create it first")

    from sqlassets.lineage.build import build_lineage

    graph = obj.graph
    from sqlassets.selection import select_keys

    keys = select_keys(graph, select or None, exclude or None) if (select or exclude) else None
    if keys is not None and not keys:
        raise UserError("the selection matches no assets; nothing written")
    built = build_lineage(obj.project, graph, use_cache=not no_cache, catalog=catalog)
    cg = built.columns
    nid = cg.resolve(column) if column is not None else None

    if nid is not None:
        from sqlassets.lineage import render

        # --upstream --downstream together mean both, as does neither.
        directions = tuple(d for d, on in (("upstream", upstream), ("downstream", downstream)) if on)
        if both or not directions:
            directions = ("upstream", "downstream")
        found = render.walks(cg, nid, directions, n_depth, filters=not no_filter)
        click.echo(render.render(fmt, cg, nid, found))
    if stats:
        import json

        from sqlassets.lineage import stats as stats_mod

        data = stats_mod.collect(built)
        if fmt == "json":
            click.echo(json.dumps(data, indent=2))
        else:
            click.echo(stats_mod.to_text(data))
    if out_path is not None:
        from sqlassets.lineage.report import write_report

        info = write_report(cg, out_path, keys=keys, graph=graph, project_name=obj.project.name)
        click.echo(f"wrote {out_path} ({info['columns']} columns, {info['edges']} edges, "
                   f"{info['bytes'] / 1e6:.1f} MB); open it in a browser, no network needed",
                   err=nid is not None or (stats and fmt == "json"))
    sys.stdout.flush()
