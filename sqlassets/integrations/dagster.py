"""Dagster `Definitions` for a whole sqlassets project, executed by sqlassets' own executor and state.

    # definitions.py, loaded by `dagster dev -f definitions.py` or a code location
    from sqlassets.dagster import definitions
    defs = definitions("path/to/project")

What maps to what:
- every buildable asset (dbt model, seed, raw SQL file) -> one Dagster asset (`multi_asset` with one spec)
  whose op runs `sqlassets.run.executor.execute_request` for that asset and the partitions Dagster asked
  for; the partition is recorded in sqlassets' state store, so it is done for `sqlassets status` and
  `materialize` too; sources, external tables, snapshots and ephemeral models -> external `AssetSpec`s
  (sources with a dbt `loaded_at_field` are observable: observing reads max(loaded_at_field));
- deps, descriptions, groups, owners (`team:` unless an e-mail), tags, kinds, code versions;
  metadata `dagster/column_schema` (declared columns, else the columns lineage found),
  `dagster/column_lineage` (value edges of sqlassets' column lineage), `dagster/table_name`;
- time partitions -> Dagster time-window partitions with the same start, end (exclusive), timezone and
  key format; static partitions -> `StaticPartitionsDefinition`; batchable time-partitioned assets get a
  single-run backfill policy (a range is one run, written in batches of `batch_size`);
- GX expectations and dbt tests -> asset checks run with the materialization (the executor's
  post-materialize hook), `blocking` when critical: a failing critical check fails the step and keeps
  the partition from being recorded done, so downstream does not build; checks on sources run as
  separate asset checks;
- `schedules:`, `sensors:` and freshness limits (see `sqlassets.integrations.automation`) -> Dagster
  schedules, sensors and freshness checks; plus `sqlassets_state_sync`, a sensor that reports partitions
  done outside Dagster (CLI, CI, the foreground scheduler) as materializations, so Dagster's view matches.

DuckDB allows one writing process per file, so the default executor is in-process when the warehouse is
DuckDB; leases still keep concurrent Dagster runs and CLI runs off the same asset (runs wait for them).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import dagster as dg

    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project
    from sqlassets.run.partitions import PartitionsDef

_FMT = {"hourly": "%Y-%m-%dT%H", "daily": "%Y-%m-%d", "weekly": "%Y-%m-%d", "monthly": "%Y-%m", "yearly": "%Y"}
_CRON = {"hourly": "0 * * * *", "daily": "0 0 * * *", "weekly": "0 0 * * 1", "monthly": "0 0 1 * *",
         "yearly": "0 0 1 1 *"}
_NAME = re.compile(r"[^A-Za-z0-9_]")
_TAG = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")
RUN_TAG = "sqlassets/run_id"
DAGSTER_COMMAND = "dagster run "  # prefix of the state store's `command` for runs started from Dagster


def definitions(project_dir: str | Path = ".", *, profiles_dir: str | Path | None = None,
                target: str | None = None, column_lineage: bool = True, automation: bool = True,
                state_sync: bool = True) -> dg.Definitions:
    """Dagster `Definitions` for every asset, check, schedule and sensor of the project in `project_dir`.

    column_lineage: compute `dagster/column_lineage` (cached in the state dir after the first build);
    automation: turn `schedules:`, `sensors:` and freshness limits into Dagster objects;
    state_sync: add the `sqlassets_state_sync` sensor (partitions done outside Dagster -> Dagster).
    """

    from sqlassets.loaders import load_graph
    from sqlassets.project import load_project

    project = load_project(Path(project_dir), profiles_dir=Path(profiles_dir) if profiles_dir else None,
                           target=target)
    graph = load_graph(project)
    return DagsterBuilder(project, graph, column_lineage=column_lineage).build(automation=automation,
                                                                               state_sync=state_sync)


def asset_key(key: str) -> dg.AssetKey:
    """sqlassets key -> Dagster AssetKey: `raw.events` -> ["raw", "events"] (as dagster-dbt names sources)."""
    import dagster as dg

    return dg.AssetKey([_NAME.sub("_", p) or "_" for p in key.split(".")])


def _name(text: str) -> str:
    out = _NAME.sub("_", text).strip("_") or "x"
    return out if not out[0].isdigit() else f"_{out}"


def dagster_partitions(pdef: PartitionsDef | None, cache: dict[str, Any] | None = None) -> Any:
    """The Dagster partitions definition with the same keys: same start, end, timezone and key format."""
    import dagster as dg

    from sqlassets.run.partitions import StaticPartitionsDef, TimePartitionsDef

    if pdef is None:
        return None
    spec_key = repr(sorted(pdef.spec().items()))
    if cache is not None and spec_key in cache:
        return cache[spec_key]
    if isinstance(pdef, StaticPartitionsDef):
        out: Any = dg.StaticPartitionsDefinition(list(pdef.values))
    elif isinstance(pdef, TimePartitionsDef):
        fmt = _FMT[pdef.grain]
        start = pdef.start.strftime(fmt)
        end = pdef.end.strftime(fmt) if pdef.end is not None else None
        tz = pdef.timezone
        if pdef.grain == "daily":
            out = dg.DailyPartitionsDefinition(start_date=start, end_date=end, timezone=tz, fmt=fmt)
        elif pdef.grain == "hourly":
            out = dg.HourlyPartitionsDefinition(start_date=start, end_date=end, timezone=tz, fmt=fmt)
        elif pdef.grain == "weekly":
            out = dg.WeeklyPartitionsDefinition(start_date=start, end_date=end, timezone=tz, fmt=fmt, day_offset=1)
        elif pdef.grain == "monthly":
            out = dg.MonthlyPartitionsDefinition(start_date=start, end_date=end, timezone=tz, fmt=fmt)
        else:
            out = dg.TimeWindowPartitionsDefinition(start=start, end=end, timezone=tz, fmt=fmt,
                                                    cron_schedule=_CRON["yearly"])
    else:  # pragma: no cover - only two kinds exist
        raise TypeError(f"unknown partitions definition {pdef!r}")
    if cache is not None:
        cache[spec_key] = out
    return out


def sqlassets_key(dagster_key: str) -> str:
    """Dagster partition key -> sqlassets key. The same text, except the hour a DST fall-back repeats:
    Dagster names its second occurrence `2024-10-27T02+0100`; sqlassets keys wall-clock hours and has one
    partition for that hour, so both map to it."""
    return re.sub(r"[+-]\d{4}$", "", dagster_key)


def _owner(owner: str | None) -> list[str]:
    if not owner:
        return []
    if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", owner):
        return [owner]
    return [f"team:{_name(owner)}"]


def _tags(asset: Asset) -> dict[str, str]:
    return {t: "" for t in asset.tags if _TAG.match(t)}


def _kinds(project: Project, asset: Asset) -> set[str]:
    kinds = {"dbt"} if asset.unique_id else ({"sql"} if asset.kind == "sql" else set())
    if asset.kind == "seed":
        kinds.add("seed")
    kinds.add(project.warehouse.type)
    return kinds


@lru_cache(maxsize=1)
def _run_config_class() -> type:
    """The run config every sqlassets asset takes (one pydantic class, built once)."""
    import dagster as dg

    class SqlassetsRun(dg.Config):
        """How the sqlassets executor runs the partitions Dagster asks for."""

        mode: str = "all"  # all: rebuild what was asked; stale / missing: only what needs it
        batch_size: int = 1  # contiguous partitions written by one statement (batchable assets)

    return SqlassetsRun


class DagsterBuilder:
    """Builds the Definitions; holds the project, graph, lineage and checks they share."""

    def __init__(self, project: Project, graph: AssetGraph, *, column_lineage: bool = True) -> None:
        self.project = project
        self.graph = graph
        self._pcache: dict[str, Any] = {}
        self.lineage: dict[str, Any] = {}
        if column_lineage:
            from sqlassets.lineage.build import build_lineage

            self.lineage = build_lineage(project, graph).columns.assets
        self.checks: dict[str, list[tuple[str, str, str | None, str]]] = {}
        self.check_names: dict[tuple[str, str], str] = {}
        try:
            from sqlassets.checks.runner import CheckRunner, _planned
        except ImportError:  # checks extra not installed: no asset checks
            CheckRunner = None  # noqa: N806
        if CheckRunner is not None:
            runner = CheckRunner(project, graph)
            for key, ac in runner.checks.items():
                planned = _planned(ac)
                self.checks[key] = planned
                used: set[str] = set()
                for name, _sev, _col, _src in planned:
                    dname = _name(name)[:100]
                    base, n = dname, 2
                    while dname in used:
                        dname, n = f"{base}_{n}", n + 1
                    used.add(dname)
                    self.check_names[(key, name)] = dname

    # -- pieces ------------------------------------------------------------------------------------
    def buildable(self, asset: Asset) -> bool:
        return not (asset.is_external or asset.materialization == "ephemeral"
                    or asset.materialization == "snapshot" or asset.kind == "snapshot")

    def partitions_def(self, asset: Asset) -> Any:
        from sqlassets.run.partitions import partitions_def

        return dagster_partitions(partitions_def(asset), self._pcache)

    def metadata(self, asset: Asset) -> dict[str, Any]:
        import dagster as dg

        md: dict[str, Any] = {"sqlassets/key": asset.key, "sqlassets/kind": asset.kind,
                              "sqlassets/materialization": asset.materialization}
        if asset.relation is not None:
            md["dagster/table_name"] = str(asset.relation)
        if asset.path:
            md["sqlassets/path"] = asset.path
        lin = self.lineage.get(asset.key)
        if asset.columns:
            cols = [dg.TableColumn(c.name, c.type or "unknown", description=c.description or None)
                    for c in asset.columns]
        elif lin is not None and lin.columns:
            cols = [dg.TableColumn(c, "unknown") for c in lin.columns]
        else:
            cols = []
        if cols:
            md["dagster/column_schema"] = dg.TableSchema(columns=cols)
        if lin is not None and lin.edges:
            deps: dict[str, list[Any]] = {}
            for col, up, up_col, kind in lin.edges:
                if kind == "filter" or up not in self.graph:
                    continue
                dep = dg.TableColumnDep(asset_key=asset_key(up), column_name=up_col)
                if dep not in deps.setdefault(col, []):
                    deps[col].append(dep)
            if deps:
                md["dagster/column_lineage"] = dg.TableColumnLineage(deps_by_column=deps)
        return md

    def spec(self, asset: Asset, **extra: Any) -> dg.AssetSpec:
        import dagster as dg

        return dg.AssetSpec(
            key=asset_key(asset.key),
            deps=[asset_key(d) for d in asset.deps if d in self.graph],
            description=asset.description or None,
            metadata=self.metadata(asset),
            group_name=_name(asset.group) if asset.group else None,
            code_version=asset.code_version,
            owners=_owner(asset.owner),
            tags=_tags(asset),
            kinds=_kinds(self.project, asset),
            **extra,
        )

    def check_specs(self, asset: Asset) -> list[dg.AssetCheckSpec]:
        import dagster as dg

        out = []
        for name, sev, col, src in self.checks.get(asset.key, []):
            desc = f"{src}" + (f" on column {col}" if col else "") + f" ({sev})"
            out.append(dg.AssetCheckSpec(self.check_names[(asset.key, name)], asset=asset_key(asset.key),
                                         description=desc, blocking=sev == "critical",
                                         metadata={"sqlassets/check": name, "sqlassets/severity": sev,
                                                   "sqlassets/source": src}))
        return out

    def check_results(self, asset: Asset, results: Sequence[Any]) -> list[dg.AssetCheckResult]:
        """One Dagster result per declared check: failed if it failed or errored on any partition."""
        import dagster as dg

        by_name: dict[str, list[Any]] = {}
        for r in results:
            by_name.setdefault(r.check, []).append(r)
        out = []
        for name, sev, _col, _src in self.checks.get(asset.key, []):
            got = by_name.get(name, [])
            bad = [r for r in got if r.status in ("fail", "error")]
            md: dict[str, Any] = {"sqlassets/severity": sev, "partitions checked": len(got)}
            if bad:
                md["failed partitions"] = ", ".join(r.partition or "-" for r in bad[:20])
                md["message"] = bad[0].message or ""
                if bad[0].observed is not None:
                    md["observed"] = str(bad[0].observed)[:500]
            if not got:
                md["note"] = "not run (nothing was written)"
            out.append(dg.AssetCheckResult(
                asset_key=asset_key(asset.key), check_name=self.check_names[(asset.key, name)], passed=not bad,
                # the result's own severity: a dbt test past warn_if but not error_if is a warning
                severity=dg.AssetCheckSeverity.ERROR if (any(r.blocking for r in bad) or (not bad and sev == "critical"))
                else dg.AssetCheckSeverity.WARN,
                metadata=md))
        return out

    # -- assets ------------------------------------------------------------------------------------
    def materializable(self, asset: Asset) -> dg.AssetsDefinition:
        import dagster as dg

        from sqlassets.run.partitions import TimePartitionsDef, partitions_def
        from sqlassets.run.planner import strategy_name

        pdef = partitions_def(asset)
        dpart = self.partitions_def(asset)
        policy = None
        if isinstance(pdef, TimePartitionsDef) and pdef.batchable and \
                strategy_name(asset, pdef) in ("partition_replace", "merge"):
            policy = dg.BackfillPolicy.single_run()
        elif pdef is not None:
            policy = dg.BackfillPolicy.multi_run(1)
        builder = self

        def _op(context, config):  # type: ignore[no-untyped-def]
            yield from builder.execute(context, asset, config.mode, config.batch_size)

        # Real annotations (this module uses postponed ones, which Dagster cannot resolve in a closure).
        _op.__annotations__ = {"context": dg.AssetExecutionContext, "config": _run_config_class()}
        return dg.multi_asset(name=f"sqlassets__{_name(asset.key)}", specs=[self.spec(asset, partitions_def=dpart)],
                              check_specs=self.check_specs(asset), backfill_policy=policy,
                              op_tags={"sqlassets/asset": asset.key})(_op)

    def execute(self, context: Any, asset: Asset, mode: str, batch_size: int) -> Iterable[Any]:
        """Run `asset` for the requested partitions through sqlassets' executor, state and leases."""
        import dagster as dg

        from sqlassets.errors import UserError
        from sqlassets.run.executor import RunOptions, RunRequest, execute_request
        from sqlassets.run.state import open_state

        if mode not in ("all", "stale", "missing"):
            raise dg.Failure(f"mode must be all, stale or missing, not {mode!r}")
        partitions = None
        if context.has_partition_key_range or context.has_partition_key:
            rng = context.partition_key_range
            start, end = sqlassets_key(rng.start), sqlassets_key(rng.end)
            partitions = start if start == end else f"{start}..{end}"
        results: list[Any] = []
        hook = None
        if asset.key in self.checks:
            from sqlassets.checks.runner import hook_for

            runner = hook_for(self.project, self.graph, [asset.key])

            def hook(a: Any, partition: Any, window: Any, adapter: Any) -> Any:
                got = list(runner(a, partition, window, adapter)) if runner is not None else []
                results.extend(got)
                return got

        lines: list[str] = []
        req = RunRequest(keys=[asset.key], partitions=partitions, mode=mode,
                         command=f"{DAGSTER_COMMAND}{context.run_id}",
                         options=RunOptions(batch_size=max(1, batch_size), wait=True))
        try:
            plan, summary = execute_request(self.project, self.graph, req, hook=hook, echo=lines.append)
        except UserError as exc:
            raise dg.Failure(description=f"sqlassets: {exc}") from None
        for line in lines:
            context.log.info(line)
        yield from self.check_results(asset, results)
        if summary is None or summary.status != "success":
            failures = summary.failures if summary is not None else []
            first = failures[0] if failures else (asset.key, partitions or "-", "not run")
            raise dg.Failure(
                description=f"sqlassets run {summary.run_id if summary else '-'} {summary.status if summary else ''}:"
                            f" {first[0]} [{first[1]}]: {first[2]}",
                metadata={"failed partitions": len(failures)})
        md: dict[str, Any] = {"sqlassets/mode": mode, "partitions written": summary.done}
        if summary.run_id is not None:
            md[RUN_TAG] = summary.run_id
            with open_state(self.project, readonly=True) as st:
                rows = sum(s["rows"] or 0 for s in st.steps(summary.run_id) if s["status"] == "done")
            md["dagster/row_count"] = rows
        else:
            md["note"] = "already done in sqlassets state: nothing to run"
        yield dg.MaterializeResult(asset_key=asset_key(asset.key), metadata=md)

    def external(self, asset: Asset) -> Any:
        """Sources and other assets sqlassets does not build; observable when dbt gives a loaded_at_field."""
        import dagster as dg

        spec = self.spec(asset, partitions_def=self.partitions_def(asset) if not asset.is_external else None)
        loaded_at = (asset.config or {}).get("loaded_at_field")
        if asset.kind != "source" or not loaded_at or asset.relation is None:
            return spec
        builder = self

        def _observe(context):  # type: ignore[no-untyped-def]
            latest = builder.loaded_at(asset)
            yield dg.ObserveResult(asset_key=asset_key(asset.key),
                                   data_version=dg.DataVersion(str(latest)),
                                   metadata={"loaded_at (max)": str(latest),
                                             "dagster/last_updated_timestamp": latest.timestamp()
                                             if latest is not None else 0.0})

        _observe.__annotations__ = {"context": dg.AssetExecutionContext}
        import warnings

        with warnings.catch_warnings():  # beta in 1.13; the pinned version is the one tested
            warnings.simplefilter("ignore", dg.BetaWarning)
            return dg.multi_observable_source_asset(name=f"observe__{_name(asset.key)}", specs=[spec])(_observe)

    def loaded_at(self, asset: Asset) -> Any:
        from sqlassets.integrations.automation import source_loaded_at

        return source_loaded_at(self.project, asset)

    def source_checks(self) -> list[Any]:
        """Checks on assets sqlassets does not build (dbt tests on sources): run on demand."""
        import dagster as dg

        out = []
        for key in self.checks:
            asset = self.graph[key]
            if self.buildable(asset):
                continue

            out.append(dg.multi_asset_check(name=f"checks__{_name(key)}", specs=self.check_specs(asset),
                                            can_subset=True)(self._check_fn(asset)))
        return out

    def _check_fn(self, asset: Asset) -> Any:
        import dagster as dg

        def _checks(context):  # type: ignore[no-untyped-def]
            selected = context.selected_asset_check_keys
            for r in self.run_checks(asset):
                if dg.AssetCheckKey(r.asset_key, r.check_name) in selected:
                    yield r

        _checks.__annotations__ = {"context": dg.AssetCheckExecutionContext}
        return _checks

    def run_checks(self, asset: Asset) -> list[Any]:
        from sqlassets.adapters.base import adapter_for
        from sqlassets.checks.runner import CheckRunner, duckdb_connection

        runner = CheckRunner(self.project, self.graph, [asset.key])
        runner.prepare()
        adapter = adapter_for(self.project.warehouse, wait=True)
        adapter.open()
        try:
            results = runner.run_asset(asset.key, duckdb_connection(adapter))
        finally:
            adapter.close()
        return self.check_results(asset, results)

    # -- state sync ------------------------------------------------------------------------------------
    def state_sync_sensor(self) -> dg.SensorDefinition:
        import dagster as dg

        builder = self

        def _sync(context):  # type: ignore[no-untyped-def]
            events, cursor = builder.sync_events(float(context.cursor) if context.cursor else None)
            return dg.SensorResult(asset_events=events, cursor=str(cursor))

        _sync.__annotations__ = {"context": dg.SensorEvaluationContext}
        return dg.sensor(name="sqlassets_state_sync", minimum_interval_seconds=60,
                         default_status=dg.DefaultSensorStatus.RUNNING,
                         description="Reports partitions that sqlassets runs outside Dagster (CLI, CI, the "
                                     "foreground scheduler) wrote, as materializations, so Dagster shows the same "
                                     "state.")(_sync)

    def sync_events(self, since: float | None) -> tuple[list[Any], float]:
        """Materializations recorded by sqlassets runs not started from Dagster, newer than `since`."""
        import dagster as dg

        from sqlassets.run.state import open_state

        st = open_state(self.project, history=True)
        events: list[Any] = []
        cursor = since or 0.0
        try:
            mats = st.all_materializations([a.key for a in self.graph if self.buildable(a)])
            commands: dict[int, str] = {}
            for key, parts in mats.items():
                pdef = self.partitions_def(self.graph[key])
                known = set(pdef.get_partition_keys()) if pdef is not None else None
                for part, m in sorted(parts.items()):
                    if not m.done or m.materialized_at is None or (since is not None and m.materialized_at <= since):
                        continue
                    cursor = max(cursor, m.materialized_at)
                    if known is not None and part not in known:
                        continue  # e.g. a wall-clock hour a DST spring-forward skips: no such Dagster partition
                    if m.run_id is not None and m.run_id not in commands:
                        run = st.run(m.run_id)
                        commands[m.run_id] = (run or {}).get("command") or ""
                    if commands.get(m.run_id or -1, "").startswith(DAGSTER_COMMAND):
                        continue  # Dagster already recorded what its own runs wrote
                    events.append(dg.AssetMaterialization(
                        asset_key=asset_key(key), partition=part if (part and pdef is not None) else None,
                        metadata={RUN_TAG: m.run_id or 0, "dagster/row_count": m.rows or 0,
                                  "sqlassets/materialized_at": time.strftime(
                                      "%Y-%m-%d %H:%M:%S", time.localtime(m.materialized_at))}))
        finally:
            st.close()
        return events, cursor

    # -- everything ------------------------------------------------------------------------------------
    def assets(self) -> list[Any]:
        return [self.materializable(a) if self.buildable(a) else self.external(a) for a in self.graph]

    def build(self, *, automation: bool = True, state_sync: bool = True) -> dg.Definitions:
        import dagster as dg

        assets = self.assets()
        checks = self.source_checks()
        schedules: list[Any] = []
        sensors: list[Any] = []
        jobs: list[Any] = []
        if automation:
            from sqlassets.integrations.automation import load_automation

            auto = load_automation(self.project, self.graph)
            if auto:
                from sqlassets.integrations.dagster_automation import automation_definitions

                a_jobs, a_schedules, a_sensors, a_checks = automation_definitions(self, auto)
                jobs += a_jobs
                schedules += a_schedules
                sensors += a_sensors
                checks += a_checks
        if state_sync:
            sensors.append(self.state_sync_sensor())
        executor = dg.in_process_executor if self.project.warehouse.type == "duckdb" else None
        return dg.Definitions(assets=assets, asset_checks=checks or None, schedules=schedules or None,
                              sensors=sensors or None, jobs=jobs or None, executor=executor)
