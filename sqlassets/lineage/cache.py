"""The lineage cache: one file in the state dir, keyed per asset by compiled SQL + upstream schemas.

Why this key is enough: `resolve_query` is a pure function of the SQL text, its dialect and the
column lists of the asset's direct upstreams (see `schema.py`). So a warm run recomputes nothing,
and changing one model recomputes that model, then each child only if the model's *output columns*
changed (a changed expression with the same columns leaves children's keys as they were), and so on
as far as the schema change reaches.

Format: `marshal` of builtins (tuples, dicts, strings) — several times faster to load than pickle or
JSON for ~100k edges; written atomically (temp file + rename); a version mismatch or an unreadable
file is a cold start, never an error.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Mapping, Sequence
from pathlib import Path

from sqlassets.lineage.result import AssetLineage
from sqlassets.private_files import save_cache

#: bump when resolution logic changes what it returns for the same input
RESOLVER_VERSION = "lineage-7"
_FORMAT = 1


def fingerprint(sql: str, dialect: str, upstream: Mapping[str, str]) -> str:
    """Cache key of one asset: resolver version, dialect, SQL, and (upstream key, schema fingerprint)s."""
    h = hashlib.blake2b(digest_size=16)
    h.update(RESOLVER_VERSION.encode())
    h.update(b"\0" + dialect.encode() + b"\0")
    h.update(sql.encode())
    for key in sorted(upstream):
        h.update(b"\0" + key.encode() + b"=" + upstream[key].encode())
    return h.hexdigest()


class LineageCache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._loaded: dict[str, tuple[str, tuple]] | None = None
        self._dirty = False
        self.hits = 0
        self.misses = 0

    @property
    def _entries(self) -> dict[str, tuple[str, tuple]]:
        """Read on first use: a warm run answered by the whole-project snapshot never needs it."""
        if self._loaded is None:
            self._loaded = {}
            if self.path is not None:
                self._load()
        return self._loaded

    @classmethod
    def for_state_dir(cls, state_dir: Path | None) -> LineageCache:
        return cls(Path(state_dir) / "lineage" / "cache.marshal" if state_dir is not None else None)

    def _load(self) -> None:
        try:
            data = marshal.loads(self.path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return
        if isinstance(data, tuple) and len(data) == 3 and data[0] == _FORMAT and data[1] == RESOLVER_VERSION:
            self._loaded = data[2]

    def get(self, key: str, fp: str) -> AssetLineage | None:
        entry = self._entries.get(key)
        if entry is not None and entry[0] == fp:
            self.hits += 1
            return AssetLineage.from_plain(entry[1])
        self.misses += 1
        return None

    def put(self, key: str, fp: str, value: AssetLineage) -> None:
        self._entries[key] = (fp, value.to_plain())
        self._dirty = True

    def prune(self, keep: Sequence[str]) -> None:
        """Drop entries of assets that no longer exist (only when the whole project was built)."""
        wanted = set(keep)
        stale = [k for k in self._entries if k not in wanted]
        for k in stale:
            del self._entries[k]
        self._dirty = self._dirty or bool(stale)

    # -- the finished column graph, reused as is when every record and schema is unchanged ------
    @property
    def _graph_path(self) -> Path | None:
        return self.path.with_name("graph.marshal") if self.path is not None else None

    def load_graph(self, signature: str) -> tuple | None:
        path = self._graph_path
        if path is None:
            return None
        try:
            data = marshal.loads(path.read_bytes())
        except (OSError, EOFError, ValueError, TypeError):
            return None
        if isinstance(data, tuple) and len(data) == 3 and data[:2] == (_FORMAT, signature):
            return data[2]
        return None

    def save_graph(self, signature: str, plain: tuple) -> None:
        path = self._graph_path
        if path is None:
            return
        save_cache(path, marshal.dumps((_FORMAT, signature, plain)))

    def save(self) -> None:
        if not self._dirty or self.path is None:
            return
        # a read-only state dir costs speed next time, not correctness
        save_cache(self.path, marshal.dumps((_FORMAT, RESOLVER_VERSION, self._entries)))
        self._dirty = False
