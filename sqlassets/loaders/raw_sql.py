"""Raw SQL loader: every `.sql` file under the configured folders is one asset.

A file may open with a header of `-- key: value` comment lines (the leading block of comment lines;
free-text comments belong after it):

    -- name: daily_channel_kpis
    -- materialized: incremental
    -- partitioned: daily
    -- partition_column: event_date
    -- partition_start: 2024-01-01
    -- owner: analytics@shop.example
    -- tags: finance, daily

Dependencies are the tables the query reads (CTE names are not dependencies), matched against dbt
relations, sources and other SQL assets; anything else becomes an external asset.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlassets.errors import ConfigError
from sqlassets.graph import check_relations, index_pairs, lookup_relation, relation_index
from sqlassets.model import Asset, Relation
from sqlassets.private_files import save_cache

MATERIALIZATIONS = ("view", "table", "incremental", "ephemeral")
PARTITION_KINDS = ("hourly", "daily", "weekly", "monthly", "static")
LIST_KEYS = ("tags", "partition_values")
HEADER_KEYS = frozenset({
    "name", "materialized", "owner", "tags", "group", "description", "dialect", "schema", "unique_key",
    "partitioned", "partition_column", "partition_start", "partition_end", "partition_timezone",
    "partition_values", "incremental_strategy",
})
_HEADER_LINE = re.compile(r"^--\s*([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*?)\s*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN_REPR = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: .*?>")


@dataclass(frozen=True)
class SqlFile:
    """A parsed SQL file before its dependencies are resolved against the other assets."""

    path: Path
    rel_path: str
    header: dict[str, Any]
    sql: str
    tables: tuple[tuple[str | None, str | None, str], ...]  # (catalog, db, name) as written


def parse_header(text: str, rel_path: str) -> dict[str, Any]:
    """The `-- key: value` lines of the leading comment block, validated."""
    header: dict[str, Any] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped:
            if header:
                break
            continue
        if not stripped.startswith("--"):
            break
        m = _HEADER_LINE.match(stripped)
        if not m:
            continue  # a free-text comment line in the leading block
        key, value = m.group(1).lower().replace("-", "_"), m.group(2)
        if key not in HEADER_KEYS:
            raise ConfigError(f"unknown header key '{key}'; known: {', '.join(sorted(HEADER_KEYS))}",
                              path=rel_path, line=lineno)
        if key in header:
            raise ConfigError(f"header key '{key}' given twice", path=rel_path, line=lineno)
        if key in LIST_KEYS:
            header[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            header[key] = value
        if key == "materialized" and value not in MATERIALIZATIONS:
            raise ConfigError(f"materialized must be one of {', '.join(MATERIALIZATIONS)}, not '{value}'",
                              path=rel_path, line=lineno)
        if key == "partitioned" and value not in PARTITION_KINDS:
            raise ConfigError(f"partitioned must be one of {', '.join(PARTITION_KINDS)}, not '{value}'",
                              path=rel_path, line=lineno)
        if key == "name" and not _NAME.match(value):
            raise ConfigError(f"name '{value}' must be a SQL identifier (letters, digits, _)",
                              path=rel_path, line=lineno)
        if key == "dialect":
            from sqlglot.dialects.dialect import Dialect

            try:
                Dialect.get_or_raise(value)
            except ValueError:
                raise ConfigError(f"unknown dialect '{value}'", path=rel_path, line=lineno) from None
    return header


class TablesCache:
    """The tables each SQL file reads, remembered by the file's text and dialect (`<state_dir>/
    raw_sql_tables.json`), so loading an unchanged project does not import sqlglot to parse it again.
    Keyed by the installed sqlglot and this module's source too."""

    FILE = "raw_sql_tables.json"

    def __init__(self, state_dir: Path | None) -> None:
        self.path = state_dir / self.FILE if state_dir is not None else None
        self.entries: dict[str, list[list[str | None]]] = {}
        self.changed = False
        if self.path is not None:
            import orjson

            try:
                data = orjson.loads(self.path.read_bytes())
                if isinstance(data, dict) and data.get("code") == self._code():
                    self.entries = data.get("entries") or {}
            except (OSError, ValueError):
                pass

    @staticmethod
    def _code() -> str:
        import importlib.util

        h = hashlib.sha256()
        spec = importlib.util.find_spec("sqlglot")
        for f in (Path(__file__), Path(spec.origin).parent / "_version.py" if spec and spec.origin else None):
            try:
                h.update(f.read_bytes() if f is not None else b"")
            except OSError:
                h.update(str(f).encode())
        return h.hexdigest()

    @staticmethod
    def key(text: str, dialect: str) -> str:
        return hashlib.sha256(f"{dialect}\0{text}".encode()).hexdigest()

    def save(self) -> None:
        if self.path is None or not self.changed:
            return

        import orjson

        save_cache(self.path, orjson.dumps({"code": self._code(), "entries": self.entries}))  # read-only: parse again


_UNSAVED: list[TablesCache] = []


def save_tables_cache() -> None:
    """Write what this process parsed to the tables cache. Called by the commands that write the state
    folder anyway (a run, `check`), after their work: loading a project for a view, or a usage error,
    writes nothing."""
    while _UNSAVED:
        _UNSAVED.pop().save()


def parse_sql_file(path: Path, root: Path, default_dialect: str, cache: TablesCache | None = None) -> SqlFile:
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = str(path)
    try:
        # utf-8-sig: editors on Windows save a BOM, which would otherwise hide the header's first line.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read SQL file: {exc}", path=rel) from None
    header = parse_header(text, rel)
    dialect = header.get("dialect") or default_dialect
    key = TablesCache.key(text, dialect) if cache is not None else ""
    if cache is not None and key in cache.entries:
        known = tuple((c, d, str(n)) for c, d, n in cache.entries[key])
        return SqlFile(path=path, rel_path=rel, header=header, sql=text, tables=known)
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    try:
        statements = [s for s in sqlglot.parse(text, read=dialect) if s is not None]
    except ParseError as exc:
        err = exc.errors[0] if exc.errors else {}
        desc = _TOKEN_REPR.sub(r"'\1'", err.get("description") or str(exc).splitlines()[0])
        raise ConfigError(f"SQL does not parse ({dialect}): {desc}", path=rel, line=err.get("line")) from None
    except TokenError as exc:
        raise ConfigError(f"SQL does not tokenize ({dialect}): {exc}", path=rel) from None
    except RecursionError:
        raise ConfigError("SQL is nested too deeply to parse; flatten it (e.g. into CTEs)", path=rel) from None
    if not statements:
        raise ConfigError("file has no SQL statement; an asset file holds one SELECT query", path=rel)
    if len(statements) > 1:
        raise ConfigError("file has more than one statement; an asset file holds one SELECT query", path=rel)
    query = statements[0]
    if not isinstance(query, exp.Query):
        raise ConfigError(f"expected a SELECT query, found {query.key.upper()}; sqlassets writes the table itself",
                          path=rel)
    ctes = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    tables: dict[tuple[str | None, str | None, str], None] = {}
    for t in query.find_all(exp.Table):
        if not t.name or isinstance(t.this, exp.Func):
            continue  # table functions (read_parquet(...), UNNEST) are not relations
        if not t.db and t.name.lower() in ctes:
            continue
        tables[(t.catalog or None, t.db or None, t.name)] = None
    if cache is not None:
        cache.entries[key] = [list(t) for t in tables]
        cache.changed = True
    return SqlFile(path=path, rel_path=rel, header=header, sql=text, tables=tuple(tables))


def discover(sql_paths: tuple[Path, ...], exclude: tuple[Path, ...] = ()) -> list[Path]:
    """Every .sql file under `sql_paths`, except under `exclude` (the state dir: its compile cache holds
    .sql files that are products of a run, not assets)."""
    files: list[Path] = []
    for folder in sql_paths:
        files.extend(sorted(p for p in folder.rglob("*.sql") if p.is_file()
                            and not any(p.is_relative_to(x) for x in exclude)))
    return files


def load_sql_assets(
    sql_paths: tuple[Path, ...],
    root: Path,
    known: list[Asset],
    *,
    default_dialect: str = "duckdb",
    database: str | None = None,
    schema: str = "main",
    exclude: tuple[Path, ...] = (),
    cache_dir: Path | None = None,
) -> list[Asset]:
    """SQL assets plus the external assets they read; `known` are the dbt assets to match against.

    `cache_dir`: where the tables each file reads are remembered (`TablesCache`); None parses every file.
    """
    cache = TablesCache(cache_dir) if cache_dir is not None else None
    parsed = [parse_sql_file(p, root, default_dialect, cache) for p in discover(sql_paths, exclude)]
    if cache is not None and cache.changed:
        _UNSAVED.append(cache)
    if not parsed:
        return []
    sql_assets: list[tuple[SqlFile, str, Relation]] = []
    for f in parsed:
        key = f.header.get("name") or f.path.stem
        if not _NAME.match(key):
            raise ConfigError(f"file name '{f.path.stem}' is not a SQL identifier; add '-- name: <identifier>'",
                              path=f.rel_path)
        sql_assets.append((f, key, Relation(database, f.header.get("schema") or schema, key)))
    # Before references are resolved: a SQL file naming a source's table would make that name ambiguous.
    check_relations([*known, *(Asset(key=k, kind="sql", relation=r, materialization=f.header.get(
        "materialized", "table"), path=f.rel_path, dialect=f.header.get("dialect") or default_dialect)
        for f, k, r in sql_assets)])
    index = relation_index([*index_pairs(known), *((r, k) for _, k, r in sql_assets)])

    externals: dict[str, Asset] = {}
    out: list[Asset] = []
    for f, key, relation in sql_assets:
        deps: list[str] = []
        for catalog, db, name in f.tables:
            dep = lookup_relation(index, (catalog or "", db or "", name))
            if dep is None:
                ext_key = ".".join(p for p in (catalog, db, name) if p)
                dep = ext_key
                if ext_key not in externals:
                    externals[ext_key] = Asset(
                        key=ext_key,
                        kind="external",
                        relation=Relation(catalog, db, name),
                        materialization="external",
                        description=f"Read by {f.rel_path}; not defined by dbt or a SQL file.",
                        dialect=f.header.get("dialect") or default_dialect,
                    )
            if dep != key:
                deps.append(dep)
        h = f.header
        config = {**h, "materialized": h.get("materialized", "table")}
        out.append(
            Asset(
                key=key,
                kind="sql",
                relation=relation,
                materialization=config["materialized"],
                deps=tuple(dict.fromkeys(deps)),
                description=h.get("description", ""),
                tags=tuple(h.get("tags", ())),
                group=h.get("group"),
                owner=h.get("owner"),
                path=f.rel_path,
                raw_sql=f.sql,
                compiled_sql=f.sql,
                code_version=hashlib.sha256(f.sql.encode()).hexdigest()[:16],
                dialect=h.get("dialect") or default_dialect,
                meta={},
                config=config,
            )
        )
    return out + list(externals.values())
