"""`sqlassets schedule`: run the declared schedules and sensors in the foreground on one machine."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from sqlassets.cli.context import CliContext


def _parse_now(value: str | None) -> datetime | None:
    if value is None:
        return None
    from sqlassets.errors import UserError

    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"--now {value!r} is not an ISO time like 2024-01-06T03:00 (UTC unless it has an offset)")\
            from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


@click.command()
@click.option("--list", "list_only", is_flag=True, help="List schedules, sensors and freshness limits; run nothing.")
@click.option("--once", is_flag=True,
              help="Fire the schedules whose cron matches this minute and evaluate sensors once, then exit "
                   "(for a system cron or CI).")
@click.option("--ticks", type=click.IntRange(1), default=None,
              help="Stop after this many schedule ticks / sensor evaluations (default: run until Ctrl-C).")
@click.option("--now", "now_text", default=None, metavar="ISO_TIME",
              help="Start the clock at this time instead of now (the clock then jumps from tick to tick: a "
                   "dry rehearsal of what would run, against the real warehouse).")
@click.option("--name", "only", default=None, help="Only this schedule or sensor (with --once: fire it now).")
@click.pass_obj
def schedule(obj: CliContext, list_only: bool, once: bool, ticks: int | None, now_text: str | None,
             only: str | None) -> None:
    """Run schedules and "upstream changed" sensors from sqlassets.yml in the foreground.

    Runs take the same leases as `materialize`, so the scheduler waits for a CLI, CI or Dagster run
    holding an asset instead of writing next to it.
    """
    from sqlassets.integrations.automation import FakeClock, Scheduler, SystemClock, _human, load_automation

    auto = load_automation(obj.project, obj.graph)
    if list_only:
        if not auto:
            click.echo("nothing declared: add schedules:, sensors: or freshness: to sqlassets.yml")
            return
        for s in auto.schedules:
            click.echo(f"schedule {s.name:<24} cron '{s.cron}' {s.timezone}  offset {s.partition_offset}  "
                       f"mode {s.mode}  {len(s.keys)} asset(s): {s.select or '*'}")
        for sn in auto.sensors:
            click.echo(f"sensor   {sn.name:<24} {sn.when} every {_human(sn.interval)}  {len(sn.keys)} asset(s): "
                       f"{sn.select or '*'}")
        for f in auto.freshness.values():
            limits = ", ".join(f"{n} {_human(v)}" for n, v in (("warn after", f.warn_after),
                                                               ("error after", f.error_after)) if v)
            click.echo(f"freshness {f.asset:<23} {limits}  ({f.source})")
        return
    now = _parse_now(now_text)
    clock = FakeClock(now) if now is not None else SystemClock()
    sched = Scheduler(obj.project, obj.graph, auto, clock=clock, echo=click.echo)
    if not once and now is not None and ticks is None:
        from sqlassets.errors import UserError

        raise UserError("--now without --once needs --ticks N (a jumping clock would otherwise never stop)")
    click.echo(f"scheduler: {len(auto.schedules)} schedule(s), {len(auto.sensors)} sensor(s)"
               + ("" if once else "; Ctrl-C to stop"))
    outcomes = sched.run(max_ticks=ticks, once=once, only=only)
    failed = [o for o in outcomes if o.status in ("failed", "interrupted")]
    if failed:
        raise SystemExit(1)
