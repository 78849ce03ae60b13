"""Schedules, "upstream changed" sensors and freshness limits, declared once.

Declared in sqlassets.yml (and, for freshness, in dbt: a model's `meta: {sqlassets: {freshness: ...}}` or
a source's own `freshness:` with `loaded_at_field`):

    schedules:
      - name: nightly
        cron: "0 3 * * *"           # when (croniter syntax), in `timezone` (default UTC)
        timezone: Europe/Berlin
        select: "fct_daily_customer_events+"   # dbt-style selection (exclude: too)
        partition_offset: 0        # time-partitioned assets get their latest complete partition at tick time,
                                   # minus this many partitions (1 = the one before); static: every key
        mode: missing              # missing | stale | all, as for `materialize`
    sensors:
      - name: marts_follow_upstream
        when: upstream_changed     # run the selection's stale partitions when something upstream was rebuilt
        select: "marts"
        interval: 60               # seconds between evaluations (default 60)
    freshness:
      fct_daily_customer_events: {warn_after: 26h, error_after: 2d}   # selector -> limits

Read by `sqlassets schedule` (the foreground scheduler), `sqlassets status` (freshness column) and the
Dagster plugin, so the three agree. Durations: `90s`, `30m`, `26h`, `2d`, or a dbt-style mapping
`{count: 12, period: hour}`.

Freshness is the age of the newest data: for a time-partitioned asset, the time since the end of its
newest done partition's window; for other assets the time since their last successful write; for a
source, the time since max(loaded_at_field).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlassets.errors import ConfigError, UserError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project
    from sqlassets.run.state import StateStore

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|hr|d|day|w)?\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "d": 86400, "day": 86400, "w": 604800,
          None: 1}
_PERIODS = {"minute": 60, "hour": 3600, "day": 86400}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MODES = ("missing", "stale", "all")


@dataclass(frozen=True)
class Schedule:
    name: str
    cron: str
    keys: tuple[str, ...]  # the selection, resolved, in topological order
    timezone: str = "UTC"
    partition_offset: int = 0
    mode: str = "missing"
    select: str = ""


@dataclass(frozen=True)
class Sensor:
    name: str
    keys: tuple[str, ...]
    when: str = "upstream_changed"
    interval: float = 60.0
    select: str = ""


@dataclass(frozen=True)
class Freshness:
    asset: str
    warn_after: float | None  # seconds
    error_after: float | None
    source: str  # where it was declared


@dataclass
class Automation:
    schedules: list[Schedule] = field(default_factory=list)
    sensors: list[Sensor] = field(default_factory=list)
    freshness: dict[str, Freshness] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.schedules or self.sensors or self.freshness)


def parse_duration(value: Any, what: str, where: str) -> float:
    """`26h`, `90s`, `2d`, a number of seconds, or dbt's `{count: 12, period: hour}` -> seconds."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a duration like 26h, not {value!r}", path=where)
    if isinstance(value, int | float) and value > 0:
        return float(value)
    if isinstance(value, dict) and "count" in value:
        period = str(value.get("period", "hour")).lower()
        count = value.get("count")
        if period not in _PERIODS or not isinstance(count, int) or count <= 0:
            raise ConfigError(f"{what}: expected {{count: N, period: minute|hour|day}}, got {value!r}", path=where)
        return float(count * _PERIODS[period])
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m and float(m.group(1)) > 0:
            unit = m.group(2).lower() if m.group(2) else None
            return float(m.group(1)) * _UNITS[unit]
    raise ConfigError(f"{what}: expected a duration like 90s, 30m, 26h or 2d, got {value!r}", path=where)


def _select(graph: AssetGraph, entry: dict[str, Any], what: str, where: str) -> tuple[str, ...]:
    from sqlassets.errors import SelectionError
    from sqlassets.selection import select_keys

    select, exclude = entry.get("select"), entry.get("exclude")
    for name, v in (("select", select), ("exclude", exclude)):
        if v is not None and not (isinstance(v, str) or (isinstance(v, list) and all(isinstance(x, str) for x in v))):
            raise ConfigError(f"{what}: '{name}' must be a selector string or a list of them", path=where)
    as_list = (lambda v: [v] if isinstance(v, str) else v)  # noqa: E731
    try:
        keys = select_keys(graph, as_list(select) if select else None, as_list(exclude) if exclude else None)
    except SelectionError as exc:
        raise ConfigError(f"{what}: {exc}", path=where) from None
    built = [k for k in keys if not graph[k].is_external]
    if not built:
        raise ConfigError(f"{what}: the selection matches no asset sqlassets builds", path=where)
    return tuple(built)


def _known(entry: dict[str, Any], allowed: set[str], what: str, where: str) -> None:
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{what}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}",
                          path=where)


def load_automation(project: Project, graph: AssetGraph) -> Automation:
    """Read and validate `schedules:`, `sensors:`, `freshness:` and the dbt freshness declarations."""
    raw = project.settings.raw
    where = str(project.root / "sqlassets.yml")
    auto = Automation()
    names: set[str] = set()

    def entries(key: str) -> list[dict[str, Any]]:
        value = raw.get(key) or []
        if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
            raise ConfigError(f"'{key}' must be a list of mappings (each with a name)", path=where)
        return value

    for i, e in enumerate(entries("schedules")):
        what = f"schedules[{i}]"
        _known(e, {"name", "cron", "timezone", "select", "exclude", "partition_offset", "mode"}, what, where)
        name = e.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in names:
            raise ConfigError(f"{what}: needs a unique 'name' of letters, digits and _", path=where)
        names.add(name)
        what = f"schedule '{name}'"
        cron = e.get("cron")
        from croniter import croniter

        if not isinstance(cron, str) or not croniter.is_valid(cron):
            raise ConfigError(f"{what}: 'cron' {cron!r} is not a valid cron expression (e.g. \"0 3 * * *\")",
                              path=where)
        tz = e.get("timezone", "UTC")
        _check_tz(tz, what, where)
        offset = e.get("partition_offset", 0)
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ConfigError(f"{what}: 'partition_offset' must be a whole number >= 0", path=where)
        mode = e.get("mode", "missing")
        if mode not in MODES:
            raise ConfigError(f"{what}: 'mode' must be one of {', '.join(MODES)}", path=where)
        auto.schedules.append(Schedule(name, cron, _select(graph, e, what, where), tz, offset, mode,
                                       _as_text(e.get("select"))))
    for i, e in enumerate(entries("sensors")):
        what = f"sensors[{i}]"
        _known(e, {"name", "when", "select", "exclude", "interval"}, what, where)
        name = e.get("name")
        if not isinstance(name, str) or not _NAME.match(name) or name in names:
            raise ConfigError(f"{what}: needs a unique 'name' of letters, digits and _", path=where)
        names.add(name)
        what = f"sensor '{name}'"
        if e.get("when", "upstream_changed") != "upstream_changed":
            raise ConfigError(f"{what}: 'when' must be upstream_changed (the only trigger so far)", path=where)
        interval = parse_duration(e.get("interval", 60), f"{what} interval", where)
        auto.sensors.append(Sensor(name, _select(graph, e, what, where), "upstream_changed", interval,
                                   _as_text(e.get("select"))))
    # freshness: dbt declarations first, sqlassets.yml overrides them
    for asset in graph:
        limits = _dbt_freshness(asset)
        if limits:  # dbt fills unset limits with {count: null, period: null}
            limits = {k: v for k, v in limits.items()
                      if not (isinstance(v, dict) and v.get("count") is None)}
            warn = parse_duration(limits["warn_after"], f"{asset.key} freshness warn_after", asset.path or where) \
                if limits.get("warn_after") else None
            err = parse_duration(limits["error_after"], f"{asset.key} freshness error_after", asset.path or where) \
                if limits.get("error_after") else None
            if warn or err:
                auto.freshness[asset.key] = Freshness(asset.key, warn, err, asset.path or "dbt")
    fresh = raw.get("freshness") or {}
    if not isinstance(fresh, dict):
        raise ConfigError("'freshness' must map selectors to {warn_after, error_after}", path=where)
    for selector, limits in fresh.items():
        what = f"freshness '{selector}'"
        if not isinstance(limits, dict) or not limits:
            raise ConfigError(f"{what}: expected {{warn_after: 26h, error_after: 2d}}", path=where)
        _known(limits, {"warn_after", "error_after"}, what, where)
        warn = parse_duration(limits["warn_after"], f"{what} warn_after", where) if "warn_after" in limits else None
        err = parse_duration(limits["error_after"], f"{what} error_after", where) if "error_after" in limits else None
        from sqlassets.errors import SelectionError
        from sqlassets.selection import select_keys

        try:
            keys = select_keys(graph, [str(selector)], None)
        except SelectionError as exc:
            raise ConfigError(f"{what}: {exc}", path=where) from None
        for k in keys:
            auto.freshness[k] = Freshness(k, warn, err, "sqlassets.yml")
    return auto


def _as_text(v: Any) -> str:
    return " ".join(v) if isinstance(v, list) else (v or "")


def _check_tz(tz: Any, what: str, where: str) -> None:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(str(tz))
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{what}: unknown timezone {tz!r} (use an IANA name like Europe/Berlin)",
                          path=where) from None


def _dbt_freshness(asset: Asset) -> dict[str, Any] | None:
    meta = (asset.meta or {}).get("sqlassets") or {}
    f = meta.get("freshness") if isinstance(meta, dict) else None
    if f is None and asset.kind == "source":
        f = (asset.config or {}).get("freshness")
    return f if isinstance(f, dict) else None


# -- targets of a tick ---------------------------------------------------------------------------------

def schedule_targets(graph: AssetGraph, schedule: Schedule, tick: datetime) -> dict[str, list[str]]:
    """Asset -> partition keys a schedule's tick runs ("" = unpartitioned)."""
    from sqlassets.run.partitions import TimePartitionsDef, partitions_def

    out: dict[str, list[str]] = {}
    for key in schedule.keys:
        asset = graph[key]
        if asset.materialization in ("ephemeral", "snapshot") or asset.kind == "snapshot":
            continue
        pdef = partitions_def(asset)
        if pdef is None:
            out[key] = [""]
        elif isinstance(pdef, TimePartitionsDef):
            keys = pdef.keys(tick)
            if len(keys) > schedule.partition_offset:
                out[key] = [keys[-1 - schedule.partition_offset]]
        else:
            out[key] = pdef.keys(tick)
    return out


def stale_targets(graph: AssetGraph, keys: Sequence[str], state: StateStore, now: datetime | None = None
                  ) -> dict[str, list[str]]:
    """Partitions of `keys` that are stale (upstream rebuilt since, or code changed): a sensor's targets."""
    from sqlassets.run.status import compute_status

    out: dict[str, list[str]] = {}
    for st in compute_status(graph, keys, state, now):
        stale = st.keys_in("stale")
        if stale:
            out[st.key] = stale
    return out


# -- freshness -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class FreshnessResult:
    asset: str
    status: str  # pass | warn | error | unknown
    lag: float | None  # seconds; None = never built / no data
    limits: Freshness
    note: str = ""

    def label(self) -> str:
        if self.status == "unknown":
            return f"unknown ({self.note})" if self.note else "unknown"
        if self.lag is None:
            return f"{self.status} ({self.note or 'no data yet'})"
        return f"{'fresh' if self.status == 'pass' else self.status} ({_human(self.lag)} old)"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "lag_seconds": self.lag, "warn_after": self.limits.warn_after,
                "error_after": self.limits.error_after, "note": self.note}


def _human(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def judge(limits: Freshness, lag: float | None, note: str = "") -> FreshnessResult:
    if lag is None:
        return FreshnessResult(limits.asset, "error" if limits.error_after else "warn", None, limits,
                               note or "no data yet")
    if limits.error_after is not None and lag > limits.error_after:
        return FreshnessResult(limits.asset, "error", lag, limits, note)
    if limits.warn_after is not None and lag > limits.warn_after:
        return FreshnessResult(limits.asset, "warn", lag, limits, note)
    return FreshnessResult(limits.asset, "pass", lag, limits, note)


def asset_freshness(graph: AssetGraph, limits: Freshness, state: StateStore, now: datetime | None = None
                    ) -> FreshnessResult:
    """Freshness of an asset sqlassets builds, from the state store alone."""
    from sqlassets.run.partitions import TimePartitionsDef, partitions_def

    asset = graph[limits.asset]
    now = now or datetime.now(UTC)
    mats = state.all_materializations([asset.key]).get(asset.key, {})
    done = [(k, m) for k, m in mats.items() if m.done]
    if not done:
        return judge(limits, None)
    pdef = partitions_def(asset)
    if isinstance(pdef, TimePartitionsDef):
        from zoneinfo import ZoneInfo

        newest = max(pdef.key_start(k) for k, _ in done)
        end = pdef.next(newest).replace(tzinfo=ZoneInfo(pdef.timezone))
        return judge(limits, max(0.0, (now - end).total_seconds()), "newest partition " + pdef.format(newest))
    last = max(m.materialized_at or 0.0 for _, m in done)
    return judge(limits, max(0.0, now.timestamp() - last))


def source_loaded_at(project: Project, asset: Asset) -> datetime | None:
    """max(loaded_at_field) of a source, read from the warehouse (read-only); None when it is empty."""
    from sqlglot import exp

    field_name = (asset.config or {}).get("loaded_at_field")
    if not field_name or asset.relation is None:
        raise UserError(f"source {asset.key} has no loaded_at_field; add one to its dbt source to check freshness")
    if project.warehouse.type != "duckdb":
        raise UserError(f"source freshness reads DuckDB only for now, not {project.warehouse.type}")
    import duckdb

    table = exp.table_(asset.relation.identifier, db=asset.relation.schema, catalog=None, quoted=True)
    sql = exp.select(exp.func("max", exp.column(str(field_name), quoted=True))).from_(table).sql("duckdb")
    con = duckdb.connect(str(project.warehouse.path), read_only=True)
    try:
        value = con.execute(sql).fetchone()[0]
    finally:
        con.close()
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def source_freshness(project: Project, asset: Asset, limits: Freshness, now: datetime | None = None
                     ) -> FreshnessResult:
    now = now or datetime.now(UTC)
    try:
        latest = source_loaded_at(project, asset)
    except UserError as exc:
        return FreshnessResult(asset.key, "unknown", None, limits, str(exc))
    except Exception as exc:  # noqa: BLE001 - e.g. the warehouse file is locked by a running write
        from sqlassets.run.executor import one_line

        return FreshnessResult(asset.key, "unknown", None, limits, one_line(exc, 120))
    return judge(limits, None if latest is None else max(0.0, (now - latest).total_seconds()))


def freshness_of(project: Project, graph: AssetGraph, limits: Freshness, state: StateStore,
                 now: datetime | None = None) -> FreshnessResult:
    asset = graph[limits.asset]
    if asset.kind == "source":
        return source_freshness(project, asset, limits, now)
    if asset.is_external:
        return FreshnessResult(asset.key, "unknown", None, limits, "external table: no loaded_at_field")
    return asset_freshness(graph, limits, state, now)


# -- the foreground scheduler ------------------------------------------------------------------------

class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            time.sleep(delay)


class FakeClock:
    """A clock that jumps: tests and `--now` start the scheduler at a chosen moment."""

    def __init__(self, start: datetime) -> None:
        self.current = start if start.tzinfo else start.replace(tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, when: datetime) -> None:
        self.current = max(self.current, when)


@dataclass
class TickOutcome:
    name: str
    tick: datetime
    targets: dict[str, list[str]]
    status: str  # success | failed | nothing | skipped
    run_id: int | None = None
    message: str = ""


class Scheduler:
    """Runs schedules at their cron times and sensors every `interval`, in the foreground, one at a time.

    Runs go through `execute_request` with `wait=True`: they take the same leases as the CLI, so a tick
    never writes an asset another run (CLI, CI, another scheduler, Dagster) holds; it waits for it. A
    tick missed while a long run went on fires once when the run ends (no pile-up of old ticks).
    """

    def __init__(self, project: Project, graph: AssetGraph, automation: Automation, *,
                 clock: SystemClock | FakeClock | None = None, echo: Callable[[str], None] = print,
                 run: Callable[..., Any] | None = None) -> None:
        self.project = project
        self.graph = graph
        self.auto = automation
        self.clock = clock or SystemClock()
        self.echo = echo
        self._run = run
        self.outcomes: list[TickOutcome] = []

    def _next_fire(self, schedule: Schedule, after: datetime) -> datetime:
        from zoneinfo import ZoneInfo

        from croniter import croniter

        local = after.astimezone(ZoneInfo(schedule.timezone))
        return croniter(schedule.cron, local).get_next(datetime).astimezone(UTC)

    def run(self, *, max_ticks: int | None = None, once: bool = False, only: str | None = None) -> list[TickOutcome]:
        """Loop until interrupted or `max_ticks` ticks fired. `once`: fire what is due now and return."""
        now = self.clock.now()
        schedules = [s for s in self.auto.schedules if only is None or s.name == only]
        sensors = [s for s in self.auto.sensors if only is None or s.name == only]
        if only is not None and not schedules and not sensors:
            raise UserError(f"no schedule or sensor named '{only}'; see `sqlassets schedule --list`")
        if once:
            for s in schedules:
                if only is not None or self._matches(s, now):
                    self.fire_schedule(s, now)
            for sn in sensors:
                self.evaluate_sensor(sn, now)
            return self.outcomes
        # a tick exactly at start time fires too
        next_fire = {s.name: self._next_fire(s, now - timedelta(seconds=1)) for s in schedules}
        next_eval = {s.name: now for s in sensors}
        fired = 0
        while max_ticks is None or fired < max_ticks:
            if not next_fire and not next_eval:
                self.echo("nothing to schedule: declare schedules: or sensors: in sqlassets.yml")
                break
            wake = min([*next_fire.values(), *next_eval.values()])
            self.clock.sleep_until(wake)
            now = self.clock.now()
            for s in schedules:
                if next_fire[s.name] <= now:
                    self.fire_schedule(s, next_fire[s.name])
                    fired += 1
                    next_fire[s.name] = self._next_fire(s, max(now, self.clock.now()))
            for sn in sensors:
                if next_eval[sn.name] <= now and (max_ticks is None or fired < max_ticks):
                    self.evaluate_sensor(sn, now)
                    fired += 1
                    next_eval[sn.name] = self.clock.now() + timedelta(seconds=sn.interval)
        return self.outcomes

    def _matches(self, schedule: Schedule, now: datetime) -> bool:
        from zoneinfo import ZoneInfo

        from croniter import croniter

        return croniter.match(schedule.cron, now.astimezone(ZoneInfo(schedule.timezone)))

    def fire_schedule(self, schedule: Schedule, tick: datetime) -> TickOutcome:
        targets = schedule_targets(self.graph, schedule, tick)
        label = tick.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        if not targets:
            out = TickOutcome(schedule.name, tick, {}, "nothing", message="no partition due yet")
            self.echo(f"schedule {schedule.name} @ {label}: no partition due yet")
        else:
            self.echo(f"schedule {schedule.name} @ {label}: {_describe(targets)} (mode {schedule.mode})")
            out = self._execute(schedule.name, tick, targets, schedule.mode, f"sqlassets schedule {schedule.name}")
        self.outcomes.append(out)
        return out

    def evaluate_sensor(self, sensor: Sensor, now: datetime) -> TickOutcome:
        from sqlassets.run.state import open_state

        st = open_state(self.project, history=True)
        try:
            targets = stale_targets(self.graph, sensor.keys, st, now)
        finally:
            st.close()
        if not targets:
            out = TickOutcome(sensor.name, now, {}, "nothing")
        else:
            self.echo(f"sensor {sensor.name}: upstream changed for {_describe(targets)}")
            out = self._execute(sensor.name, now, targets, "stale", f"sqlassets schedule {sensor.name}")
        self.outcomes.append(out)
        return out

    def _execute(self, name: str, tick: datetime, targets: dict[str, list[str]], mode: str, command: str
                 ) -> TickOutcome:
        from sqlassets.run.executor import RunOptions, RunRequest, execute_request

        req = RunRequest(requested=targets, mode=mode, command=command, options=RunOptions(wait=True))
        hook_factory = None
        try:
            from sqlassets.checks.runner import hook_for

            def hook_factory(keys: list[str]) -> Any:
                return hook_for(self.project, self.graph, keys)
        except ImportError:
            pass
        try:
            runner = self._run or execute_request
            _, summary = runner(self.project, self.graph, req, hook_factory=hook_factory, echo=self.echo)
        except UserError as exc:
            self.echo(f"  {name}: error: {exc}")
            return TickOutcome(name, tick, targets, "failed", message=str(exc))
        except Exception as exc:  # noqa: BLE001 - one bad tick (warehouse down...) must not stop the scheduler
            from sqlassets.run.executor import one_line

            self.echo(f"  {name}: error: {one_line(exc)}; the next tick tries again")
            return TickOutcome(name, tick, targets, "failed", message=one_line(exc))
        if summary is None or summary.run_id is None:
            self.echo(f"  {name}: nothing to do")
            return TickOutcome(name, tick, targets, "nothing")
        self.echo(f"  {name}: run {summary.run_id} {summary.status}: {summary.done} done, {summary.failed} failed, "
                  f"{summary.skipped} skipped")
        if summary.status == "interrupted":  # Ctrl-C during a run stops the scheduler too
            raise KeyboardInterrupt
        return TickOutcome(name, tick, targets, summary.status, summary.run_id)


def _describe(targets: dict[str, list[str]]) -> str:
    parts = []
    for k, v in targets.items():
        if v == [""]:
            parts.append(k)
        elif len(v) == 1:
            parts.append(f"{k}[{v[0]}]")
        else:
            parts.append(f"{k}[{len(v)} partitions]")
    return ", ".join(parts[:6]) + (f", +{len(parts) - 6} more" if len(parts) > 6 else "")
