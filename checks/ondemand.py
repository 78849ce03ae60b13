"""`sqlassets check`: run the selected assets' checks against the warehouse and store the results.

The warehouse is opened read-only: checking never writes to it, and DuckDB refuses (one clear line)
when a run in another process holds it for writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlassets.check_results import CheckResult
from sqlassets.errors import UserError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project


@dataclass
class CheckOutcome:
    results: list[CheckResult]
    run_id: int | None

    @property
    def blocking(self) -> list[CheckResult]:
        return [r for r in self.results if r.blocking]


def open_warehouse_readonly(project: Project, *, write: bool = False):
    """A read-only DuckDB connection to the project's warehouse; UserError when it cannot be opened.

    `write`: read-write instead, only when a selected dbt test stores its failures (`store_failures`),
    which dbt writes to the audit schema as `dbt test` does.
    """
    wh = project.warehouse
    if wh.type != "duckdb":  # a cloud warehouse: checks only read, through the adapter's connection
        from sqlassets.adapters.base import ChecksConnection, adapter_for

        adapter = adapter_for(wh)
        conn = adapter.checks_connection()
        return ChecksConnection(adapter, conn.dbapi, owns_adapter=True)
    if wh.path is None or not wh.path.exists():
        raise UserError(f"warehouse {wh.path} does not exist; build it first with `sqlassets materialize`")
    import duckdb

    try:
        return duckdb.connect(str(wh.path), read_only=not write)
    except duckdb.Error as exc:
        first = str(exc).splitlines()[0]
        how = "for writing test failures" if write else "read-only"
        raise UserError(f"cannot open warehouse {wh.path} {how} ({first}); is a run writing to it?") from None


def partitions_to_check(runner, graph: AssetGraph, spec: str | None) -> dict[str, list[str]]:
    """`--partitions` resolved per partitioned asset that has checks (validated; bad keys -> exit 2)."""
    if spec is None:
        return {}
    from sqlassets.run.partitions import partitions_def, select_keys

    out: dict[str, list[str]] = {}
    for key in runner.checks:
        pdef = partitions_def(graph[key])
        if pdef is not None:
            out[key] = select_keys(pdef, spec)
    if not out:
        raise UserError("--partitions was given but none of the selected assets with checks is partitioned")
    return out


def run_on_demand(project: Project, graph: AssetGraph, *, select: Sequence[str] = (), exclude: Sequence[str] = (),
                  partitions: str | None = None, command: str = "check", store: bool = True,
                  engine: str | None = None) -> CheckOutcome | None:
    """Run the checks of the selected assets; None when none of them has a check."""
    import time

    from sqlassets.checks.runner import CheckRunner
    from sqlassets.selection import select_keys as select_assets

    started_at = time.time()  # the run's recorded time is what the user waited for, compiling included
    keys = select_assets(graph, list(select) or None, list(exclude) or None)
    if not keys and (select or exclude):
        raise UserError("the selection matches no asset; see `sqlassets list --select ...`")
    runner = CheckRunner(project, graph, keys, engine=engine)
    if not runner:
        return None
    wanted = partitions_to_check(runner, graph, partitions)
    runner.prepare()  # compile dbt tests before touching the warehouse
    stores = any(t.store_failures_as for c in runner.checks.values() for t in c.dbt_tests)
    con = open_warehouse_readonly(project, write=stores)
    try:
        results = runner.run(con, wanted)
    finally:
        con.close()
    run_id = None
    if store:
        from sqlassets.run.state import open_state

        with open_state(project) as state:
            run_id = state.start_run("check", command=command,
                                     options={"select": list(select), "exclude": list(exclude),
                                              "partitions": partitions}, started_at=started_at)
            state.record_check_results(run_id, results)
            blocking = sum(1 for r in results if r.blocking)
            state.finish_run(run_id, "failed" if blocking else "success", planned=len(results),
                             done=sum(1 for r in results if r.status == "pass"), failed=blocking,
                             skipped=sum(1 for r in results if r.status == "skipped"))
        from sqlassets.loaders.raw_sql import save_tables_cache

        save_tables_cache()  # the next `check` loads the project without parsing its SQL files
    return CheckOutcome(results, run_id)
