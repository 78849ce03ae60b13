"""`materialize`, `backfill` (+ `resume`, `list`), `status` and `runs`.

Heavy modules (sqlglot, duckdb, dbt, rich) are imported inside the commands, never at import time.
"""

from __future__ import annotations

import shlex
import sys
from datetime import datetime
from typing import Any

import click

from sqlassets.cli.context import CliContext

_MODE_HELP = "Which partitions: missing or failed (default), also stale ones, or all in range."


def _run_options(f: Any) -> Any:
    options = [
        click.option("--select", "-s", "select", multiple=True, help="dbt-style selector(s) (default: everything)."),
        click.option("--exclude", "exclude", multiple=True, help="Selector(s) to leave out."),
        click.option("--partitions", "partitions", default=None, metavar="START..END",
                     help="Partition range, both ends included (e.g. 2024-01-01..2024-03-31)."),
        click.option("--partition", "partition", default=None, metavar="KEY", help="One partition key."),
        click.option("--missing", "mode", flag_value="missing", default=True, help=_MODE_HELP),
        click.option("--stale", "mode", flag_value="stale", help="Missing, failed and stale partitions."),
        click.option("--all", "mode", flag_value="all", help="Every partition in range."),
        click.option("--concurrency", "-j", type=click.IntRange(1, 64), default=None,
                     help="Units run at once [default: 1 on DuckDB, the profile's threads on a cloud warehouse]."),
        click.option("--batch-size", type=click.IntRange(1, 100_000), default=1, show_default=True,
                     help="Contiguous partitions written by one statement where the asset allows it."),
        click.option("--full-refresh", is_flag=True, help="Drop and rebuild incremental assets."),
        click.option("--dry-run", is_flag=True, help="Print the plan (on a cloud warehouse, every statement too); run nothing."),
        click.option("--wait", is_flag=True, help="Wait for other runs holding these assets instead of refusing."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or progress lines; failures and the "
                     "summary only."),
    ]
    for opt in reversed(options):
        f = opt(f)
    return f


def _hook_factory(obj: CliContext) -> Any:
    """Builds the checks' post-materialize hook for the planned assets (issue 5), if checks are installed.

    Called only once a plan has work, so a no-op run never imports the checks (or GX).
    """
    def factory(keys: list[str]) -> Any:
        try:
            from sqlassets.checks.runner import hook_for
        except ImportError:
            return None
        return hook_for(obj.project, obj.graph, keys)

    return factory


def _do_run(obj: CliContext, *, select: tuple[str, ...], exclude: tuple[str, ...], partitions: str | None,
            partition: str | None, mode: str, concurrency: int | None, batch_size: int, full_refresh: bool,
            dry_run: bool, wait: bool, quiet: bool = False, backfill: bool = False, resume: int | None = None
            ) -> None:
    from sqlassets.run.executor import RunOptions, RunRequest, execute_request
    from sqlassets.run.progress import Progress

    req = RunRequest(select=list(select), exclude=list(exclude), partitions=partitions, partition=partition,
                     mode=mode or "missing", dry_run=dry_run, backfill=backfill, resume=resume,
                     command=shlex.join(["sqlassets", *sys.argv[1:]]),
                     options=RunOptions(concurrency=concurrency or 0, batch_size=batch_size, full_refresh=full_refresh,
                                        wait=wait))
    graph = obj.graph
    shown: list[Progress] = []

    def progress_factory(total: int) -> Progress:
        shown.append(Progress(total, quiet=quiet))
        return shown[0]

    echo = (lambda line: None) if quiet and not dry_run else click.echo
    plan, summary = execute_request(obj.project, graph, req, hook_factory=_hook_factory(obj), echo=echo,
                                    progress_factory=progress_factory)
    if summary is None or summary.run_id is None:
        return
    parts = [f"{summary.done} done"]
    if summary.failed:
        parts.append(f"{summary.failed} failed")
    if summary.skipped:
        parts.append(f"{summary.skipped} skipped (upstream failed)")
    if summary.cancelled:
        parts.append(f"{summary.cancelled} not run")
    click.echo(f"run {summary.run_id} {summary.status} in {summary.seconds:.2f}s: " + ", ".join(parts))
    checks_line = shown[0].check_summary() if shown else None
    if checks_line:
        click.echo(checks_line)
    for asset, keys, error in summary.failures[:10]:
        click.echo(f"  failed {asset} [{keys}]: {error}", err=True)
    if len(summary.failures) > 10:
        click.echo(f"  ... {len(summary.failures) - 10} more; see `sqlassets runs {summary.run_id}`", err=True)
    if summary.status != "success":
        hint = (f"sqlassets backfill resume {summary.backfill_id}" if summary.backfill_id is not None
                else req.command)
        click.echo(f"re-run with `{hint}` to retry what did not finish", err=True)
    if summary.exit_code:
        sys.exit(summary.exit_code)


@click.command()
@_run_options
@click.pass_obj
def materialize(obj: CliContext, **kwargs: Any) -> None:
    """Build assets and fill missing (or stale) partitions."""
    _do_run(obj, **kwargs)


@click.group(invoke_without_command=True)
@_run_options
@click.pass_context
def backfill(ctx: click.Context, **kwargs: Any) -> None:
    """Fill partitions as a resumable backfill (or: `backfill resume ID`, `backfill list`)."""
    if ctx.invoked_subcommand is not None:
        return
    _do_run(ctx.obj, backfill=True, **kwargs)


@backfill.command("resume")
@click.argument("backfill_id", type=int)
@click.option("--concurrency", "-j", type=click.IntRange(1, 64), default=None, help="Override the concurrency.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=None, help="Override the batch size.")
@click.option("--dry-run", is_flag=True, help="Print what would run.")
@click.option("--wait", is_flag=True, help="Wait for other runs holding these assets instead of refusing.")
@click.option("--quiet", "-q", is_flag=True, help="Failures and the summary only.")
@click.pass_obj
def backfill_resume(obj: CliContext, backfill_id: int, concurrency: int | None, batch_size: int | None,
                    dry_run: bool, wait: bool, quiet: bool) -> None:
    """Run what a backfill has not finished yet (missing and failed partitions)."""
    from sqlassets.run.state import open_state

    with open_state(obj.project, readonly=True) as st:
        bf = st.backfill(backfill_id)
    if bf is None:
        from sqlassets.errors import UserError

        raise UserError(f"no backfill {backfill_id}; see `sqlassets backfill list`")
    opts = bf["options"]
    _do_run(obj, select=(), exclude=(), partitions=None, partition=None, mode="missing",
            concurrency=concurrency or int(opts.get("concurrency") or 1),
            batch_size=batch_size or int(opts.get("batch_size") or 1), full_refresh=False, dry_run=dry_run,
            wait=wait, quiet=quiet, backfill=True, resume=backfill_id)


def _ts(value: float | None) -> str:
    return datetime.fromtimestamp(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@backfill.command("list")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def backfill_list(obj: CliContext, output: str) -> None:
    """Backfills with their progress."""
    import json

    from sqlassets.run.state import open_state

    st = open_state(obj.project, history=True)
    try:
        st.reap_crashed()
        rows = []
        for bf in st.backfills():
            prog = st.backfill_progress(bf)
            rows.append({"id": bf["id"], "created": _ts(bf["created_at"]), "status": bf["status"],
                         "selection": bf["selection"], "assets": sorted(bf["requested"]), **prog})
    finally:
        st.close()
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no backfills yet; start one with `sqlassets backfill --select ... --partitions A..B`")
        return
    click.echo(f"{'id':>4}  {'created':<19}  {'status':<11} {'done':>11}  {'failed':>6}  selection")
    for r in rows:
        click.echo(f"{r['id']:>4}  {r['created']:<19}  {r['status']:<11} {r['done']:>5}/{r['total']:<5}  "
                   f"{r['failed']:>6}  {r['selection']}")


def freshness_for(project: Any, graph: Any, keys: list[str], state: Any) -> dict[str, Any]:
    """Freshness of the selected assets that declare limits (sqlassets.yml `freshness:`, dbt meta/source)."""
    raw = project.settings.raw
    if not raw.get("freshness") and not any(
            (a.meta or {}).get("sqlassets", {}).get("freshness") if isinstance((a.meta or {}).get("sqlassets"), dict)
            else False for a in graph) and not any((a.config or {}).get("freshness") for a in graph
                                                   if a.kind == "source"):
        return {}
    from sqlassets.integrations.automation import freshness_of, load_automation

    auto = load_automation(project, graph)
    wanted = set(keys)
    return {k: freshness_of(project, graph, f, state) for k, f in auto.freshness.items() if k in wanted}


@click.command()
@click.option("--select", "-s", "select", multiple=True, help="dbt-style selector(s) (default: everything).")
@click.option("--exclude", "exclude", multiple=True, help="Selector(s) to leave out.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def status(obj: CliContext, select: tuple[str, ...], exclude: tuple[str, ...], output: str) -> None:
    """Done / failed / missing / stale partitions per asset."""
    import json

    from sqlassets.run.state import open_state
    from sqlassets.run.status import compute_status

    graph = obj.graph
    from sqlassets.selection import select_keys

    keys = select_keys(graph, select or None, exclude or None)
    st = open_state(obj.project, readonly=True)
    try:
        statuses = compute_status(graph, keys, st)
        fresh = freshness_for(obj.project, graph, keys, st)
    finally:
        st.close()
    if output == "json":
        rows = [s.to_json(graph) for s in statuses]
        for r in rows:
            if r["asset"] in fresh:
                r["freshness"] = fresh[r["asset"]].to_json()
        rows += [{"asset": k, "source": True, "freshness": f.to_json()} for k, f in fresh.items()
                 if graph[k].is_external]
        click.echo(json.dumps(rows, indent=2))
        return
    if not statuses:
        click.echo("no buildable assets selected")
        return
    width = max(len(s.key) for s in statuses)
    click.echo(f"{'asset':<{width}}  {'state':<9} {'parts':>6}  done  fail  miss  stale  last materialized")
    for s in statuses:
        c = s.counts
        state = next((name for name in ("failed", "stale", "missing") if c[name]), "done")
        if s.partitioned and state != "done":
            state = "partial" if c["done"] else state
        checks = ""
        if s.checks:
            checks = "  checks: " + ", ".join(f"{n} {k}" for k, n in sorted(s.checks.items()))
        total = str(len(s.states)) if s.partitioned else "-"
        freshness = f"  freshness: {fresh[s.key].label()}" if s.key in fresh else ""
        click.echo(f"{s.key:<{width}}  {state:<9} {total:>6}  {c['done']:>4}  {c['failed']:>4}  {c['missing']:>4}  "
                   f"{c['stale']:>5}  {_ts(s.last_materialized)}{checks}{freshness}")
        if s.partitioned:
            for name, text in s.ranges(graph).items():
                click.echo(f"{'':<{width}}    {name:<8} {text}")
    for k, f in fresh.items():
        if graph[k].is_external:
            click.echo(f"source {k}: freshness {f.label()}")


@click.command()
@click.argument("run_id", type=int, required=False)
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs to list.")
@click.option("--steps", "all_steps", is_flag=True, help="With RUN_ID: list every step, not only failures.")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_obj
def runs(obj: CliContext, run_id: int | None, limit: int, all_steps: bool, output: str) -> None:
    """Run history, or one run's steps and logs."""
    import json

    from sqlassets.errors import UserError
    from sqlassets.run.state import open_state

    st = open_state(obj.project, history=True)
    try:
        st.reap_crashed()
        if run_id is None:
            rows = st.runs(limit)
            if output == "json":
                click.echo(json.dumps(rows, indent=2, default=str))
                return
            if not rows:
                click.echo("no runs yet")
                return
            click.echo(f"{'id':>4}  {'kind':<11} {'status':<11} {'started':<19}  {'secs':>7}  "
                       f"{'done':>5} {'fail':>5} {'skip':>5}  command")
            for r in rows:
                secs = f"{r['finished_at'] - r['started_at']:.2f}" if r["finished_at"] else "-"
                kind = r["kind"] + (f" {r['backfill_id']}" if r["backfill_id"] else "")
                click.echo(f"{r['id']:>4}  {kind:<11} {r['status']:<11} {_ts(r['started_at']):<19}  {secs:>7}  "
                           f"{r['done']:>5} {r['failed']:>5} {r['skipped']:>5}  {r['command'] or ''}")
            return
        run = st.run(run_id)
        if run is None:
            raise UserError(f"no run {run_id}; see `sqlassets runs`")
        steps = st.steps(run_id)
        logs = st.logs(run_id)
        checks = st.latest_check_results(run_id=run_id)
        if output == "json":
            click.echo(json.dumps({"run": run, "steps": steps, "logs": logs,
                                   "checks": [c.__dict__ for c in checks]}, indent=2, default=str))
            return
        secs = f"{run['finished_at'] - run['started_at']:.2f}s" if run["finished_at"] else "still running"
        click.echo(f"run {run_id}: {run['kind']}{' (backfill ' + str(run['backfill_id']) + ')' if run['backfill_id'] else ''}"
                   f" {run['status']}, started {_ts(run['started_at'])}, {secs}")
        click.echo(f"  command: {run['command']}")
        per_asset: dict[str, dict[str, int]] = {}
        for s in steps:
            per_asset.setdefault(s["asset"], {}).setdefault(s["status"], 0)
            per_asset[s["asset"]][s["status"]] += 1
        for asset, counts in per_asset.items():
            rows_written = sum(s["rows"] or 0 for s in steps if s["asset"] == asset and s["status"] == "done")
            click.echo(f"  {asset}: " + ", ".join(f"{n} {k}" for k, n in counts.items())
                       + f", {rows_written:,} rows")
        shown = steps if all_steps else [s for s in steps if s["status"] != "done"]
        for s in shown:
            dur = f"{s['duration']:.2f}s" if s["duration"] is not None else ""
            click.echo(f"    {s['status']:<9} {s['asset']} [{s['partition'] or '-'}] {dur} "
                       f"{(s['rows'] or 0):,} rows" + (f"  {s['error']}" if s["error"] else ""))
        if checks:
            counts: dict[str, int] = {}
            for c in checks:
                counts[c.status] = counts.get(c.status, 0) + 1
            click.echo("  checks: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        # The same outcome of the same check on many partitions is one line with the partitions' range,
        # not one line per day (unless --steps asks for everything).
        groups: dict[tuple[str, str, str, str, str], list[str]] = {}
        for c in checks if all_steps else [c for c in checks if c.status != "pass"]:
            groups.setdefault((c.status, c.severity, c.asset, c.check, c.message or ""), []).append(c.partition or "")
        for (status, severity, asset, check, message), parts in groups.items():
            named = sorted(p for p in parts if p)
            if not named:
                where = ""
            elif len(named) == 1:
                where = f" [{named[0]}]"
            else:
                where = f" [{named[0]}..{named[-1]}: {len(named)} partitions]"
            click.echo(f"  check {status:<7} {severity:<8} {asset}{where} {check}"
                       + (f": {message}" if message else ""))
        for entry in logs:
            click.echo(f"  {_ts(entry['ts'])} {entry['level']}: {entry['message']}")
    finally:
        st.close()
