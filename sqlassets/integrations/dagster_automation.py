"""The declared schedules, sensors and freshness limits as Dagster objects (see `automation`).

- a schedule -> one asset job per partitions definition among its assets (Dagster runs one partitions
  definition per job; unpartitioned assets join the partitioned job when there is only one) and a
  Dagster schedule per job with the same cron and timezone, whose tick asks for the same partition the
  foreground scheduler would run (`automation.schedule_targets`), with the schedule's mode;
- an "upstream changed" sensor -> a Dagster sensor that reads sqlassets' state (the same
  `stale_targets` as `sqlassets schedule`) and requests the stale partitions with mode `stale`;
- freshness limits -> a `freshness` asset check per asset (WARN past warn_after, ERROR past error_after,
  computed like `sqlassets status`), a sensor that runs those checks, and Dagster's own
  `FreshnessPolicy.time_window` on the asset is left to the user (it reads Dagster's event log only).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlassets.integrations.automation import Automation, Schedule, Sensor
    from sqlassets.integrations.dagster import DagsterBuilder


def _groups(builder: DagsterBuilder, keys: Iterable[str]) -> list[tuple[Any, list[str]]]:
    """Keys grouped by Dagster partitions definition (None = unpartitioned)."""
    groups: dict[int, tuple[Any, list[str]]] = {}
    for k in keys:
        asset = builder.graph[k]
        if not builder.buildable(asset):
            continue
        pdef = builder.partitions_def(asset)
        groups.setdefault(id(pdef), (pdef, []))[1].append(k)
    out = list(groups.values())
    parted = [g for g in out if g[0] is not None]
    plain = [g for g in out if g[0] is None]
    if len(parted) == 1 and plain:
        return [(parted[0][0], parted[0][1] + plain[0][1])]
    return out


def automation_definitions(builder: DagsterBuilder, auto: Automation) -> tuple[list, list, list, list]:
    jobs: list[Any] = []
    schedules: list[Any] = []
    sensors: list[Any] = []
    checks: list[Any] = []
    for s in auto.schedules:
        groups = _groups(builder, s.keys)
        for i, (pdef, keys) in enumerate(groups):
            suffix = "" if len(groups) == 1 else f"__{i + 1}"
            job, sched = _schedule(builder, s, f"{s.name}{suffix}", pdef, keys)
            jobs.append(job)
            schedules.append(sched)
    for sn in auto.sensors:
        sensors.append(_sensor(builder, sn))
    if auto.freshness:
        checks_def, sensor = _freshness(builder, auto)
        checks.append(checks_def)
        sensors.append(sensor)
    return jobs, schedules, sensors, checks


def _run_config(builder: DagsterBuilder, keys: Iterable[str], mode: str) -> dict[str, Any]:
    from sqlassets.integrations.dagster import _name

    return {"ops": {f"sqlassets__{_name(k)}": {"config": {"mode": mode}} for k in keys}}


def _schedule(builder: DagsterBuilder, s: Schedule, name: str, pdef: Any, keys: list[str]) -> tuple[Any, Any]:
    import dagster as dg

    from sqlassets.integrations.automation import schedule_targets
    from sqlassets.integrations.dagster import asset_key

    job = dg.define_asset_job(f"{name}_job", selection=dg.AssetSelection.assets(*[asset_key(k) for k in keys]),
                              partitions_def=pdef, description=f"sqlassets schedule {s.name}: {s.select or '*'}")

    def _tick(context):  # type: ignore[no-untyped-def]
        tick = context.scheduled_execution_time or datetime.now(UTC)
        if tick.tzinfo is None:
            tick = tick.replace(tzinfo=UTC)
        targets = schedule_targets(builder.graph, s, tick)
        mine = {k: v for k, v in targets.items() if k in keys}
        if not mine:
            return dg.SkipReason("no partition due yet")
        parts = sorted({p for v in mine.values() for p in v if p})
        run_config = _run_config(builder, mine, s.mode)
        tags = {"sqlassets/schedule": s.name}
        if pdef is None or not parts:
            return dg.RunRequest(run_key=f"{name}:{tick.isoformat()}", run_config=run_config, tags=tags)
        if isinstance(pdef, dg.StaticPartitionsDefinition):
            return [dg.RunRequest(run_key=f"{name}:{tick.isoformat()}:{p}", partition_key=p, run_config=run_config,
                                  tags=tags) for p in parts]
        return dg.RunRequest(run_key=f"{name}:{tick.isoformat()}", partition_key=parts[-1], run_config=run_config,
                             tags=tags)

    _tick.__annotations__ = {"context": dg.ScheduleEvaluationContext}
    sched = dg.schedule(cron_schedule=s.cron, job=job, name=name, execution_timezone=s.timezone,
                        description=f"sqlassets schedule {s.name} (partition offset {s.partition_offset}, "
                                    f"mode {s.mode})")(_tick)
    return job, sched


def _sensor(builder: DagsterBuilder, sn: Sensor) -> Any:
    import dagster as dg

    from sqlassets.integrations.automation import stale_targets
    from sqlassets.integrations.dagster import asset_key
    from sqlassets.run.state import open_state

    keys = [k for k in sn.keys if builder.buildable(builder.graph[k])]

    def _evaluate(context):  # type: ignore[no-untyped-def]
        st = open_state(builder.project, history=True)
        try:
            targets = stale_targets(builder.graph, keys, st)
        finally:
            st.close()
        if not targets:
            return dg.SkipReason("nothing upstream changed")
        requests = []
        for k, parts in targets.items():
            for p in parts:
                requests.append(dg.RunRequest(
                    asset_selection=[asset_key(k)], partition_key=p or None,
                    run_config=_run_config(builder, [k], "stale"), tags={"sqlassets/sensor": sn.name}))
        return requests

    _evaluate.__annotations__ = {"context": dg.SensorEvaluationContext}
    return dg.sensor(name=sn.name, minimum_interval_seconds=int(sn.interval),
                     asset_selection=dg.AssetSelection.assets(*[asset_key(k) for k in keys]),
                     description=f"sqlassets sensor {sn.name}: rebuild stale partitions of {sn.select or '*'} "
                                 "when upstream changed")(_evaluate)


def _freshness(builder: DagsterBuilder, auto: Automation) -> tuple[Any, Any]:
    import dagster as dg

    from sqlassets.integrations.automation import freshness_of
    from sqlassets.integrations.dagster import asset_key
    from sqlassets.run.state import open_state

    specs = [dg.AssetCheckSpec("freshness", asset=asset_key(k),
                               description=f"warn after {f.warn_after}s, error after {f.error_after}s "
                                           f"(declared in {f.source})")
             for k, f in auto.freshness.items()]

    def _check(context):  # type: ignore[no-untyped-def]
        st = open_state(builder.project, history=True)
        try:
            for key, limits in auto.freshness.items():
                ck = dg.AssetCheckKey(asset_key(key), "freshness")
                if hasattr(context, "selected_asset_check_keys") and ck not in context.selected_asset_check_keys:
                    continue
                r = freshness_of(builder.project, builder.graph, limits, st)
                yield dg.AssetCheckResult(
                    asset_key=asset_key(key), check_name="freshness", passed=r.status == "pass",
                    severity=dg.AssetCheckSeverity.ERROR if r.status in ("error", "unknown")
                    else dg.AssetCheckSeverity.WARN,
                    metadata={"status": r.status, "lag_seconds": r.lag if r.lag is not None else -1.0,
                              "label": r.label()})
        finally:
            st.close()

    _check.__annotations__ = {"context": dg.AssetCheckExecutionContext}
    checks_def = dg.multi_asset_check(specs=specs, name="sqlassets_freshness", can_subset=True)(_check)
    check_keys = [s.key for s in specs]

    def _every(context):  # type: ignore[no-untyped-def]
        return dg.RunRequest(run_key=None, asset_check_keys=check_keys)

    _every.__annotations__ = {"context": dg.SensorEvaluationContext}
    sensor = dg.sensor(name="sqlassets_freshness_checks", minimum_interval_seconds=int(timedelta(minutes=10)
                                                                                       .total_seconds()),
                       asset_selection=dg.AssetSelection.checks(*check_keys),
                       description="Runs the freshness checks every 10 minutes.")(_every)
    return checks_def, sensor
