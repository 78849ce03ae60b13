"""dbt data tests (generic and singular) as checks on the assets they test.

Tests are read from the manifest the loader already keeps fresh (`nodes` with resource_type "test"):
a generic test attaches to its `attached_node`; a singular test to the one asset it reads, or, when it
reads several, to the most downstream of them (it runs once, after the last of its inputs is built).

They run from their compiled SQL exactly as dbt's test materialization does: one query
`select <fail_calc> as failures, <fail_calc> <warn_if> as should_warn, <fail_calc> <error_if> as
should_error from (<compiled sql> [limit n])`, so `severity`, `warn_if`, `error_if`, `fail_calc`, `limit`
and `where` behave as in `dbt test`. dbt severity `error` maps to `critical` (blocks), `warn` to
`warning`; a test's `meta.severity` may say critical | warning | info explicitly.

Compiling: one in-process `dbt compile --select resource_type:test` for all tests, against a scratch
DuckDB file named like the warehouse (relation names match; the warehouse itself is never opened), cached
in `<state_dir>/checks/dbt_tests/<key>.json`, keyed by the tests, the relations they read, the macro files,
the target and the dbt version. A warm cache does not import dbt.
"""

from __future__ import annotations

import decimal
import functools
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.check_results import CheckResult, Severity
from sqlassets.checks.specs import DbtTest, parse_severity
from sqlassets.dbt.files import iter_project_files, stat_digest
from sqlassets.errors import ConfigError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Relation
    from sqlassets.project import Project

CACHE_DIR = Path("checks") / "dbt_tests"


def _manifest(project: Project) -> dict[str, Any]:
    from sqlassets.dbt.loader import load_manifest

    return load_manifest(project)


def _severity(config: dict[str, Any]) -> Severity:
    meta = config.get("meta") or {}
    explicit = parse_severity(meta.get("severity")) if isinstance(meta, dict) else None
    if explicit is not None:
        return explicit
    return "warning" if str(config.get("severity") or "error").lower() == "warn" else "critical"


def tests_from_manifest(manifest: dict[str, Any], graph: AssetGraph) -> dict[str, list[DbtTest]]:
    """Every enabled dbt test attached to an asset of `graph`, per asset key (pure: no I/O)."""
    by_uid = {a.unique_id: a.key for a in graph if a.unique_id}
    out: dict[str, list[DbtTest]] = {}
    for uid, node in (manifest.get("nodes") or {}).items():
        if node.get("resource_type") != "test":
            continue
        config = node.get("config") or {}
        if config.get("enabled") is False:
            continue
        deps = tuple(dict.fromkeys(by_uid[d] for d in (node.get("depends_on") or {}).get("nodes", [])
                                   if d in by_uid))
        attached = by_uid.get(node.get("attached_node") or "")
        if attached is None:
            if not deps:
                continue  # reads only ephemeral models or nodes that are not assets: nothing to attach to
            attached = graph.sort(deps)[-1]
        meta = node.get("test_metadata") or {}
        limit = config.get("limit")
        store_as = None
        if config.get("store_failures") or config.get("store_failures_as") in ("table", "view"):
            store_as = config.get("store_failures_as") or "table"
            if store_as not in ("table", "view"):  # dbt: "ephemeral" stores nothing
                store_as = None
        test = DbtTest(
            unique_id=uid,
            name=node.get("name") or uid,
            asset=attached,
            severity=_severity(config),
            warn_if=str(config.get("warn_if") or "!= 0"),
            error_if=str(config.get("error_if") or "!= 0"),
            fail_calc=str(config.get("fail_calc") or "count(*)"),
            limit=int(limit) if isinstance(limit, int) else None,
            column=node.get("column_name") or (meta.get("kwargs") or {}).get("column_name"),
            test_type=meta.get("name") or "singular",
            path=node.get("original_file_path"),
            depends_on=deps,
            store_failures_as=store_as,
            audit=(node.get("database"), node.get("schema"), str(node.get("alias") or node.get("name") or uid))
            if store_as else None,
        )
        out.setdefault(attached, []).append(test)
    for tests in out.values():
        tests.sort(key=lambda t: t.name)
    return out


def discover_tests(project: Project, graph: AssetGraph) -> dict[str, list[DbtTest]]:
    if not project.has_dbt:
        return {}
    return tests_from_manifest(_manifest(project), graph)


# -- compiling ----------------------------------------------------------------------------------------

def _dbt_version() -> str:
    try:
        from importlib.metadata import version

        return version("dbt-core")
    except Exception:  # noqa: BLE001 - a missing dist only weakens the cache key
        return "unknown"


def _macro_digest(project: Project) -> str:
    """Stat digest of macro files and installed packages: what a generic test's SQL is rendered from."""
    return stat_digest(iter_project_files(project, ("macro-paths", "test-paths")))


def cache_key(project: Project, manifest: dict[str, Any]) -> str:
    nodes = manifest.get("nodes") or {}
    tests = {uid: [n.get("raw_code"), n.get("test_metadata"), n.get("config"), n.get("depends_on"),
                   n.get("refs"), n.get("sources")]
             for uid, n in nodes.items() if n.get("resource_type") == "test"}
    relations = {uid: [n.get("database"), n.get("schema"), n.get("alias") or n.get("name"),
                       (n.get("config") or {}).get("materialized")]
                 for uid, n in nodes.items() if n.get("resource_type") != "test"}
    relations.update({uid: [s.get("database"), s.get("schema"), s.get("identifier")]
                      for uid, s in (manifest.get("sources") or {}).items()})
    payload = {"v": 1, "dbt": _dbt_version(), "target": project.target, "tests": tests, "rel": relations,
               "macros": _macro_digest(project),
               "warehouse": [project.warehouse.type, project.warehouse.database, project.warehouse.schema]}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _run_dbt_compile(project: Project, base: Path) -> dict[str, str]:
    """One `dbt compile` of every test (against a scratch database); unique_id -> compiled SQL."""
    from sqlassets.dbt import invoke as dbt_invoke

    profiles_dir = dbt_invoke.scratch_profiles(project, base) or project.profiles_dir
    if profiles_dir is None:
        raise ConfigError("no profiles.yml found to compile dbt tests; add one or pass --profiles-dir")
    result = dbt_invoke.invoke(
        project, "compile",
        ["--target-path", str(base / "target"), "--no-introspect", "--no-populate-cache",
         "--select", "resource_type:test"],
        profiles_dir=profiles_dir, log_dir=project.state_dir / "logs", what="dbt compile of tests", per_node=True,
    )
    return dbt_invoke.compiled_code(result)


def compiled_tests(project: Project, tests: Iterable[DbtTest]) -> dict[str, str]:
    """unique_id -> compiled SQL for `tests`; one dbt compile for all tests when the cache is cold."""
    wanted = {t.unique_id for t in tests}
    if not wanted:
        return {}
    manifest = _manifest(project)
    key = cache_key(project, manifest)
    base = project.state_dir / CACHE_DIR
    path = base / f"{key}.json"
    try:
        compiled: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        from sqlassets.dbt.invoke import dbt_lock
        from sqlassets.private_files import write_private

        # One dbt at a time across processes (the scratch DuckDB file); then maybe another run compiled it.
        with dbt_lock(project):
            try:
                compiled = json.loads(path.read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                base.mkdir(parents=True, exist_ok=True, mode=0o700)
                compiled = _run_dbt_compile(project, base)
                for old in base.glob("*.json"):
                    old.unlink(missing_ok=True)
                write_private(path, json.dumps(compiled))
    return {uid: sql for uid, sql in compiled.items() if uid in wanted}


# -- running ------------------------------------------------------------------------------------------

_FILTER_TOKEN = "__sqlassets_partition_filter__"


def restrict_to_partition(sql: str, relation: Relation, where: str, dialect: str = "duckdb") -> str | None:
    """`sql` with every reference to `relation` replaced by `(select * from relation where <where>)`.

    None when the SQL does not parse or never names the relation (the caller then tests the whole table
    and says so). References are matched on the parts they spell (`db.schema.t`, `schema.t`, `t`). The
    rewrite is parsed once per (test, relation) and cached; per partition only the predicate changes.
    """
    template = _partition_template(sql, tuple(relation.parts), dialect)
    return template.replace(_FILTER_TOKEN, f"({where})") if template is not None else None


@functools.lru_cache(maxsize=4096)
def _partition_template(sql: str, parts: tuple[str, ...], dialect: str) -> str | None:
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=dialect)
    except sqlglot.errors.ParseError:
        return None
    want = [p.lower() for p in parts]
    hits = 0
    for table in list(tree.find_all(exp.Table)):
        parts = [p.lower() for p in (table.catalog, table.db, table.name) if p]
        if not parts or parts != want[-len(parts):] or len(parts) < 1:
            continue
        alias = table.alias or table.name
        bare = table.copy()
        bare.set("alias", None)
        sub = exp.select("*").from_(bare).where(exp.column(_FILTER_TOKEN))
        table.replace(exp.Subquery(this=sub, alias=exp.TableAlias(this=exp.to_identifier(alias, quoted=True))))
        hits += 1
    return tree.sql(dialect=dialect) if hits else None


def store_failures(test: DbtTest, sql: str, limit: str, connection: Any) -> str:
    """dbt's `store_failures`: the failing rows as a table (or view) in the audit schema, replaced each run.

    Returns the relation written, or why not (the message is kept on the result; storing failures never
    changes the test's verdict).
    """
    from sqlglot import exp

    database, schema, name = test.audit  # type: ignore[misc]
    table = exp.table_(name, db=schema, catalog=database, quoted=True)
    target = table.sql(dialect="duckdb")
    kind = "VIEW" if test.store_failures_as == "view" else "TABLE"
    cursor = connection.cursor()
    try:
        if schema:
            schema_ref = exp.Table(db=exp.to_identifier(schema, quoted=True),
                                   catalog=exp.to_identifier(database, quoted=True) if database else None)
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {schema_ref.sql(dialect='duckdb')}")
        try:  # the other kind from an earlier run with another store_failures_as
            cursor.execute(f"DROP {'TABLE' if kind == 'VIEW' else 'VIEW'} IF EXISTS {target}")
        except Exception:  # noqa: BLE001 - it is of the kind we are about to replace
            pass
        cursor.execute(f"CREATE OR REPLACE {kind} {target} AS SELECT * FROM (\n{sql}\n{limit}\n) dbt_failures")
        return target
    except Exception as exc:  # noqa: BLE001 - a read-only warehouse or a clash: say so, keep the verdict
        return f"not stored ({' '.join(str(exc).split())[:200]})"
    finally:
        cursor.close()


def _expected(test: DbtTest) -> str:
    if test.error_if == "!= 0" and test.warn_if == "!= 0":
        return "0 failing rows"
    return f"failing rows: error_if {test.error_if}, warn_if {test.warn_if}"


def run_test(test: DbtTest, sql: str | None, connection: Any, *, partition: str | None = None,
             scope_note: str = "") -> CheckResult:
    """Run one compiled test on `connection` (a DuckDB connection or cursor) and judge it as dbt does."""
    base: dict[str, Any] = dict(asset=test.asset, check=test.name, partition=partition, column=test.column,
                                expected=_expected(test), source=f"dbt:{test.unique_id}")
    details: dict[str, Any] = {"test_type": test.test_type, "path": test.path}
    if scope_note:
        details["scope"] = scope_note
    if sql is None:
        return CheckResult(status="error", severity=test.severity, message="dbt compile returned no SQL for this "
                           "test", details=details, **base)
    limit = f"\nlimit {test.limit}" if test.limit is not None else ""
    query = (f"select {test.fail_calc} as failures, {test.fail_calc} {test.warn_if} as should_warn, "
             f"{test.fail_calc} {test.error_if} as should_error from (\n{sql}\n{limit}\n) dbt_internal_test")
    cursor = connection.cursor()
    try:
        row = cursor.execute(query).fetchone()
    except Exception as exc:  # noqa: BLE001 - a broken test is reported, not raised
        text = " ".join(str(exc).split())[:300]
        return CheckResult(status="error", severity=test.severity, message=f"test query failed: {text}",
                           details=details, **base)
    finally:
        cursor.close()
    failures, should_warn, should_error = row if row else (None, False, False)
    if test.store_failures_as and test.audit:
        stored = store_failures(test, sql, limit, connection)
        details["stored_failures"] = stored
    if isinstance(failures, float | decimal.Decimal) and failures == int(failures):
        failures = int(failures)
    details["observed_text"] = f"{failures} failing row{'' if failures == 1 else 's'}"
    # As dbt: an error-severity test fails past error_if and warns past warn_if; a warn (or info) test
    # only ever warns, past warn_if.
    if test.severity == "critical" and should_error:
        status, severity = "fail", "critical"
    elif should_warn:
        status, severity = "fail", ("warning" if test.severity == "critical" else test.severity)
    else:
        status, severity = "pass", test.severity
    message = "" if status == "pass" else f"{failures} failing row{'' if failures == 1 else 's'} (error_if {test.error_if}, warn_if " \
                                           f"{test.warn_if})"
    return CheckResult(status=status, severity=severity, observed=failures, message=message,  # type: ignore[arg-type]
                       details=details, **base)
