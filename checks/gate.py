"""The CI gate: `sqlassets ci --base PATH`.

1. **What changed.** PATH is the production dbt manifest (a file, or a folder holding `manifest.json`,
   as dbt's `--state`), or a state export (`sqlassets list --output json`, which covers raw SQL assets
   too). An asset changed when it is new or its code version differs; the selection is the changed
   assets plus everything downstream of them.
2. **Isolated CI target.** The production DuckDB file is *copied* (never opened for writing) to
   `<state_dir>/ci/<same file name>` - same file name, so the catalog name that compiled dbt SQL spells
   still matches - with a fresh state store next to it. The selection is built there with the normal
   executor and the checks run as its post-materialize hook, per partition, so a blocking failure
   stops the downstream build exactly as in production. With no production file to seed from, the
   selection's upstream is built too.
3. **Breaking columns.** For each changed asset that exists in production, its columns in the production
   catalog are compared with those in the CI database; a removed or retyped column is breaking when a
   downstream column reads it, found with column lineage (`sqlassets.lineage`) or, if lineage cannot
   run, by name in the downstream SQL.
4. **Verdict.** Exit 0 pass; 1 build failure, blocking check failure or breaking change (unless
   `--allow-breaking`); 2 usage error (UserError). Reports: terminal, JUnit, markdown PR comment, GitHub
   annotations.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sqlassets.check_results import CheckResult
from sqlassets.errors import ConfigError, UserError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project

_BUILT_KINDS = ("model", "seed", "snapshot", "sql")


@dataclass
class GateOutcome:
    changed: list[dict[str, Any]] = field(default_factory=list)
    selection: list[str] = field(default_factory=list)
    breaking: list[dict[str, Any]] = field(default_factory=list)
    column_changes: list[dict[str, Any]] = field(default_factory=list)  # every one, breaking or not
    results: list[CheckResult] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    allow_breaking: bool = False

    @property
    def build_failed(self) -> bool:
        return bool(self.build.get("failed") or self.build.get("skipped") or self.build.get("error"))

    @property
    def blocking(self) -> list[CheckResult]:
        return [r for r in self.results if r.blocking]

    @property
    def exit_code(self) -> int:
        if self.build_failed or self.blocking or (self.breaking and not self.allow_breaking):
            return 1
        return 0

    def reasons(self) -> list[str]:
        out = []
        if self.build.get("error"):
            out.append(f"build error: {self.build['error']}")
        elif self.build_failed:
            out.append(f"{self.build.get('failed', 0)} partition(s) failed to build, "
                       f"{self.build.get('skipped', 0)} skipped")
        if self.blocking:
            out.append(f"{len(self.blocking)} blocking check(s) failed")
        if self.breaking:
            out.append(f"{len(self.breaking)} breaking column change(s)"
                       + (" (allowed)" if self.allow_breaking else ""))
        return out

    def verdict_line(self) -> str:
        if self.exit_code == 0:
            extra = [r for r in self.reasons() if "allowed" in r]
            return "CI gate: PASS" + (f" ({'; '.join(extra)})" if extra else "")
        return "CI gate: FAIL - " + "; ".join(r for r in self.reasons() if "allowed" not in r)

    def markdown(self) -> str:
        from sqlassets.checks.report import markdown

        icon = "✅" if self.exit_code == 0 else "❌"
        return markdown(self.results, verdict=f"{icon} **{self.verdict_line()}**", changed=self.changed,
                        breaking=self.breaking, build=self.build, column_changes=self.column_changes)

    def gate_results(self) -> list[CheckResult]:
        """The gate's own verdicts as results (for JUnit): a testcase per column change and build failure.

        A breaking change is a failing critical testcase (a warning one with --allow-breaking); a
        harmless change a passing one that still names the column; a failed partition an error.
        """
        out: list[CheckResult] = []
        breaking = {(b["asset"], b["column"]): b for b in self.breaking}
        for ch in self.column_changes:
            b = breaking.get((ch["asset"], ch["column"]))
            name = f"column {ch['column']} {ch['change']}"
            if b is not None:
                msg = f"breaking: {ch['asset']}.{ch['column']} {ch['change']}; read by {', '.join(b['downstream'])}"
                out.append(CheckResult(asset=ch["asset"], check=name, status="fail", column=ch["column"],
                                       severity="warning" if self.allow_breaking else "critical",
                                       observed=ch["change"], expected="no change read downstream",
                                       message=msg, source="ci:columns",
                                       details={"observed_text": ch["change"], "downstream": b["downstream"]}))
            else:
                out.append(CheckResult(asset=ch["asset"], check=name, status="pass", severity="info",
                                       column=ch["column"], observed=ch["change"], source="ci:columns",
                                       message=f"not breaking: {ch['asset']}.{ch['column']} {ch['change']}; "
                                               "no downstream column reads it"))
        for asset, keys, error in self.build.get("failures", []):
            out.append(CheckResult(asset=asset, check="build", status="error", severity="critical",
                                   partition=keys if keys and keys != "-" else None, message=f"build failed: {error}",
                                   source="ci:build"))
        if self.build.get("error"):
            out.append(CheckResult(asset="ci", check="build", status="error", severity="critical",
                                   message=f"build error: {self.build['error']}", source="ci:build"))
        return out

    def annotations(self, project: Project, graph: AssetGraph) -> list[str]:
        """Breaking column changes as `::error` annotations on the changed asset's file."""
        from sqlassets.checks.report import _escape_data, _escape_prop

        out = []
        level = "warning" if self.allow_breaking else "error"
        for b in self.breaking:
            asset = graph.get(b["asset"])
            path = asset.path if asset else None
            msg = (f"{b['asset']}.{b['column']} {b['change']}; read downstream by "
                   f"{', '.join(b['downstream'])}")
            props = f"title={_escape_prop('breaking column change')}"
            if path:
                props = f"file={_escape_prop(path)},line={_column_line(project.root / path, b['column'])},{props}"
            out.append(f"::{level} {props}::{_escape_data(msg)}")
        for f in self.build.get("failures", []):
            asset = graph.get(f[0])
            props = f"title={_escape_prop('build failed: ' + f[0])}"
            if asset and asset.path:
                props = f"file={_escape_prop(asset.path)},line=1,{props}"
            out.append(f"::error {props}::{_escape_data(f'{f[0]} [{f[1]}]: {f[2]}')}")
        return out


def _column_line(path: Path, column: str) -> int:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return 1
    m = re.search(rf"\b{re.escape(column)}\b", text)
    return text.count("\n", 0, m.start()) + 1 if m else 1


# -- 1. what changed ---------------------------------------------------------------------------------------

BASE_FILE = "sqlassets_base.json"


def base_file(base: Path) -> Path:
    """The file `--base` names: itself, or in a folder `sqlassets_base.json` (`ci save-base`) else manifest.json."""
    if base.is_dir():
        return base / BASE_FILE if (base / BASE_FILE).is_file() else base / "manifest.json"
    return base


def base_versions(base: Path, project: Project) -> dict[str, str | None]:
    """asset key -> production code version, from a manifest, a folder holding one, or a state export."""
    path = base_file(base)
    if not path.is_file():
        raise UserError(f"--base {base}: no such manifest; save production's base with `sqlassets ci save-base "
                        "DIR` (or pass production's dbt manifest.json, or its folder)")
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"--base is not valid JSON ({exc})", path=str(path)) from None
    if isinstance(doc, dict) and isinstance(doc.get("assets"), list):  # `sqlassets list --output json`
        out = {}
        for a in doc["assets"]:
            if not isinstance(a, dict) or "key" not in a:
                raise ConfigError("state export: every asset needs a 'key'", path=str(path))
            out[str(a["key"])] = a.get("code_version")
        return out
    from sqlassets.dbt.loader import assets_from_manifest, read_manifest

    manifest = read_manifest(path)
    out = {a.key: a.code_version for a in assets_from_manifest(manifest, project.root)}
    out[_MANIFEST_ONLY] = None
    return out


# Marker in the base versions: the base is a dbt manifest, which knows nothing about raw SQL assets.
_MANIFEST_ONLY = "\0manifest"


def changed_assets(graph: AssetGraph, base: dict[str, str | None]) -> list[dict[str, Any]]:
    """New or modified assets. Against a dbt manifest, raw SQL assets are not compared (the manifest
    cannot know them; a state export can): they are rebuilt only when downstream of a change."""
    out = []
    manifest_only = _MANIFEST_ONLY in base
    for asset in graph:
        if asset.kind not in _BUILT_KINDS or asset.materialization == "ephemeral":
            continue
        if manifest_only and asset.kind == "sql":
            continue
        if asset.key not in base:
            out.append({"asset": asset.key, "change": "new"})
        elif base[asset.key] != asset.code_version:
            out.append({"asset": asset.key, "change": "modified"})
    return out


# -- 2. the isolated CI target ----------------------------------------------------------------------------

def ci_project(project: Project, ci_dir: Path, seed_from: Path | None, graph: AssetGraph | None = None
               ) -> tuple[Project, Path, bool]:
    """A copy of `project` pointing at a CI DuckDB file seeded from production; returns (project, db, seeded)."""
    wh = project.warehouse
    if wh.type != "duckdb":  # a cloud warehouse: zero-copy clones of the production schemas
        from sqlassets.checks.gate_remote import remote_ci_project

        return remote_ci_project(project, graph, ci_dir)  # type: ignore[return-value]
    if wh.path is None:
        raise UserError("the CI gate builds into a DuckDB copy; the warehouse has no DuckDB file")
    prod = (seed_from or wh.path).resolve()
    ci_dir = ci_dir.resolve()
    # Named like the project's warehouse file, whatever the seed file is called: DuckDB names a file's
    # catalog after it, and the compiled SQL spells the profile's database name.
    db = ci_dir / wh.path.name
    if seed_from is not None and not prod.is_file():
        raise UserError(f"--seed-from {seed_from}: no such DuckDB file")
    if db == prod or prod.parent == ci_dir:
        raise UserError(f"--ci-dir {ci_dir} holds the production file {prod}; pick another folder")
    if ci_dir.exists():
        shutil.rmtree(ci_dir)
    (ci_dir / "state").mkdir(parents=True)
    seeded = prod.is_file()
    if seeded:
        # Reading is all we do to production: copy the file (and its WAL, so committed data in it counts).
        shutil.copyfile(prod, db)
        wal = prod.with_name(prod.name + ".wal")
        if wal.is_file():
            shutil.copyfile(wal, db.with_name(db.name + ".wal"))
    settings = replace(project.settings, state_dir=ci_dir / "state")
    return replace(project, settings=settings, warehouse=replace(wh, path=db)), db, seeded


def _catalog(db: Path, as_name: str | None = None) -> dict[str, dict[str, str]]:
    """'db.schema.table' (lower) -> {column: type} of a DuckDB file, read-only.

    `as_name`: the catalog name the project's SQL uses for this file (its own catalog is named after the
    file, which for a `--seed-from` copy may be another name).
    """
    if not db.is_file():
        return {}
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        own = con.execute("select current_database()").fetchone()[0]
        rows = con.execute("select database_name, schema_name, table_name, column_name, data_type "
                           "from duckdb_columns() where not internal order by column_index").fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, str]] = {}
    for d, s, t, c, typ in rows:
        name = as_name if as_name and d == own else d
        out.setdefault(f"{name}.{s}.{t}".lower(), {})[str(c).lower()] = str(typ)
    return out


def _columns_of(catalog: dict[str, dict[str, str]], asset: Any, default_db: str) -> dict[str, str] | None:
    rel = asset.relation
    if rel is None:
        return None
    return catalog.get(f"{rel.database or default_db}.{rel.schema or 'main'}.{rel.identifier}".lower())


# -- 3. breaking columns ----------------------------------------------------------------------------------

def column_changes(graph: AssetGraph, changed: list[dict[str, Any]], prod_db: Path | None, ci_db: Path
                   ) -> list[dict[str, Any]]:
    """Every added, removed or retyped column of changed assets: production catalog vs the CI build.

    Only removed and retyped columns can break a reader; added ones are listed so the PR names them.
    """
    if hasattr(ci_db, "column_changes"):  # cloned schemas on a cloud warehouse
        return ci_db.column_changes(graph, changed)  # type: ignore[union-attr]
    if prod_db is None:
        return []
    name = ci_db.stem  # the catalog name the project's SQL spells (the CI copy is named like the warehouse)
    old_cat, new_cat = _catalog(prod_db, as_name=name), _catalog(ci_db, as_name=name)
    out = []
    for ch in changed:
        if ch["change"] != "modified":
            continue
        asset = graph[ch["asset"]]
        old = _columns_of(old_cat, asset, name)
        new = _columns_of(new_cat, asset, name)
        if not old or new is None:
            continue
        for col, typ in old.items():
            if col not in new:
                out.append({"asset": asset.key, "column": col, "change": f"removed (was {typ})"})
            elif new[col] != typ:
                out.append({"asset": asset.key, "column": col, "change": f"retyped {typ} -> {new[col]}"})
        for col, typ in new.items():
            if col not in old:
                out.append({"asset": asset.key, "column": col, "change": f"added ({typ})"})
    return out


def downstream_readers(project: Project, graph: AssetGraph, changes: list[dict[str, Any]]
                       ) -> tuple[list[dict[str, Any]], str]:
    """Attach the downstream columns reading each changed column; keep only those read by someone."""
    changes = [c for c in changes if not c["change"].startswith("added")]  # nothing read an added column
    if not changes:
        return [], "none"
    method = "column lineage"
    try:
        from sqlassets.lineage.build import build_lineage

        cg = build_lineage(project, graph).columns
    except Exception:  # noqa: BLE001 - lineage is optional: fall back to names in the downstream SQL
        cg = None
        method = "column names in downstream SQL"
    out = []
    for ch in changes:
        readers: list[str] = []
        if cg is not None:
            nid = cg.index.get(f"{ch['asset']}.{ch['column']}") or cg.index.get(f"{ch['asset']}.{ch['column']}".lower())
            if nid is not None:
                readers = sorted({r.column for r in cg.walk(nid, "downstream")
                                  if not r.column.lower().startswith(ch["asset"].lower() + ".")})
        else:
            pat = re.compile(rf"\b{re.escape(ch['column'])}\b", re.I)
            for key in graph.downstream(ch["asset"]):
                sql = graph[key].raw_sql or graph[key].compiled_sql or ""
                if pat.search(sql):
                    readers.append(f"{key} (mentions {ch['column']})")
        if readers:
            out.append({**ch, "downstream": readers})
    return out, method


# -- the gate ---------------------------------------------------------------------------------------------

DEFAULT_BATCH_SIZE = 366


def run_gate(project: Project, graph: AssetGraph, *, base: Path, seed_from: Path | None = None,
             ci_dir: Path | None = None, partitions: str | None = None, allow_breaking: bool = False,
             batch_size: int = DEFAULT_BATCH_SIZE, engine: str | None = None,
             echo: Callable[[str], None] = print, keep: bool = False) -> GateOutcome:
    """Build what changed into an isolated copy and check it.

    Partitions are rebuilt `batch_size` at a time (one statement and one check per batch: a changed
    comment upstream of a 3,000-partition asset costs a few statements, not 3,000 validations);
    `--batch-size 1` checks every partition on its own.
    """
    from sqlassets.run.executor import RunOptions, RunRequest, execute_request

    versions = base_versions(base, project)
    outcome = GateOutcome(allow_breaking=allow_breaking)
    outcome.changed = changed_assets(graph, versions)
    removed = sorted(k for k in versions if k not in graph and k != _MANIFEST_ONLY)
    if removed:
        echo(f"removed since production: {', '.join(removed)}")
    changed_keys = [c["asset"] for c in outcome.changed]
    selection = set(changed_keys)
    for k in changed_keys:
        selection |= {d for d in graph.downstream(k) if graph[d].kind in _BUILT_KINDS
                      and graph[d].materialization != "ephemeral"}
    for c in outcome.changed:
        c["downstream"] = sorted(d for d in graph.downstream(c["asset"]) if d in selection)
    if not selection:
        echo("nothing changed against production; nothing to build or check")
        return outcome
    if seed_from is None:
        seed_from = base_warehouse(base)
        if seed_from is not None:
            echo(f"seeding from the saved base: {seed_from}")
    cproj, ci_db, seeded = ci_project(project, ci_dir or project.state_dir / "ci", seed_from, graph)
    if not seeded:
        echo(f"no production database at {seed_from or project.warehouse.path}: building the upstream too")
        for k in list(selection):
            selection |= {u for u in graph.upstream(k) if graph[u].kind in _BUILT_KINDS
                          and graph[u].materialization != "ephemeral"}
    outcome.selection = graph.sort(selection)
    echo("changed: " + ", ".join(f"{c['asset']} ({c['change']})" for c in outcome.changed))
    echo(f"building {len(outcome.selection)} asset(s) in {ci_db}")
    runners: list[Any] = []

    def hook_factory(keys: list[str]) -> Any:
        from sqlassets.checks.runner import hook_for

        runner = hook_for(cproj, graph, keys, engine=engine)
        if runner is not None:
            runners.append(runner)
        return runner

    if partitions is not None:
        from sqlassets.run.partitions import partitions_def

        if not any(partitions_def(graph[k]) is not None for k in outcome.selection):
            partitions = None  # nothing partitioned changed: --partitions does not apply to this build
    req = RunRequest(select=outcome.selection, mode="all", partitions=partitions,
                     command="sqlassets ci --base " + str(base), options=RunOptions(batch_size=batch_size))
    try:
        _plan, summary = execute_request(cproj, graph, req, hook_factory=hook_factory, echo=echo)
    except UserError:
        raise
    if summary is not None:
        outcome.build = {"done": summary.done, "failed": summary.failed, "skipped": summary.skipped,
                         "failures": [list(f) for f in summary.failures], "database": str(ci_db)}
        for asset, keys, error in summary.failures[:10]:
            where = f" [{keys}]" if keys and keys != "-" else ""
            echo(f"  failed {asset}{where}: {error}")
        if len(summary.failures) > 10:
            echo(f"  ... {len(summary.failures) - 10} more in the PR comment (--markdown)")
    else:
        outcome.build = {"done": 0, "failed": 0, "skipped": 0, "failures": [], "database": str(ci_db)}
    outcome.results = [r for runner in runners for r in runner.results]
    prod_db = (seed_from or project.warehouse.path) if seeded else None
    changes = column_changes(graph, outcome.changed, Path(prod_db) if prod_db else None, ci_db)
    outcome.column_changes = changes
    outcome.breaking, method = downstream_readers(cproj, graph, changes)
    if hasattr(ci_db, "drop"):  # cloned schemas: dropped unless --keep
        if keep:
            echo(f"kept the CI schemas: {ci_db}")
        else:
            ci_db.drop()  # type: ignore[union-attr]
    if changes:
        echo(f"column changes: {len(changes)}; breaking (read downstream, by {method}): {len(outcome.breaking)}")
    breaking = {(b["asset"], b["column"]): b for b in outcome.breaking}
    for ch in changes:
        b = breaking.get((ch["asset"], ch["column"]))
        if b is not None:
            echo(f"  breaking: {b['asset']}.{b['column']} {b['change']}; read by {', '.join(b['downstream'])}")
        else:
            echo(f"  not breaking: {ch['asset']}.{ch['column']} {ch['change']}")
    return outcome


def save_base(project: Project, graph: AssetGraph, dest: Path, *, warehouse: bool = True) -> list[Path]:
    """`sqlassets ci save-base DIR`: what `ci --base DIR` compares against, saved from production.

    Writes `DIR/sqlassets_base.json` (every asset's code version, raw SQL assets included: the format
    of `sqlassets list --output json`), dbt's manifest.json next to it when there is one, and (unless
    `warehouse=False`) a copy of the production DuckDB file, which `ci --base DIR` then seeds from.
    """
    from sqlassets import render

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    doc = orjson.loads(render.to_json(graph, list(graph.topo_order)))
    wh = project.warehouse
    if warehouse and wh.type == "duckdb" and wh.path is not None and wh.path.is_file():
        import duckdb

        try:  # a read-only open first: refuses (one line) while a run is writing production
            duckdb.connect(str(wh.path), read_only=True).close()
        except duckdb.Error as exc:
            raise UserError(f"cannot read {wh.path} ({str(exc).splitlines()[0]}); is a run writing to it?") from None
        target = dest / wh.path.name
        tmp = target.with_name(target.name + ".tmp")
        shutil.copyfile(wh.path, tmp)
        tmp.replace(target)
        wal = wh.path.with_name(wh.path.name + ".wal")
        if wal.is_file():
            shutil.copyfile(wal, target.with_name(target.name + ".wal"))
        doc["warehouse"] = target.name
        written.append(target)
    manifest = project.root / "target" / "manifest.json"
    if project.has_dbt and manifest.is_file():
        shutil.copyfile(manifest, dest / "manifest.json")
        written.append(dest / "manifest.json")
    path = dest / BASE_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    tmp.replace(path)
    written.insert(0, path)
    return written


def base_warehouse(base: Path) -> Path | None:
    """The production DuckDB copy a `ci save-base` folder holds (the default `--seed-from`), if any."""
    path = base_file(base)
    if not base.is_dir() or path.name != BASE_FILE:
        return None
    try:
        name = orjson.loads(path.read_bytes()).get("warehouse")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return None
    return base / name if isinstance(name, str) and (base / name).is_file() else None
