"""Run an asset's checks: on demand (`sqlassets check`) and after each materialization (the hook).

`CheckRunner` implements `sqlassets.check_results.PostMaterializeHook`: the executor calls it after a
partition's data commits and before it records the partition done; a `critical` check that fails or
errors comes back `blocking`, so the executor marks the unit failed and does not build its downstream.
`warning` and `info` results are only reported. Results are stored by whoever owns the run (the executor
for materialize/backfill runs, the `check` command for on-demand runs).

Discovery is cheap (JSON reads, no GX, no dbt); GX is imported on the first suite that runs and dbt only
when the compiled-test cache is cold. `hook_for` returns None when nothing selected has checks, so a run
without checks pays nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from sqlassets.check_results import CheckResult, Severity
from sqlassets.checks.dbt_tests import compiled_tests, discover_tests, restrict_to_partition, run_test
from sqlassets.checks.specs import AssetChecks
from sqlassets.checks.suites import checks_config, discover_suites
from sqlassets.errors import UserError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset, Relation
    from sqlassets.project import Project


def partition_where(asset: Asset, partition: str | None, window: tuple[str, str] | None) -> str | None:
    """The SQL predicate selecting one partition's rows, rendered by sqlglot from validated values.

    Time partitions: `col >= CAST('<start>' AS TIMESTAMP) AND col < CAST('<end>' AS TIMESTAMP)` (the
    executor's half-open window); static partitions: `col = '<key>'`. None for unpartitioned assets.
    """
    pred = partition_predicate(asset, partition, window)
    return pred.sql(dialect=asset.dialect or "duckdb") if pred is not None else None


def _as_dates(start: str, end: str) -> tuple[str, str] | None:
    """The window as dates when both ends are midnights (a DATE column is then compared without casts)."""
    import datetime as dt

    try:
        a, b = dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end)
    except ValueError:
        return None
    if a.time() != dt.time(0) or b.time() != dt.time(0):
        return None
    return a.date().isoformat(), b.date().isoformat()


def partition_predicate(asset: Asset, partition: str | None, window: tuple[str, str] | None,
                        column_type: str | None = None) -> Any:
    """`partition_where` as a sqlglot expression (for the SQL engine, which renders it in its dialect).

    `column_type`: the partition column's type when known; a DATE column is compared with DATE literals
    (a TIMESTAMP comparison would cast every row and defeat the engine's min/max pruning: checking one
    day of a year-long table would scan all of it).
    """
    if partition is None:
        return None
    from sqlglot import exp

    from sqlassets.run.partitions import TimePartitionsDef, partitions_def

    pdef = partitions_def(asset)
    if pdef is None or pdef.column is None:
        return None
    # Validates: a key can never carry SQL. A batch is checked as one `first..last` range of keys.
    first, _, last = partition.partition("..")
    key = pdef.parse_key(first)
    last_key = pdef.parse_key(last) if last else key
    col = exp.column(pdef.column, quoted=True)
    if isinstance(pdef, TimePartitionsDef):
        start, end = window if window is not None else (pdef.window(key).iso()[0], pdef.window(last_key).iso()[1])
        kind = "TIMESTAMP"
        if column_type is not None and column_type.upper() == "DATE":
            dates = _as_dates(start, end)
            if dates is not None:
                (start, end), kind = dates, "DATE"
        pred = exp.and_(
            exp.GTE(this=col, expression=exp.cast(exp.Literal.string(start), kind)),
            exp.LT(this=col.copy(), expression=exp.cast(exp.Literal.string(end), kind)),
        )
    else:
        pred = exp.EQ(this=col, expression=exp.Literal.string(key))
    return pred


def existing_relations(connection: Any) -> set[tuple[str, str, str]]:
    """(database, schema, name) of every table and view, lower-cased: one catalog query per check call."""
    remote = getattr(connection, "sqlassets_relations", None)
    if remote is not None:  # a cloud warehouse: its INFORMATION_SCHEMA, through the adapter
        return remote()
    cursor = connection.cursor()
    try:
        rows = cursor.execute(
            "select database_name, schema_name, table_name from duckdb_tables() union all "
            "select database_name, schema_name, view_name from duckdb_views() where not internal"
        ).fetchall()
        current = cursor.execute("select current_database()").fetchone()[0]
    finally:
        cursor.close()
    out = {(str(d).lower(), str(s).lower(), str(t).lower()) for d, s, t in rows}
    out.add(("", "", str(current).lower()))  # remembers the default catalog for relations without one
    return out


def _exists(rel: Relation, existing: set[tuple[str, str, str]]) -> bool:
    default_db = next((t for d, s, t in existing if d == "" and s == ""), "")
    key = ((rel.database or default_db).lower(), (rel.schema or "main").lower(), rel.identifier.lower())
    return key in existing


def _planned(checks: AssetChecks) -> list[tuple[str, Severity, str | None, str]]:
    out: list[tuple[str, Severity, str | None, str]] = []
    for suite in checks.suites:
        out += [(e.name, e.severity, e.column, f"gx:{suite.path}") for e in suite.expectations]
    out += [(t.name, t.severity, t.column, f"dbt:{t.unique_id}") for t in checks.dbt_tests]
    return out


def duckdb_connection(adapter: Any) -> Any:
    """The DuckDB connection behind an executor adapter (checks run on cursors of it)."""
    conn = getattr(adapter, "connection", None)
    if conn is None or not hasattr(conn, "cursor"):
        return None
    return conn


class CheckRunner:
    """All checks of a project (optionally limited to `keys`), runnable per asset and partition."""

    def __init__(self, project: Project, graph: AssetGraph, keys: Iterable[str] | None = None,
                 engine: str | None = None) -> None:
        self.project = project
        self.graph = graph
        config = checks_config(project)
        self.engine = engine or config.engine
        suites = discover_suites(project, graph, config)
        tests = discover_tests(project, graph) if config.dbt_tests else {}
        wanted = set(keys) if keys is not None else None
        self.checks: dict[str, AssetChecks] = {}
        for key in graph.topo_order:
            if wanted is not None and key not in wanted:
                continue
            ac = AssetChecks(key, tuple(suites.get(key, ())), tuple(tests.get(key, ())))
            if ac:
                self.checks[key] = ac
        self._compiled: dict[str, str] | None = None
        self._columns: dict[str, Any] = {}  # relation -> columns, for the SQL engine (one read per run)
        self._exists: set[str] = set()  # assets whose relation this run has seen in the warehouse
        self._lock = threading.Lock()
        self.results: list[CheckResult] = []
        self._plans: Any = None

    @property
    def plans(self) -> Any:
        """Where compiled check queries are remembered between runs (a warm `check` skips sqlglot)."""
        if self._plans is None:
            from sqlassets.checks.pushdown.evaluate import PlanStore

            self._plans = PlanStore(self.project.state_dir / "check_plans")
        return self._plans

    def __bool__(self) -> bool:
        return bool(self.checks)

    @property
    def count(self) -> int:
        return sum(c.count for c in self.checks.values())

    def _compiled_sql(self) -> dict[str, str]:
        with self._lock:
            if self._compiled is None:
                tests = [t for c in self.checks.values() for t in c.dbt_tests]
                self._compiled = compiled_tests(self.project, tests) if tests else {}
            return self._compiled

    def prepare(self) -> None:
        """Compile dbt tests now (before a run starts), so a compile error is a usage error, not a check.

        Also make sure Great Expectations is there when a suite needs it (an expectation the SQL engine
        does not cover, or `engine: gx`): without it, one line naming the extra to install (exit 2)
        instead of every check failing with ModuleNotFoundError.
        """
        self.require_gx()
        self._compiled_sql()

    def require_gx(self) -> None:
        from sqlassets.checks.pushdown.evaluate import split

        for checks in self.checks.values():
            for suite in checks.suites:
                _ours, theirs = split(suite, self.engine)
                if not theirs:
                    continue
                try:
                    import great_expectations  # noqa: F401 - availability probe; the suite imports it anyway
                except ImportError:
                    first = theirs[0]
                    why = "engine gx was asked for" if self.engine == "gx" else \
                        "the SQL engine does not cover it"
                    raise UserError(f"{suite.path}: {first.type} needs Great Expectations ({why}), which is "
                                    "not installed; install it with pip install 'sqlassets[checks]'") from None
                return

    def run_asset(self, key: str, connection: Any, partition: str | None = None,
                  window: tuple[str, str] | None = None) -> list[CheckResult]:
        """Every check of `key`, on the whole table or only `partition`'s rows."""
        checks = self.checks.get(key)
        if not checks:
            return []
        asset = self.graph[key]
        results: list[CheckResult] = []
        if asset.relation is None:
            return results
        if hasattr(connection, "sqlassets_relations"):  # `sqlassets check` on a cloud warehouse
            return self._run_elsewhere(asset, connection.adapter, partition, window)
        rel = asset.relation
        # One catalog read per asset and run (a backfill's later partitions find the table there already);
        # dbt tests also need to know which of the relations they read exist.
        existing: set[tuple[str, str, str]] = set()
        if key not in self._exists or checks.dbt_tests:
            existing = existing_relations(connection)
            if not _exists(rel, existing):
                message = f"{rel} does not exist in the warehouse; materialize {key} first"
                return self._record([
                    CheckResult(asset=key, check=name, status="error", severity=sev, partition=partition,
                                column=col, expected=None, message=message, source=src)
                    for name, sev, col, src in _planned(checks)])
            self._exists.add(key)
        if checks.suites:
            from sqlassets.checks.pushdown.evaluate import DuckDBAccess

            results.extend(self._run_suites(checks, asset, DuckDBAccess(connection, cache=self._columns),
                                            connection, partition, window))
        if checks.dbt_tests:
            results.extend(self._run_dbt_tests(checks, asset, connection, existing, partition, window))
        return self._record(results)

    def _run_dbt_tests(self, checks: AssetChecks, asset: Asset, connection: Any, existing: set[tuple[str, str, str]],
                       partition: str | None, window: tuple[str, str] | None) -> list[CheckResult]:
        """The asset's dbt tests on `connection` (DB-API), limited to the partition where the SQL allows."""
        rel = asset.relation
        assert rel is not None
        key = asset.key
        results: list[CheckResult] = []
        where = partition_where(asset, partition, window)
        compiled = self._compiled_sql()
        for test in checks.dbt_tests:
            sql = compiled.get(test.unique_id)
            note = ""
            missing = [d for d in test.depends_on if d != key and self.graph[d].relation is not None
                       and not _exists(self.graph[d].relation, existing)]
            if missing:
                results.append(CheckResult(
                    asset=key, check=test.name, status="skipped", severity=test.severity, partition=partition,
                    column=test.column, message=f"reads {', '.join(missing)}, which is not built yet",
                    source=f"dbt:{test.unique_id}"))
                continue
            if sql is not None and where is not None:
                scoped = restrict_to_partition(sql, rel, where, asset.dialect or "duckdb")
                if scoped is None:
                    note = "whole table (the test SQL could not be limited to the partition)"
                else:
                    sql = scoped
            started = time.perf_counter()
            r = run_test(test, sql, connection, partition=partition, scope_note=note)
            r.details["seconds"] = time.perf_counter() - started
            results.append(r)
        return results

    def _run_suites(self, checks: AssetChecks, asset: Asset, access: Any, connection: Any,
                    partition: str | None, window: tuple[str, str] | None) -> list[CheckResult]:
        """Each suite: covered expectations in one SQL query, the rest (or all, engine gx) through GX."""
        from dataclasses import replace

        from sqlassets.checks.pushdown.evaluate import TableRef, evaluate, split

        rel = asset.relation
        assert rel is not None
        adapter = getattr(access, "adapter", None)  # a cloud warehouse: the adapter's spelling and relocation
        table = (adapter.table(rel) if adapter is not None
                 else TableRef(rel.identifier, db=rel.schema, catalog=rel.database))
        pred = partition_predicate(asset, partition, window, self._partition_column_type(asset, access, table))
        out: list[CheckResult] = []
        for suite in checks.suites:
            ours, theirs = split(suite, self.engine)
            got: dict[int, CheckResult] = {}
            if ours:
                for e, r in zip(ours, evaluate(suite, ours, access, table=table, where=pred, partition=partition,
                                               store=self.plans), strict=True):
                    got[e.index] = r
            if theirs:
                if connection is None:
                    for e in theirs:
                        got[e.index] = CheckResult(
                            asset=asset.key, check=e.name, status="skipped", severity=e.severity, partition=partition,
                            column=e.column, source=f"gx:{suite.path}", details={"engine": "gx"},
                            message=f"{e.type} runs through Great Expectations, on DuckDB only for now")
                else:
                    from sqlassets.checks.gx import validate_suite  # imports GX: only when GX has work

                    started = time.perf_counter()
                    gx_results = validate_suite(replace(suite, expectations=tuple(theirs)), connection,
                                                relation=(rel.database, rel.schema, rel.identifier),
                                                where=pred.sql(dialect=asset.dialect or "duckdb")
                                                if pred is not None else None, partition=partition)
                    share = (time.perf_counter() - started) / max(1, len(gx_results))
                    for e, r in zip(theirs, gx_results, strict=True):
                        r.details["seconds"] = share  # one GX validation runs them all: split its time
                        got[e.index] = r
            out.extend(got[e.index] for e in suite.expectations)
        return out

    def _partition_column_type(self, asset: Asset, access: Any, table: Any) -> str | None:
        from sqlassets.run.partitions import partitions_def

        pdef = partitions_def(asset)
        if pdef is None or pdef.column is None:
            return None
        cols = access.columns(table)
        if cols is None:
            return None
        try:
            return cols.types[cols.names.index(cols.resolve(pdef.column))]
        except (KeyError, ValueError):
            return None

    def _record(self, results: list[CheckResult]) -> list[CheckResult]:
        with self._lock:
            self.results.extend(results)
        return results

    def run(self, connection: Any, partitions: dict[str, Sequence[str]] | None = None) -> list[CheckResult]:
        """On demand: every selected asset's checks; `partitions` limits partitioned assets to those keys."""
        out: list[CheckResult] = []
        for key in self.checks:
            keys = (partitions or {}).get(key)
            if keys:
                for k in keys:
                    out.extend(self.run_asset(key, connection, k))
            else:
                out.extend(self.run_asset(key, connection))
        return out

    # -- grouped checks: many finished partitions of one asset in one query ------------------------------
    # Checks observe a partition after it commits, so the executor may hold finished partitions back and
    # check up to `group_size` of them at once (they are recorded, and their downstream released, only
    # then): one grouped query instead of one per partition, the same per-partition results.
    group_size = 64

    def groupable(self, asset: Asset, adapter: Any) -> bool:
        """Whether `asset`'s partitions can be checked together: DuckDB, time partitions on a column, and
        only GX suites whose expectations the SQL engine covers (dbt tests and GX run per partition)."""
        checks = self.checks.get(asset.key)
        if not checks or checks.dbt_tests or self.group_size <= 1 or asset.relation is None:
            return False
        if duckdb_connection(adapter) is None:
            return False
        from sqlassets.checks.pushdown.evaluate import split
        from sqlassets.run.partitions import TimePartitionsDef, partitions_def

        pdef = partitions_def(asset)
        if not isinstance(pdef, TimePartitionsDef) or pdef.column is None:
            return False
        return all(not split(suite, self.engine)[1] for suite in checks.suites)

    def run_grouped(self, asset: Asset, scopes: Sequence[tuple[str, tuple[str, str]]],
                    adapter: Any) -> list[list[CheckResult]]:
        """The checks of several (partition label, window) scopes of `asset`: one list per scope, each what
        `run_asset` gives for that scope alone (which judges whatever the grouped query cannot)."""
        from sqlassets.checks.pushdown.evaluate import DuckDBAccess, TableRef, evaluate_grouped
        from sqlassets.run.partitions import partitions_def

        connection = duckdb_connection(adapter)
        key, rel, checks = asset.key, asset.relation, self.checks[asset.key]
        pdef = partitions_def(asset)
        assert rel is not None and pdef is not None and pdef.column is not None
        if key not in self._exists:  # the first scopes of a run: the existence check of `run_asset`
            if not _exists(rel, existing_relations(connection)):
                return [self.run_asset(key, connection, label, window) for label, window in scopes]
            self._exists.add(key)
        access = DuckDBAccess(connection, cache=self._columns)
        table = TableRef(rel.identifier, db=rel.schema, catalog=rel.database)
        kind, windows = "TIMESTAMP", [(label, start, end) for label, (start, end) in scopes]
        column_type = self._partition_column_type(asset, access, table)
        if column_type is not None and column_type.upper() == "DATE":
            dates = [_as_dates(start, end) for _, start, end in windows]
            if all(d is not None for d in dates):  # as `partition_predicate`: DATE literals for a DATE column
                kind = "DATE"
                windows = [(label, *d) for (label, _, _), d in zip(windows, dates, strict=True)]  # type: ignore[misc]
            elif any(d is not None for d in dates):
                return [self.run_asset(key, connection, label, window) for label, window in scopes]
        judged = [evaluate_grouped(suite, suite.expectations, access, table=table, column=pdef.column, kind=kind,
                                   scopes=windows, store=self.plans) for suite in checks.suites]
        out: list[list[CheckResult]] = []
        for label, window in scopes:
            if all(label in by_label for by_label in judged):
                out.append(self._record([r for by_label in judged for r in by_label[label]]))
            else:
                out.append(self.run_asset(key, connection, label, window))
        return out

    # -- PostMaterializeHook -----------------------------------------------------------------------------
    def __call__(self, asset: Asset, partition: str | None, window: tuple[str, str] | None,
                 adapter: Any) -> Sequence[CheckResult]:
        if asset.key not in self.checks:
            return []
        conn = duckdb_connection(adapter)
        if conn is None:
            return self._run_elsewhere(asset, adapter, partition, window)
        return self.run_asset(asset.key, conn, partition, window)

    def _run_elsewhere(self, asset: Asset, adapter: Any, partition: str | None,
                       window: tuple[str, str] | None) -> list[CheckResult]:
        """A warehouse other than DuckDB: suites through the SQL engine on the adapter's session (GX-only
        expectations are skipped with a reason); dbt tests through the adapter's DB-API connection where
        it has one (Snowflake), else skipped with a reason."""
        from sqlassets.checks.pushdown.evaluate import AdapterAccess

        checks = self.checks[asset.key]
        results: list[CheckResult] = []
        if checks.suites and asset.relation is not None:
            results.extend(self._run_suites(checks, asset, AdapterAccess(adapter, asset.relation), None,
                                            partition, window))
        if checks.dbt_tests and asset.relation is not None and getattr(adapter, "remote", False):
            # dbt tests through the adapter's DB-API connection (this thread's session).
            connection = adapter.checks_connection()
            existing = existing_relations(connection)
            if not _exists(asset.relation, existing):
                message = f"{asset.relation} does not exist in the warehouse; materialize {asset.key} first"
                results.extend(CheckResult(asset=asset.key, check=t.name, status="error", severity=t.severity,
                                           partition=partition, column=t.column, message=message,
                                           source=f"dbt:{t.unique_id}") for t in checks.dbt_tests)
            else:
                results.extend(self._run_dbt_tests(checks, asset, connection, existing, partition, window))
            return self._record(results)
        for t in checks.dbt_tests:
            results.append(CheckResult(asset=asset.key, check=t.name, status="skipped", severity=t.severity,
                                       partition=partition, column=t.column, source=f"dbt:{t.unique_id}",
                                       message=f"dbt tests run on DuckDB only for now (adapter "
                                       f"{type(adapter).__name__})"))
        return self._record(results)


def hook_for(project: Project, graph: AssetGraph, keys: Iterable[str] | None = None,
             engine: str | None = None) -> CheckRunner | None:
    """The post-materialize hook for a run over `keys`, or None when none of them has a check."""
    runner = CheckRunner(project, graph, keys, engine=engine)
    if not runner:
        return None
    runner.prepare()
    return runner
