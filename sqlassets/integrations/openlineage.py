"""OpenLineage run events for sqlassets runs (`openlineage:` in sqlassets.yml).

One OpenLineage *job* per asset (`<namespace>.<asset key>`) and one OpenLineage *run* per (asset,
partition) written: START when its unit starts, then COMPLETE or FAIL (ABORT when Ctrl-C cancelled it).
A batch of partitions written by one statement still gets one run per partition, so a lineage server
shows partition history the way `sqlassets status` does. Each unit run names the sqlassets run as its
parent (`parent` facet; that run also gets START and COMPLETE/FAIL events of its own).

Facets: output dataset `schema` (declared columns with types, else the columns lineage found) and
`columnLineage` (from sqlassets' column lineage: copy -> DIRECT/IDENTITY, transform -> DIRECT/
TRANSFORMATION, aggregate -> DIRECT/AGGREGATION, filter -> INDIRECT/FILTER at dataset level), input
datasets with their schemas, `outputStatistics` (rows written), run facets `nominalTime` (the partition's
window), `tags` (partition key, sqlassets run id), `errorMessage` on failure, job facets `jobType`,
`sql`, `documentation` and `ownership`.

Configuration (sqlassets.yml), any transport openlineage-python knows, e.g.:

    openlineage:
      namespace: shop                      # job namespace (default: the project name)
      transport: {type: file, log_file_path: .sqlassets/openlineage.jsonl, append: true}
      # transport: {type: http, url: "{{ env_var('MARQUEZ_URL') }}", endpoint: api/v1/lineage}

Relative file paths are resolved against the project root; `{{ env_var('X') }}` is rendered as in
profiles.yml, so API keys stay in the environment.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import ConfigError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.project import Project
    from sqlassets.run.events import RunEvent

PRODUCER = "https://github.com/sqlassets/sqlassets"
_TRANSFORMS = {
    "copy": ("DIRECT", "IDENTITY"),
    "transform": ("DIRECT", "TRANSFORMATION"),
    "aggregate": ("DIRECT", "AGGREGATION"),
    "filter": ("INDIRECT", "FILTER"),
}
_JOB_TYPES = {"model": "MODEL", "seed": "SEED", "snapshot": "SNAPSHOT", "sql": "QUERY"}


def listener_from_config(project: Project, graph: AssetGraph, config: Any) -> OpenLineageListener:
    """Validate the `openlineage:` setting and build the listener (the client is created here)."""
    where = str(project.root / "sqlassets.yml")
    if not isinstance(config, dict):
        raise ConfigError("'openlineage' must be a mapping with a 'transport'", path=where)
    unknown = sorted(set(config) - {"namespace", "transport", "column_lineage"})
    if unknown:
        raise ConfigError(f"unknown openlineage setting(s) {', '.join(unknown)}; known: column_lineage, "
                          "namespace, transport", path=where)
    from sqlassets.project import _render_env

    transport = _render_env(config.get("transport"), Path(where))
    if not isinstance(transport, dict) or not isinstance(transport.get("type"), str):
        raise ConfigError("openlineage.transport must be a mapping with a 'type' (file, http, console, ...)",
                          path=where)
    transport = dict(transport)
    if transport["type"] == "file":
        if not isinstance(transport.get("log_file_path"), str):
            raise ConfigError("openlineage.transport of type file needs 'log_file_path'", path=where)
        path = Path(transport["log_file_path"])
        if not path.is_absolute():
            path = project.root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        transport["log_file_path"] = str(path)
        transport.setdefault("append", True)
    elif transport["type"] == "http" and not isinstance(transport.get("url"), str):
        raise ConfigError("openlineage.transport of type http needs 'url'", path=where)
    namespace = config.get("namespace", project.name)
    if not isinstance(namespace, str) or not namespace:
        raise ConfigError("openlineage.namespace must be a non-empty name", path=where)
    try:
        from openlineage.client import OpenLineageClient
    except ImportError:
        raise ConfigError("openlineage is configured but openlineage-python is not installed; "
                          "pip install 'sqlassets[openlineage]'", path=where) from None
    try:
        client = OpenLineageClient(config={"transport": transport})
        client.transport  # noqa: B018 - builds the transport now, so a bad type fails before the run
    except Exception as exc:  # noqa: BLE001 - the client raises many kinds for bad config
        raise ConfigError(f"openlineage.transport is not valid: {exc}", path=where) from None
    return OpenLineageListener(project, graph, client, namespace,
                               column_lineage=config.get("column_lineage", True) is not False)


def dataset_namespace(project: Project) -> str:
    """The dataset namespace of the warehouse, after OpenLineage's naming conventions where they exist."""
    wh = project.warehouse
    opts = wh.options or {}
    if wh.type == "duckdb":
        return f"duckdb://{wh.path}" if wh.path is not None else "duckdb"
    if wh.type == "snowflake":
        return f"snowflake://{opts.get('account', '')}".lower()
    if wh.type == "bigquery":
        return "bigquery"
    if wh.type in ("postgres", "redshift"):
        return f"{wh.type}://{opts.get('host', 'localhost')}:{opts.get('port', 5432)}"
    return wh.type


class OpenLineageListener:
    """A `RunListener` that turns sqlassets run events into OpenLineage RunEvents."""

    def __init__(self, project: Project, graph: AssetGraph, client: Any, namespace: str, *,
                 column_lineage: bool = True) -> None:
        self.project = project
        self.graph = graph
        self.client = client
        self.namespace = namespace
        self.ds_namespace = dataset_namespace(project)
        self.column_lineage = column_lineage
        self._lineage: dict[str, Any] | None = None
        self._runs: dict[tuple[int, str, str], str] = {}  # (sqlassets run, asset, partition) -> OL run id
        self._parent: dict[int, str] = {}
        self._static: dict[str, tuple[Any, list[Any], Any]] = {}
        self._lock = threading.Lock()

    # -- the listener protocol -------------------------------------------------------------------
    def on_event(self, event: RunEvent) -> None:
        from openlineage.client.event_v2 import RunState

        if event.kind == "run_started":
            self._emit_parent(event, RunState.START)
        elif event.kind == "run_finished":
            state = RunState.COMPLETE if event.status == "success" else (
                RunState.ABORT if event.status == "interrupted" else RunState.FAIL)
            self._emit_parent(event, state)
        elif event.kind == "unit_started":
            for key, window in zip(event.partitions, event.windows, strict=True):
                self._emit_unit(event, key, window, RunState.START)
        elif event.kind == "unit_finished":
            state = {"done": RunState.COMPLETE, "failed": RunState.FAIL}.get(event.status, RunState.ABORT)
            for i, (key, window) in enumerate(zip(event.partitions, event.windows, strict=True)):
                self._emit_unit(event, key, window, state, rows=event.rows if i == 0 else None)

    def close(self) -> None:
        close = getattr(self.client.transport, "close", None)
        if close is not None:
            close()

    # -- events ----------------------------------------------------------------------------------
    def _parent_run_id(self, run_id: int) -> str:
        # Stable across processes: the same sqlassets run always maps to the same OpenLineage run id.
        rid = self._parent.get(run_id)
        if rid is None:
            rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"sqlassets:{self.project.root}:run:{run_id}"))
            self._parent[run_id] = rid
        return rid

    def _emit_parent(self, event: RunEvent, state: Any) -> None:
        from openlineage.client.event_v2 import Job, Run, RunEvent
        from openlineage.client.facet_v2 import error_message_run, job_type_job, tags_run

        run_facets: dict[str, Any] = {"tags": tags_run.TagsRunFacet(tags=[
            tags_run.TagsRunFacetFields("sqlassets.run_id", str(event.run_id), "SQLASSETS")])}
        if event.status in ("failed", "interrupted") and event.counts:
            msg = f"{event.counts.get('failed', 0)} failed, {event.counts.get('skipped', 0)} skipped"
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=msg,
                                                                                programmingLanguage="SQL")
        job = Job(namespace=self.namespace, name=f"{self.project.name}.run", facets={
            "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="SQLASSETS",
                                                    jobType="JOB")})
        self.client.emit(RunEvent(eventType=state, eventTime=_iso(event.time), producer=PRODUCER,
                                  run=Run(runId=self._parent_run_id(event.run_id), facets=run_facets),
                                  job=job, inputs=[], outputs=[]))

    def _emit_unit(self, event: RunEvent, key: str, window: tuple[str, str] | None, state: Any,
                   rows: int | None = None) -> None:
        from openlineage.client.event_v2 import Run, RunEvent
        from openlineage.client.facet_v2 import (
            error_message_run,
            nominal_time_run,
            output_statistics_output_dataset,
            parent_run,
            tags_run,
        )
        from openlineage.client.uuid import generate_new_uuid

        asset = event.asset
        assert asset is not None
        with self._lock:
            rk = (event.run_id, asset.key, key)
            run_id = self._runs.get(rk)
            if run_id is None:
                run_id = str(generate_new_uuid())
                self._runs[rk] = run_id
            elif state.value != "START":
                del self._runs[rk]
        tags = [tags_run.TagsRunFacetFields("sqlassets.run_id", str(event.run_id), "SQLASSETS")]
        if key:
            tags.append(tags_run.TagsRunFacetFields("sqlassets.partition", key, "SQLASSETS"))
        run_facets: dict[str, Any] = {
            "parent": parent_run.ParentRunFacet(
                run=parent_run.Run(runId=self._parent_run_id(event.run_id)),
                job=parent_run.Job(namespace=self.namespace, name=f"{self.project.name}.run")),
            "tags": tags_run.TagsRunFacet(tags=tags),
        }
        if window is not None:
            tz = _tz(asset)
            run_facets["nominalTime"] = nominal_time_run.NominalTimeRunFacet(
                nominalStartTime=_window_iso(window[0], tz), nominalEndTime=_window_iso(window[1], tz))
        if state.value == "FAIL" and event.error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=event.error, programmingLanguage="SQL")
        job, inputs, output = self._static_parts(asset)
        if rows is not None and output is not None and state.value == "COMPLETE":
            import attr

            output = attr.evolve(output, outputFacets={
                "outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)})
        self.client.emit(RunEvent(
            eventType=state, eventTime=_iso(event.time), producer=PRODUCER,
            run=Run(runId=run_id, facets=run_facets), job=job,
            inputs=inputs, outputs=[output] if output is not None else []))

    def _static_parts(self, asset: Asset) -> tuple[Any, list[Any], Any]:
        """The job and datasets of an asset: the same for every partition, so built once per run."""
        with self._lock:
            parts = self._static.get(asset.key)
        if parts is None:
            inputs = [d for d in (self._dataset(self.graph[p], output=False) for p in asset.deps if p in self.graph)
                      if d is not None]
            parts = (self._job(asset), inputs, self._dataset(asset, output=True))
            with self._lock:
                self._static[asset.key] = parts
        return parts

    # -- datasets and jobs -------------------------------------------------------------------------
    def _job(self, asset: Asset) -> Any:
        from openlineage.client.event_v2 import Job
        from openlineage.client.facet_v2 import documentation_job, job_type_job, ownership_job, sql_job

        facets: dict[str, Any] = {"jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="SQLASSETS", jobType=_JOB_TYPES.get(asset.kind, "QUERY"))}
        sql = asset.compiled_sql or asset.raw_sql
        if sql:
            facets["sql"] = sql_job.SQLJobFacet(query=sql)
        if asset.description:
            facets["documentation"] = documentation_job.DocumentationJobFacet(description=asset.description)
        if asset.owner:
            facets["ownership"] = ownership_job.OwnershipJobFacet(
                owners=[ownership_job.Owner(name=asset.owner)])
        return Job(namespace=self.namespace, name=asset.key, facets=facets)

    def _dataset(self, asset: Asset, *, output: bool) -> Any:
        from openlineage.client.event_v2 import InputDataset, OutputDataset
        from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset

        if asset.relation is None:
            return None
        facets: dict[str, Any] = {}
        fields = self._schema(asset)
        if fields:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=[
                schema_dataset.SchemaDatasetFacetFields(name=n, type=t or None, description=d or None)
                for n, t, d in fields])
        if output and self.column_lineage:
            lin = self._lineage_of(asset.key)
            if lin is not None and lin.edges:
                by_col: dict[str, list[Any]] = {}
                indirect: list[Any] = []
                seen_indirect: set[tuple[str, str]] = set()
                for col, up_asset, up_col, kind in lin.edges:
                    up = self.graph.get(up_asset)
                    if up is None or up.relation is None:
                        continue
                    ttype, subtype = _TRANSFORMS.get(kind, ("DIRECT", "TRANSFORMATION"))
                    field = column_lineage_dataset.InputField(
                        namespace=self.ds_namespace, name=str(up.relation), field=up_col,
                        transformations=[column_lineage_dataset.Transformation(type=ttype, subtype=subtype)])
                    if kind == "filter":
                        if (up_asset, up_col) not in seen_indirect:
                            seen_indirect.add((up_asset, up_col))
                            indirect.append(field)
                    else:
                        by_col.setdefault(col, []).append(field)
                facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(
                    fields={c: column_lineage_dataset.Fields(inputFields=f) for c, f in by_col.items()},
                    dataset=indirect)
        cls = OutputDataset if output else InputDataset
        return cls(namespace=self.ds_namespace, name=str(asset.relation), facets=facets)

    def _schema(self, asset: Asset) -> list[tuple[str, str | None, str]]:
        if asset.columns:
            return [(c.name, c.type, c.description) for c in asset.columns]
        lin = self._lineage_of(asset.key)
        return [(c, None, "") for c in lin.columns] if lin is not None else []

    def _lineage_of(self, key: str) -> Any:
        if self._lineage is None:
            with self._lock:
                if self._lineage is None:
                    try:
                        from sqlassets.lineage.build import build_lineage

                        self._lineage = build_lineage(self.project, self.graph).columns.assets
                    except Exception:  # noqa: BLE001 - lineage is a facet, never a reason to fail a run
                        self._lineage = {}
        return self._lineage.get(key)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _tz(asset: Asset) -> str:
    from sqlassets.run.partitions import TimePartitionsDef, partitions_def

    pdef = partitions_def(asset)
    return pdef.timezone if isinstance(pdef, TimePartitionsDef) else "UTC"


def _window_iso(local: str, tz: str) -> str:
    """A window bound (naive wall-clock time in the partition's timezone) as an ISO time with offset."""
    from zoneinfo import ZoneInfo

    return datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).isoformat()
