"""The statements an incremental asset writes with, remembered between runs, so a warm run skips sqlglot.

Parsing an asset's SQL and building its DELETE/INSERT/MERGE with sqlglot is done once per asset per run;
importing sqlglot alone costs about as much as a month of daily partitions on DuckDB. Most runs are the
same asset filling more partitions with the same SQL into the same table, so after a run writes an
incremental asset its rendered templates are saved under `.sqlassets/statements/`, keyed by everything
they were built from:

- the compiled SQL, the asset's relation, dialect, strategy, partitions and `unique_key`;
- what `prepare_select` reads from the graph: each upstream's relation, materialization, `event_time`
  (microbatch filters) and raw SQL (inlined ephemerals);
- the source of the modules that build statements (strategies, windows, this module, the adapter), so a
  code change invalidates every entry without anyone remembering to bump a version.

A `CachedMaterializer` replays an entry only when the table is still the one the entry was built for:
same column names and types, and the query still yields the same columns (a `DESCRIBE`, no rows read);
when the table does not exist yet it is created from the remembered CTAS, and the entry's inserts are
used once the new table has the remembered columns. Anything else — no entry, a view or a drifted table
in the way, `--full-refresh`, tables, views and seeds — takes the normal path through `sqlassets.run.strategies.Materializer`, which imports sqlglot as before.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sqlassets.private_files import write_private
from sqlassets.run.windows import Template

if TYPE_CHECKING:
    from sqlassets.adapters.base import Adapter, Session
    from sqlassets.graph import AssetGraph
    from sqlassets.model import Asset
    from sqlassets.run.partitions import PartitionsDef
    from sqlassets.run.planner import Plan
    from sqlassets.run.strategies import Materializer

CACHE_DIR = "statements"
INCREMENTAL = ("partition_replace", "merge", "append")
_HERE = Path(__file__).resolve().parent


def _code_digest(adapter: Adapter) -> str:
    """The source of everything that shapes the statements: a change to any of it invalidates the cache."""
    import inspect

    h = hashlib.sha256()
    files = [_HERE / "strategies.py", _HERE / "windows.py", Path(__file__).resolve(),
             Path(inspect.getfile(type(adapter)))]
    files += [Path(inspect.getfile(k)) for k in type(adapter).__mro__[1:] if k.__module__.startswith("sqlassets")]
    for f in dict.fromkeys(files):
        try:
            h.update(f.read_bytes())
        except OSError:
            h.update(str(f).encode())
    return h.hexdigest()


def entry_key(asset: Asset, sql: str, graph: AssetGraph, pdef: PartitionsDef | None, adapter: Adapter,
              strategy: str, code: str) -> str:
    deps = []
    for dep in asset.deps:
        up = graph.get(dep)
        if up is not None:
            deps.append([up.key, str(up.relation) if up.relation else None, up.materialization, up.kind,
                         str((up.config or {}).get("event_time") or ""),
                         up.raw_sql if up.materialization == "ephemeral" else None])
    config = asset.config or {}
    payload = [sql, asset.key, str(asset.relation), asset.dialect, strategy, pdef.spec() if pdef else None,
               str(config.get("unique_key")), str(config.get("incremental_strategy")), deps,
               adapter.type, adapter.dialect, code]
    return hashlib.sha256(orjson.dumps(payload, default=str)).hexdigest()[:32]


class StatementCache:
    """Entries on disk, one small JSON file per (asset, inputs) key; written atomically."""

    def __init__(self, state_dir: Path, adapter: Adapter) -> None:
        self.dir = state_dir / CACHE_DIR
        self.adapter = adapter
        self._code: str | None = None
        self.digests: dict[str, str] = {}  # asset key -> entry key, for every incremental asset of this run

    @property
    def code(self) -> str:
        if self._code is None:
            self._code = _code_digest(self.adapter)
        return self._code

    def key(self, asset: Asset, sql: str, graph: AssetGraph, pdef: PartitionsDef | None, strategy: str) -> str:
        return entry_key(asset, sql, graph, pdef, self.adapter, strategy, self.code)

    def load(self, key: str) -> dict[str, Any] | None:
        try:
            data = orjson.loads((self.dir / f"{key}.json").read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return None
        return data if isinstance(data, dict) and data.get("key") == key else None

    def save(self, key: str, entry: dict[str, Any]) -> None:
        write_private(self.dir / f"{key}.json", orjson.dumps({**entry, "key": key}))


@dataclass(frozen=True)
class Outcome:
    """What one unit's write reports back (rows affected, when the warehouse says)."""

    rows: int | None


def batchable(pdef: PartitionsDef | None, uses_key: bool, strategy: str) -> bool:
    """Can contiguous partitions be written by one statement? (Both materializers ask this.)"""
    return pdef is not None and pdef.batchable and not uses_key and strategy in ("partition_replace", "merge")


def _columns(adapter: Adapter, cols: Sequence[Any]) -> list[list[str]]:
    return [[c.name, adapter.normalize_type(c.type)] for c in cols]


class CachedMaterializer:
    """An incremental asset written with remembered templates; falls back to `Materializer` when the
    table is not the one they were built for. Same interface as `Materializer` for the executor."""

    def __init__(self, asset: Asset, pdef: PartitionsDef | None, adapter: Adapter, entry: dict[str, Any],
                 fallback: Callable[[], Materializer]) -> None:
        self.asset = asset
        self.pdef = pdef
        self.adapter = adapter
        self.entry = entry
        self.strategy: str = entry["strategy"]
        self.relation = asset.relation
        self._fallback = fallback
        self._delegate: Materializer | None = None
        self._insert: list[Template] = []
        self._prepared = False
        self._lock = threading.Lock()
        self.exists: bool | None = None
        self.full_refresh = False

    writes = True

    @property
    def batchable(self) -> bool:
        return batchable(self.pdef, self.entry["uses_key"], self.strategy)

    def prepare(self, session: Session, first_keys: Sequence[str]) -> None:
        if self._prepared:
            return
        entry = self.entry
        kind = self.adapter.relation_type(session, self.relation)
        if kind is None:  # created by the first unit from the remembered CTAS (see `write`)
            if entry.get("schema_ddl"):
                session.execute(entry["schema_ddl"])
            self.exists = False
            self._prepared = True
            return
        ok = kind == "table"
        ok = ok and _columns(self.adapter, self.adapter.columns(session, self.relation)) == entry["table_columns"]
        if ok:
            probe = Template.restore(entry["source"]).render(self.pdef, list(first_keys) or [""])
            ok = _columns(self.adapter, self.adapter.query_columns(session, probe)) == entry["query_columns"]
        if ok:
            self._insert = [Template.restore(t) for t in entry["insert"]]
            self.exists = True
        else:
            self._delegate = self._fallback()
            self._delegate.prepare(session, first_keys)
            self.exists = self._delegate.exists
        self._prepared = True

    def write(self, session: Session, keys: Sequence[str]) -> Any:
        if self._delegate is not None:
            return self._delegate.write(session, keys)
        session.set_query_tag(self.adapter.query_tag(self.asset.key, keys))
        if not self.exists:
            with self._lock:
                if not self.exists:
                    rows = session.run_atomic([Template.restore(self.entry["create"]).render(self.pdef, keys)])
                    cols = _columns(self.adapter, self.adapter.columns(session, self.relation))
                    if cols == self.entry["table_columns"]:
                        self._insert = [Template.restore(t) for t in self.entry["insert"]]
                    else:  # not what the entry was built for: build the inserts the normal way
                        self._delegate = self._fallback()
                        self._delegate.prepare(session, keys)
                    self.exists = True
                    return Outcome(rows)
        if self._delegate is not None:
            return self._delegate.write(session, keys)
        memo: dict[str, str] = {}
        return Outcome(session.run_atomic([tpl.render(self.pdef, keys, memo) for tpl in self._insert]))


def remember(cache: StatementCache, materializers: dict[str, Any], plan: Plan,
             session: Callable[[], Session]) -> int:
    """After a run: save the templates of incremental assets built the normal way (no entry yet, or the
    entry no longer fit and was rebuilt: it is replaced). Returns how many.

    Only assets whose templates were fully built (the table existed, or the first unit created it) are
    saved, with the table's columns and the query's columns as they are now. `session` is called only
    when there is something to save: a warm run that replayed everything opens nothing.
    """
    saved = 0
    opened: Session | None = None
    first_keys = {pa.key: pa.keys for pa in plan.to_run}
    for asset_key, digest in cache.digests.items():
        mat = materializers.get(asset_key)
        if isinstance(mat, CachedMaterializer):
            mat = mat._delegate  # replayed: nothing new to save; fell back: save what was built instead
        if mat is None or mat.strategy not in INCREMENTAL:
            continue
        if not (mat._prepared and mat.exists and mat._insert and mat._create) or mat.select is None:
            continue
        if opened is None:
            opened = session()
        source = Template(mat.adapter.render(mat._source()), mat.adapter.dialect)
        probe_keys = list(first_keys.get(asset_key) or ())[:1] or [""]
        table_cols = _columns(mat.adapter, mat.adapter.columns(opened, mat.relation))
        query_cols = _columns(mat.adapter, mat.adapter.query_columns(opened, source.render(mat.pdef, probe_keys)))
        cache.save(digest, {"strategy": mat.strategy, "uses_window": mat.select.uses_window,
                            "uses_key": mat.select.uses_key, "source": source.state(), "create": mat._create.state(),
                            "schema_ddl": mat.adapter.schema_ddl(mat.relation) if mat.relation.schema else None,
                            "insert": [t.state() for t in mat._insert], "table_columns": table_cols,
                            "query_columns": query_cols})
        saved += 1
    return saved
