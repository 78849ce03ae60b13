"""dbt loader: `target/manifest.json` -> `Asset`s.

The manifest is read directly with orjson when it is newer than every project file (the fast path,
~0.1 s for 5,000 models); otherwise `dbt parse` runs in-process once and its manifest is read. dbt
itself is imported only on that slow path.

Models, seeds and snapshots become assets; sources become external assets; ephemeral models are not
assets (they have no relation) and their dependents are linked through to their real parents;
disabled nodes are left out (dbt keeps them outside `nodes`). A source declared over a table the project
builds (seeds as raw data read through `source()`; a model's table declared as a source) depends on what
writes it and has its columns (see `_sources_written_by_the_project`).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import gc
import hashlib
import re
from pathlib import Path
from typing import Any

import orjson

from sqlassets.dbt.files import FOLDER_DEFAULTS, iter_project_files, newest_mtime
from sqlassets.errors import ConfigError
from sqlassets.model import Asset, Column, Relation
from sqlassets.project import Project

SUPPORTED_SCHEMA_VERSIONS = (10, 11, 12)
ASSET_RESOURCE_TYPES = ("model", "seed", "snapshot")
# Nodes that write a table a source of the same project may be declared over.
WRITER_KINDS = ("seed", "model", "snapshot")

# dbt adapter type -> sqlglot dialect
DIALECTS = {
    "duckdb": "duckdb",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "postgres": "postgres",
    "redshift": "redshift",
    "databricks": "databricks",
    "spark": "spark",
    "trino": "trino",
    "athena": "athena",
    "clickhouse": "clickhouse",
    "sqlserver": "tsql",
    "fabric": "tsql",
}

_SCHEMA_VERSION = re.compile(r"/manifest/v(\d+)\.json")
_PARSE_STAMP = "dbt_parse.json"


def manifest_path(project: Project) -> Path:
    return project.target_path / "manifest.json"


def _project_files_mtime(project: Project) -> float:
    """Newest mtime among the files (and folders) dbt parses; the manifest is trusted only if newer."""
    return newest_mtime(iter_project_files(project, FOLDER_DEFAULTS, include_dirs=True))


def _stamp_path(project: Project) -> Path:
    return project.state_dir / _PARSE_STAMP


def _manifest_is_fresh(project: Project, path: Path) -> bool:
    if not path.exists():
        return False
    if path.stat().st_mtime < _project_files_mtime(project):
        return False
    # A manifest we parsed for another target has other relations: parse again for this one. A
    # manifest rewritten since (the user ran dbt compile/run/build) is the user's own and is trusted.
    stamp = _stamp_path(project)
    if stamp.exists() and project.target is not None:
        try:
            recorded = orjson.loads(stamp.read_bytes())
        except orjson.JSONDecodeError:
            return True
        if recorded.get("manifest_mtime") == path.stat().st_mtime and recorded.get("target") != project.target:
            return False
    if stamp.exists():
        # ... and one parsed with other vars (they may enable or disable whole folders, as jaffle-shop's seeds)
        try:
            recorded = orjson.loads(stamp.read_bytes())
        except orjson.JSONDecodeError:
            return True
        if recorded.get("manifest_mtime") == path.stat().st_mtime and recorded.get("vars", {}) != _vars_plain(project):
            return False
    return True


def _vars_plain(project: Project) -> Any:
    return orjson.loads(orjson.dumps(project.dbt_vars, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
                                     default=str))


def _write_fallback_profile(project: Project, pdir: Path) -> None:
    """Zero configuration: a project with no profiles.yml gets a DuckDB profile for the parse."""
    db = project.warehouse.path or (project.state_dir / "warehouse.duckdb")
    text = (
        f"{project.profile_name}:\n  target: dev\n  outputs:\n    dev:\n      type: duckdb\n"
        f"      path: {orjson.dumps(str(db)).decode()}\n      threads: 1\n"
    )
    (pdir / "profiles.yml").write_text(text, encoding="utf-8")


def run_dbt_parse(project: Project) -> Path:
    """Run `dbt parse` in-process and return the manifest path. Errors become one-line ConfigErrors.

    dbt's logs (and a fallback profile) go to a temporary folder, so a failed parse leaves nothing
    behind but what dbt itself writes under target/.
    """
    import tempfile

    from sqlassets.dbt import invoke as dbt_invoke
    from sqlassets.dbt.compile import parse_args

    with tempfile.TemporaryDirectory(prefix="sqlassets-dbt-") as tmp:
        # Parsed as the compile will run (its vars, its scratch profile), so a later `dbt compile` reuses
        # this parse instead of parsing the whole project again.
        try:
            args, profiles_dir = parse_args(project, Path(tmp))
        except (OSError, ConfigError):  # an unreadable profile: parse as the user would, dbt says what is wrong
            args, profiles_dir = [], None
        profiles_dir = profiles_dir or project.profiles_dir
        if profiles_dir is None:
            profiles_dir = Path(tmp)
            _write_fallback_profile(project, profiles_dir)
        with dbt_invoke.dbt_lock(project):
            dbt_invoke.invoke(project, "parse", args, profiles_dir=profiles_dir, log_dir=Path(tmp) / "logs",
                              what=f"dbt parse of {project.root}")
    path = manifest_path(project)
    project.state_dir.mkdir(parents=True, exist_ok=True)
    _stamp_path(project).write_bytes(
        orjson.dumps({"target": project.target, "manifest_mtime": path.stat().st_mtime, "vars": _vars_plain(project)})
    )
    return path


def read_manifest(path: Path) -> dict[str, Any]:
    """Read and validate a manifest (schema v10–v12)."""
    try:
        manifest = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"manifest is not valid JSON ({exc}); re-run `dbt parse`", path=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read manifest: {exc.strerror}", path=str(path)) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("nodes"), dict):
        raise ConfigError("not a dbt manifest (no 'nodes'); re-run `dbt parse`", path=str(path))
    version_url = str((manifest.get("metadata") or {}).get("dbt_schema_version", ""))
    m = _SCHEMA_VERSION.search(version_url)
    if not m:
        raise ConfigError("manifest has no metadata.dbt_schema_version; re-run `dbt parse`", path=str(path))
    version = int(m.group(1))
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ConfigError(
            f"manifest schema v{version} is not supported (v10–v12: dbt-core 1.6–1.11); "
            "re-run `dbt parse` with a supported dbt-core",
            path=str(path),
        )
    return manifest


def load_manifest(project: Project, *, parse: bool = True) -> dict[str, Any]:
    """The project's manifest, parsing with dbt first if it is missing or older than the project files."""
    path = manifest_path(project)
    if not _manifest_is_fresh(project, path):
        if not parse:
            raise ConfigError("manifest is missing or stale; run `dbt parse`", path=str(path))
        if not _writable(project.target_path):
            return _parse_elsewhere(project)
        path = run_dbt_parse(project)
    return read_manifest(path)


def _writable(folder: Path) -> bool:
    """Can we create files in `folder` (or create it)? Tried for real: permission bits lie to root."""
    import tempfile

    probe = folder if folder.exists() else folder.parent
    try:
        with tempfile.TemporaryFile(dir=probe):
            return True
    except OSError:
        return False


def _parse_elsewhere(project: Project) -> dict[str, Any]:
    """A read-only project (a mounted checkout, a CI cache): parse into a temporary target path, so
    read-only commands still work. Nothing is cached; the next run parses again."""
    import tempfile

    from sqlassets.dbt import invoke as dbt_invoke

    with tempfile.TemporaryDirectory(prefix="sqlassets-dbt-") as tmp:
        profiles_dir = project.profiles_dir
        if profiles_dir is None:
            profiles_dir = Path(tmp)
            _write_fallback_profile(project, profiles_dir)
        target = Path(tmp) / "target"
        dbt_invoke.invoke(project, "parse", ["--target-path", str(target)], profiles_dir=profiles_dir,
                          log_dir=Path(tmp) / "logs", what=f"dbt parse of {project.root} (read-only)")
        return read_manifest(target / "manifest.json")


def _code_version(raw: str, checksum: str, config: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update((raw or checksum).encode())
    h.update(orjson.dumps(config, option=orjson.OPT_SORT_KEYS, default=str))
    return h.hexdigest()[:16]


def _columns(node: dict[str, Any]) -> tuple[Column, ...]:
    return tuple(
        Column(name=c.get("name") or name, type=c.get("data_type") or None, description=c.get("description") or "")
        for name, c in (node.get("columns") or {}).items()
    )


def _seed_columns(root: Path, node: dict[str, Any], declared: tuple[Column, ...]) -> tuple[Column, ...]:
    """Seeds: the CSV header, with types from column_types / YAML and descriptions from YAML."""
    path = Path(node.get("root_path") or root) / node.get("original_file_path", "")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except OSError:
        return declared
    by_name = {c.name.lower(): c for c in declared}
    types = {k.lower(): v for k, v in ((node.get("config") or {}).get("column_types") or {}).items()}
    cols = []
    for name in header:
        d = by_name.get(name.lower())
        cols.append(Column(name=name, type=types.get(name.lower()) or (d.type if d else None),
                           description=d.description if d else ""))
    return tuple(cols)


def _owner(node: dict[str, Any], groups: dict[str, Any]) -> str | None:
    meta = {**(node.get("config") or {}).get("meta", {}), **(node.get("meta") or {})}
    if meta.get("owner"):
        return str(meta["owner"])
    group = node.get("group") or (node.get("config") or {}).get("group")
    if group:
        for g in groups.values():
            if g.get("name") == group:
                owner = g.get("owner") or {}
                return owner.get("email") or owner.get("name")
    return None


class ManifestShapeError(ValueError):
    """A manifest field has the wrong type (turned into a ConfigError naming the manifest)."""


def project_dialect(project: Project, manifest: dict[str, Any]) -> str:
    """The SQL dialect of the project's models: its adapter, as dbt compiles them.

    The profile's type (or sqlassets.yml's `warehouse.type`) when there is one: that is the adapter
    `dbt compile` runs with. Without a profile the manifest's `metadata.adapter_type` (the user's own
    manifest says which adapter compiled it); DuckDB when nothing says.
    """
    if project.profiles_dir is not None or project.settings.raw.get("warehouse") is not None:
        adapter = project.warehouse.type
    else:
        adapter = str((manifest.get("metadata") or {}).get("adapter_type") or "duckdb")
    return DIALECTS.get(adapter, adapter)


def assets_from_manifest(manifest: dict[str, Any], root: Path, dialect: str | None = None) -> list[Asset]:
    """Turn a manifest into assets (pure: no dbt import, no I/O except seed CSV headers)."""
    nodes: dict[str, dict[str, Any]] = manifest["nodes"]
    sources: dict[str, dict[str, Any]] = manifest.get("sources") or {}
    groups: dict[str, Any] = manifest.get("groups") or {}
    if dialect is None:
        adapter = str((manifest.get("metadata") or {}).get("adapter_type") or "duckdb")
        dialect = DIALECTS.get(adapter, adapter)

    asset_nodes = {uid: n for uid, n in nodes.items() if n.get("resource_type") in ASSET_RESOURCE_TYPES}
    ephemeral = {uid for uid, n in asset_nodes.items() if (n.get("config") or {}).get("materialized") == "ephemeral"}

    # Keys: the node name (versioned: name.vN); package-qualified only on a clash.
    def base_key(n: dict[str, Any]) -> str:
        v = n.get("version")
        return f"{n['name']}.v{v}" if v is not None else n["name"]

    counts: dict[str, int] = {}
    for uid, n in asset_nodes.items():
        if uid not in ephemeral:
            counts[base_key(n)] = counts.get(base_key(n), 0) + 1
    keys: dict[str, str] = {}
    for uid, n in asset_nodes.items():
        k = base_key(n)
        keys[uid] = f"{n['package_name']}.{k}" if counts.get(k, 0) > 1 else k
    for uid, s in sources.items():
        keys[uid] = f"{s['source_name']}.{s['name']}"

    resolved: dict[str, tuple[str, ...]] = {}

    def deps_of(uid: str, stack: tuple[str, ...] = ()) -> tuple[str, ...]:
        """Direct asset deps, linking through ephemeral models to their real parents."""
        if uid in resolved:
            return resolved[uid]
        out: list[str] = []
        depends_on = (nodes.get(uid) or {}).get("depends_on") or {}
        parents = depends_on.get("nodes", []) if isinstance(depends_on, dict) else None
        if not isinstance(parents, list) or not all(isinstance(d, str) for d in parents):
            # A string would be read one character at a time: every dependency silently lost.
            raise ManifestShapeError(f"node {uid}: depends_on.nodes must be a list of unique ids")
        for dep in parents:
            if dep in ephemeral:
                if dep in stack:
                    continue  # a cycle through ephemerals; dbt itself rejects these
                out.extend(deps_of(dep, (*stack, uid)))
            elif dep in keys:
                out.append(keys[dep])
        result = tuple(dict.fromkeys(out))
        resolved[uid] = result
        return result

    assets: list[Asset] = []
    for uid, n in asset_nodes.items():
        if uid in ephemeral:
            continue
        config = n.get("config") or {}
        rtype = n["resource_type"]
        materialization = {"seed": "seed", "snapshot": "snapshot"}.get(rtype, config.get("materialized", "view"))
        columns = _columns(n)
        if rtype == "seed":
            columns = _seed_columns(root, n, columns)
        meta = {**(config.get("meta") or {}), **(n.get("meta") or {})}
        version = n.get("version")
        assets.append(
            Asset(
                key=keys[uid],
                kind=rtype,
                relation=Relation(n.get("database"), n.get("schema"), n.get("alias") or n["name"]),
                materialization=materialization,
                deps=deps_of(uid),
                description=n.get("description") or "",
                columns=columns,
                tags=tuple(n.get("tags") or config.get("tags") or ()),
                group=n.get("group") or config.get("group"),
                owner=_owner(n, groups),
                path=n.get("original_file_path"),
                raw_sql=n.get("raw_code") if rtype != "seed" else None,
                compiled_sql=n.get("compiled_code"),
                code_version=_code_version(n.get("raw_code") or "", (n.get("checksum") or {}).get("checksum", ""),
                                           config),
                dialect=dialect,
                unique_id=uid,
                package=n.get("package_name"),
                version=str(version) if version is not None else None,
                meta=meta,
                config=config,
            )
        )
    for uid, s in sources.items():
        config = s.get("config") or {}
        if config.get("enabled") is False:
            continue
        meta = {**(config.get("meta") or {}), **(s.get("source_meta") or {}), **(s.get("meta") or {})}
        assets.append(
            Asset(
                key=keys[uid],
                kind="source",
                relation=Relation(s.get("database"), s.get("schema"), s.get("identifier") or s["name"]),
                materialization="external",
                description=s.get("description") or s.get("source_description") or "",
                columns=_columns(s),
                tags=tuple(s.get("tags") or ()),
                owner=str(meta["owner"]) if meta.get("owner") else None,
                path=s.get("original_file_path"),
                dialect=dialect,
                unique_id=uid,
                package=s.get("package_name"),
                meta=meta,
                config={**config, "source_name": s["source_name"], "loaded_at_field": s.get("loaded_at_field"),
                        "freshness": s.get("freshness") or config.get("freshness")},
            )
        )
    return _sources_written_by_the_project(assets, manifest, root, dialect)


def _sources_written_by_the_project(assets: list[Asset], manifest: dict[str, Any], root: Path,
                                   dialect: str) -> list[Asset]:
    """Sources whose relation a seed, model or snapshot of the project writes: that node loads them.

    dbt accepts a source declared over a table the project builds itself (jaffle-shop's raw data as
    seeds; mattermost's `util.dates` source over its `dates` model). Such a source depends on its writer
    (so a build runs the writer before the models reading the source; `config.written_by` names it) and,
    when its YAML declares no columns, has the writer's: a seed's CSV header with `column_types` here
    (declared evidence: the project itself says what the table holds), a model's resolved SQL columns in
    lineage. A *disabled* seed on the relation (jaffle-shop enables its raw-data seeds with a var) still
    declares the columns the table has when the project loads it, so its header is used, without the
    dependency. Raw SQL files writing a source's table stay an error (`graph.check_relations`).
    """
    from sqlassets.graph import relation_identity

    def ident(a: Asset) -> tuple[str | None, str, str] | None:
        i = relation_identity(a)
        return None if i is None or i[1] is None else (i[0], i[1], i[2])

    writers: dict[tuple[str, str], list[tuple[str | None, Asset, bool]]] = {}
    for a in assets:
        if a.kind in WRITER_KINDS and (i := ident(a)) is not None:
            writers.setdefault((i[1], i[2]), []).append((i[0], a, True))
    for entries in (manifest.get("disabled") or {}).values():
        for n in entries if isinstance(entries, list) else ():
            if not isinstance(n, dict) or n.get("resource_type") != "seed":
                continue
            seed = Asset(key=str(n.get("name")), kind="seed",
                         relation=Relation(n.get("database"), n.get("schema"), n.get("alias") or str(n.get("name"))),
                         materialization="seed", path=n.get("original_file_path"), dialect=dialect,
                         columns=_seed_columns(root, n, _columns(n)))
            if (i := ident(seed)) is not None and seed.columns:
                writers.setdefault((i[1], i[2]), []).append((i[0], seed, False))
    if not writers:
        return assets
    by_key = {a.key: a for a in assets}

    def reads(start: str, target: str) -> bool:
        """Does `start` (transitively) depend on `target`? A writer reading its own source: no dependency."""
        seen, todo = set(), [start]
        while todo:
            k = todo.pop()
            if k == target:
                return True
            if k not in seen and k in by_key:
                seen.add(k)
                todo.extend(by_key[k].deps)
        return False

    out = []
    for a in assets:
        i = ident(a) if a.kind == "source" else None
        found = [] if i is None else [(w, enabled) for db, w, enabled in writers.get((i[1], i[2]), ())
                                      if db is None or i[0] is None or db == i[0]]
        found.sort(key=lambda f: not f[1])  # an enabled writer wins; two enabled ones clash in the graph anyway
        if not found:
            out.append(a)
            continue
        writer, enabled = found[0]
        changes: dict[str, Any] = {}
        config = dict(a.config)
        if enabled:
            config["written_by"] = writer.key
            if not reads(writer.key, a.key):
                changes["deps"] = tuple(dict.fromkeys((*a.deps, writer.key)))
        if not a.columns and writer.kind == "seed":
            changes["columns"] = writer.columns
            how = f"seed '{writer.key}'" if enabled else f"seed '{writer.key}', disabled"
            config["columns_from"] = f"the header of {writer.path} ({how})"
        if config != a.config:
            changes["config"] = config
        out.append(dataclasses.replace(a, **changes) if changes else a)
    return out


def ephemeral_note(project: Project, name: str) -> str | None:
    """Why `name` is no asset when it names an ephemeral model (dbt inlines those into their dependents)."""
    if not project.has_dbt:
        return None
    try:
        nodes = load_manifest(project, parse=False)["nodes"]
    except ConfigError:
        return None
    for uid, node in nodes.items():
        if node.get("resource_type") == "model" and node.get("name") == name and \
                (node.get("config") or {}).get("materialized") == "ephemeral":
            users = sorted(n["name"] for n in nodes.values()
                           if uid in ((n.get("depends_on") or {}).get("nodes") or []) and n.get("resource_type") in
                           ASSET_RESOURCE_TYPES)
            fed = f"; it is part of {', '.join(users)}" if users else ""
            return (f"'{name}' is an ephemeral dbt model ({node.get('original_file_path')}): dbt inlines it into the "
                    f"models that ref it, so it is not an asset of its own{fed}")
    return None


def load_dbt_assets(project: Project) -> list[Asset]:
    """The project's dbt assets.

    The manifest becomes millions of small objects that live as long as the graph; with the cyclic
    GC on, loading re-scans them over and over (half the load time), and re-enabling it afterwards
    triggers one more full scan (0.13 s for 5,000 models). So GC is paused while loading and the
    survivors are frozen out of later collections. They are unfrozen at exit, so the final
    collection still sees everything (duckdb's nanobind reports leaks otherwise).
    """
    from sqlassets.dbt import manifest_cache

    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        path = manifest_path(project)
        # what project_dialect reads besides the manifest itself
        dialect_inputs = (project.profiles_dir is not None or project.settings.raw.get("warehouse") is not None,
                          project.warehouse.type)
        stored: tuple | None = None
        if _manifest_is_fresh(project, path):
            stored = manifest_cache.key(project, path, dialect_inputs)
            cached = manifest_cache.load(project, stored)
            if cached is not None:
                return cached
            manifest = read_manifest(path)
        elif not _writable(project.target_path):
            manifest = _parse_elsewhere(project)  # a temporary manifest: nothing to cache it against
        else:
            path = run_dbt_parse(project)
            stored = manifest_cache.key(project, path, dialect_inputs)
            manifest = read_manifest(path)
        try:
            assets = assets_from_manifest(manifest, project.root, project_dialect(project, manifest))
        except (ManifestShapeError, AttributeError, TypeError, KeyError) as exc:
            # A hand-edited or foreign manifest: one line naming it, not a traceback from deep inside.
            what = str(exc) if isinstance(exc, ManifestShapeError) else f"unexpected shape ({type(exc).__name__}: {exc})"
            raise ConfigError(f"manifest is malformed: {what}; re-run `dbt parse`",
                              path=str(manifest_path(project))) from None
        if stored is not None:
            # disabled seeds too: their CSV header gives the columns of a source over their table
            disabled = [n for ns in (manifest.get("disabled") or {}).values() if isinstance(ns, list) for n in ns
                        if isinstance(n, dict)]
            seeds = [str(Path(n.get("root_path") or project.root) / n.get("original_file_path", ""))
                     for n in [*manifest["nodes"].values(), *disabled] if n.get("resource_type") == "seed"]
            manifest_cache.save(project, stored, assets, seeds)
        return assets
    finally:
        if gc_enabled:
            gc.freeze()
            _unfreeze_at_exit()
            gc.enable()


@functools.cache
def _unfreeze_at_exit() -> None:
    import atexit

    atexit.register(gc.unfreeze)
