"""Partitions: what an asset is split into, how keys print and parse, and how partitions map across edges.

Time partitions are windows of wall-clock time in the definition's timezone (UTC by default):
hourly `2024-01-05T03`, daily `2024-01-05`, weekly `2024-01-01` (the Monday that starts the week),
monthly `2024-01`, yearly `2024` (dbt microbatch `batch_size: year`). Static partitions are a declared list
of names. Keys are validated against a strict pattern before anything else sees them, so a key can never
carry SQL; ranges `START..END` include both ends.

Definitions come from three places (first match wins):
  1. dbt: `config: {meta: {sqlassets: {partitions: {type, column, start, end, timezone, values}}}}`;
  2. dbt microbatch: `incremental_strategy: microbatch` with `event_time`, `batch_size`, `begin`, `lookback`;
  3. a raw SQL header: `partitioned`, `partition_column`, `partition_start`, `partition_end`,
     `partition_timezone`, `partition_values`.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlassets.errors import PartitionError

if TYPE_CHECKING:
    from sqlassets.model import Asset

UNPARTITIONED = ""  # the one "partition" of an unpartitioned asset, as stored in the state db
GRAINS = ("hourly", "daily", "weekly", "monthly", "yearly")
_MICROBATCH_GRAINS = {"hour": "hourly", "day": "daily", "month": "monthly", "year": "yearly"}
_GRAIN_ALIASES = {"hour": "hourly", "day": "daily", "week": "weekly", "month": "monthly", "year": "yearly"}

_KEY_PATTERNS = {
    "hourly": re.compile(r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2})(?::00(?::00)?)?$"),
    "daily": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "weekly": re.compile(r"^(\d{4})-(\d{2})-(\d{2})$"),
    "monthly": re.compile(r"^(\d{4})-(\d{2})$"),
    "yearly": re.compile(r"^(\d{4})$"),
}
_STATIC_VALUE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@+/-]{0,127}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A time bound typed in a range for an asset of another grain: 2024, 2024-01, 2024-01-05, 2024-01-05T03.
_BOUND = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2})(?::00(?::00)?)?)?)?)?$")


def _short(value: str) -> str:
    """A user's input echoed back in an error, shortened and with control characters made visible."""
    text = value if len(value) <= 40 else value[:37] + "..."
    return repr(text)


@dataclass(frozen=True)
class Window:
    """A half-open time interval [start, end) in wall-clock time of `timezone`."""

    start: datetime
    end: datetime
    timezone: str = "UTC"

    def iso(self) -> tuple[str, str]:
        return self.start.isoformat(sep=" "), self.end.isoformat(sep=" ")


class PartitionsDef:
    """Base of both kinds; `keys()` are the partitions that exist now, in order."""

    kind: str
    column: str | None
    batchable: bool = True

    def keys(self, now: datetime | None = None) -> list[str]:
        raise NotImplementedError

    def parse_key(self, text: str) -> str:
        raise NotImplementedError

    def window(self, key: str) -> Window | None:
        return None

    def parse_range(self, text: str, now: datetime | None = None) -> list[str]:
        """`START..END` (both included) or one key -> keys in order; errors name the input."""
        text = text.strip()
        if ".." in text:
            lo_text, _, hi_text = text.partition("..")
            lo, hi = self.parse_key(lo_text.strip()), self.parse_key(hi_text.strip())
            all_keys = self.keys(now)
            pos = {k: i for i, k in enumerate(all_keys)}
            if lo not in pos or hi not in pos:
                missing = lo if lo not in pos else hi
                raise PartitionError(f"partition {missing} is outside {self.describe()}")
            if pos[lo] > pos[hi]:
                raise PartitionError(f"range {_short(text)} is backwards; write START..END with START first")
            return all_keys[pos[lo]:pos[hi] + 1]
        key = self.parse_key(text)
        if key not in set(self.keys(now)):
            raise PartitionError(f"partition {key} is outside {self.describe()}")
        return [key]

    def describe(self) -> str:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """A JSON-able description (status output, code versions)."""
        raise NotImplementedError


@dataclass(frozen=True)
class TimePartitionsDef(PartitionsDef):
    grain: str
    start: datetime  # naive wall-clock time in `timezone`, aligned to the grain
    end: datetime | None = None  # exclusive; None = up to the last complete partition before now
    timezone: str = "UTC"
    column: str | None = None
    lookback: int = 0
    batchable: bool = True
    kind: str = field(default="time", init=False)

    def __post_init__(self) -> None:
        if self.grain not in GRAINS:
            raise PartitionError(f"unknown grain '{self.grain}'; use one of {', '.join(GRAINS)}")
        if self.end is not None and self.end <= self.start:
            raise PartitionError(f"partition end {self.end} is not after start {self.start}")

    # -- arithmetic on aligned wall-clock datetimes -------------------------------------------------
    def floor(self, t: datetime) -> datetime:
        if self.grain == "hourly":
            return t.replace(minute=0, second=0, microsecond=0)
        d = t.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.grain == "daily":
            return d
        if self.grain == "weekly":
            return d - timedelta(days=d.weekday())
        if self.grain == "monthly":
            return d.replace(day=1)
        return d.replace(month=1, day=1)

    def next(self, t: datetime) -> datetime:
        if self.grain == "hourly":
            return t + timedelta(hours=1)
        if self.grain == "daily":
            return t + timedelta(days=1)
        if self.grain == "weekly":
            return t + timedelta(days=7)
        if self.grain == "monthly":
            return t.replace(year=t.year + 1, month=1) if t.month == 12 else t.replace(month=t.month + 1)
        return t.replace(year=t.year + 1)

    def format(self, t: datetime) -> str:
        if self.grain == "hourly":
            return t.strftime("%Y-%m-%dT%H")
        if self.grain in ("daily", "weekly"):
            return t.strftime("%Y-%m-%d")
        if self.grain == "monthly":
            return t.strftime("%Y-%m")
        return t.strftime("%Y")

    def key_start(self, key: str) -> datetime:
        """The window start of an already-canonical key (fast path, no validation beyond parsing)."""
        return _parse_key_cached(self.grain, key)

    def now_local(self, now: datetime | None = None) -> datetime:
        now = now or datetime.now(UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(_zone(self.timezone)).replace(tzinfo=None)

    def keys(self, now: datetime | None = None) -> list[str]:
        limit = self.floor(self.now_local(now))  # only complete partitions: the current one is still filling
        if self.end is not None:
            limit = min(limit, self.end)
        return _time_keys(self, limit)

    def parse_key(self, text: str) -> str:
        if not isinstance(text, str):
            raise PartitionError(f"partition key must be text, not {type(text).__name__}")
        m = _KEY_PATTERNS[self.grain].match(text.strip())
        if not m:
            raise PartitionError(f"bad {self.grain} partition key {_short(text)}; expected {self._example()}")
        try:
            t = _parse_key_cached(self.grain, text.strip())
        except ValueError:
            raise PartitionError(f"bad {self.grain} partition key {_short(text)}: not a real date") from None
        if self.grain == "weekly" and t.weekday() != 0:
            raise PartitionError(f"weekly partition key {text} is not a Monday; weeks start on Monday "
                                 f"(the week of {text} is {self.format(self.floor(t))})")
        return self.format(t)

    def _example(self) -> str:
        return {"hourly": "YYYY-MM-DDTHH like 2024-01-05T03", "daily": "YYYY-MM-DD like 2024-01-05",
                "weekly": "the Monday YYYY-MM-DD like 2024-01-01", "monthly": "YYYY-MM like 2024-01",
                "yearly": "YYYY like 2024"}[self.grain]

    def window(self, key: str) -> Window:
        s = self.key_start(key)
        return Window(s, self.next(s), self.timezone)

    def span(self, keys: Sequence[str]) -> Window:
        """The window covering contiguous `keys` (a batch)."""
        s = self.key_start(keys[0])
        return Window(s, self.next(self.key_start(keys[-1])), self.timezone)

    def keys_in(self, start: datetime, end: datetime, now: datetime | None = None) -> list[str]:
        """Existing keys whose windows overlap [start, end)."""
        all_keys = self.keys(now)
        starts = _starts(self, tuple(all_keys))
        i = bisect_right(starts, start) - 1
        lo = 0 if i < 0 else (i if self.next(starts[i]) > start else i + 1)
        hi = bisect_left(starts, end)
        return all_keys[lo:hi]

    def describe(self) -> str:
        end = f" to {self.format(self.end)} (exclusive)" if self.end else ""
        tz = f" {self.timezone}" if self.timezone != "UTC" else ""
        return f"{self.grain} partitions from {self.format(self.start)}{end}{tz}"

    def spec(self) -> dict[str, Any]:
        return {"type": self.grain, "start": self.format(self.start),
                "end": self.format(self.end) if self.end else None, "timezone": self.timezone,
                "column": self.column}


@dataclass(frozen=True)
class StaticPartitionsDef(PartitionsDef):
    values: tuple[str, ...]
    column: str | None = None
    batchable: bool = True
    kind: str = field(default="static", init=False)

    def __post_init__(self) -> None:
        if not self.values:
            raise PartitionError("static partitions need at least one value")
        for v in self.values:
            if not isinstance(v, str) or not _STATIC_VALUE.match(v):
                raise PartitionError(f"static partition value {_short(str(v))} must be letters, digits or _.:@+/-")
        if len(set(self.values)) != len(self.values):
            raise PartitionError("static partition values must be unique")

    def keys(self, now: datetime | None = None) -> list[str]:
        return list(self.values)

    def parse_key(self, text: str) -> str:
        if not isinstance(text, str) or text.strip() not in self._index:
            raise PartitionError(f"unknown partition {_short(str(text))}; one of: {', '.join(self.values[:10])}"
                                 + (" ..." if len(self.values) > 10 else ""))
        return text.strip()

    @property
    def _index(self) -> dict[str, int]:
        return _static_index(self.values)

    def describe(self) -> str:
        return f"static partitions ({len(self.values)})"

    def spec(self) -> dict[str, Any]:
        return {"type": "static", "values": list(self.values), "column": self.column}


@lru_cache(maxsize=64)
def _static_index(values: tuple[str, ...]) -> dict[str, int]:
    return {v: i for i, v in enumerate(values)}


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PartitionError(f"unknown timezone {_short(name)}; use an IANA name like UTC or Europe/Paris") from None


@lru_cache(maxsize=200_000)
def _parse_key_cached(grain: str, key: str) -> datetime:
    m = _KEY_PATTERNS[grain].match(key)
    if not m:
        raise ValueError(key)
    g = [int(x) for x in m.groups()]
    if grain == "hourly":
        return datetime(g[0], g[1], g[2], g[3])
    if grain in ("daily", "weekly"):
        return datetime(g[0], g[1], g[2])
    if grain == "monthly":
        return datetime(g[0], g[1], 1)
    return datetime(g[0], 1, 1)


@lru_cache(maxsize=256)
def _time_keys(pdef: TimePartitionsDef, limit: datetime) -> list[str]:
    out: list[str] = []
    t = pdef.start
    while t < limit and pdef.next(t) <= limit:
        out.append(pdef.format(t))
        t = pdef.next(t)
    return out


@lru_cache(maxsize=256)
def _starts(pdef: TimePartitionsDef, keys: tuple[str, ...]) -> list[datetime]:
    return [pdef.key_start(k) for k in keys]


# -- parsing definitions ------------------------------------------------------------------------------

def parse_bound(text: str, *, what: str = "time") -> tuple[datetime, datetime]:
    """A typed time bound (2024, 2024-01, 2024-01-05, 2024-01-05T03) -> the interval it names."""
    m = _BOUND.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise PartitionError(f"bad {what} {_short(str(text))}; expected a date like 2024-01-05, 2024-01 or 2024-01-05T03")
    y, mo, d, h = (int(x) if x else None for x in m.groups())
    try:
        if h is not None:
            s = datetime(y, mo, d, h)
            return s, s + timedelta(hours=1)
        if d is not None:
            s = datetime(y, mo, d)
            return s, s + timedelta(days=1)
        if mo is not None:
            s = datetime(y, mo, 1)
            return s, (s.replace(year=y + 1, month=1) if mo == 12 else s.replace(month=mo + 1))
        s = datetime(y, 1, 1)
        return s, s.replace(year=y + 1)
    except ValueError:
        raise PartitionError(f"bad {what} {_short(text)}: not a real date") from None


def _parse_datetime(value: Any, what: str, where: str) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, str):
        text = value.strip()
        try:
            return parse_bound(text, what=what)[0]
        except PartitionError:
            pass
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise PartitionError(f"{where}: bad {what} {_short(text)}; use a date like 2024-01-01") from None
        return dt if dt.tzinfo is None else dt.astimezone(UTC).replace(tzinfo=None)
    raise PartitionError(f"{where}: bad {what} {_short(str(value))}; use a date like 2024-01-01")


def make_time_def(grain: str, start: Any, *, end: Any = None, timezone: str | None = None,
                  column: str | None = None, lookback: int = 0, batchable: bool = True,
                  where: str = "partitions") -> TimePartitionsDef:
    """Validate a time partitions spec; `where` names the asset/file in errors."""
    g = _GRAIN_ALIASES.get(str(grain).lower(), str(grain).lower())
    if g not in GRAINS:
        raise PartitionError(f"{where}: unknown partition type {_short(str(grain))}; use hourly, daily, weekly, "
                             "monthly, yearly or static")
    if start is None or start == "":
        raise PartitionError(f"{where}: {g} partitions need a start date (e.g. start: '2024-01-01')")
    tz = str(timezone or "UTC")
    _zone(tz)
    if column is not None and not _COLUMN.match(str(column)):
        raise PartitionError(f"{where}: partition column {_short(str(column))} is not a plain column name")
    proto = TimePartitionsDef(g, datetime(2000, 1, 3), None, tz, column)
    s = _parse_datetime(start, "partition start", where)
    s_aligned = proto.floor(s)
    e = None
    if end not in (None, ""):
        e = proto.floor(_parse_datetime(end, "partition end", where))
        if e <= s_aligned:
            raise PartitionError(f"{where}: partition end {end} is not after start {start}")
    try:
        lookback_n = int(lookback or 0)
    except (TypeError, ValueError):
        raise PartitionError(f"{where}: lookback must be a whole number, not {_short(str(lookback))}") from None
    return TimePartitionsDef(g, s_aligned, e, tz, str(column) if column else None, max(lookback_n, 0), batchable)


def _truthy(value: Any) -> bool:
    return value not in (False, "false", "False", "no", "0", 0)


def partitions_def_from_config(config: dict[str, Any], meta: dict[str, Any] | None = None, *,
                               where: str = "asset") -> PartitionsDef | None:
    """The partitions an asset declares, from its dbt config/meta or raw SQL header; None if unpartitioned."""
    meta = meta or {}
    sq = (config.get("meta") or {}).get("sqlassets") or meta.get("sqlassets") or {}
    spec = sq.get("partitions") if isinstance(sq, dict) else None
    microbatch = config.get("incremental_strategy") == "microbatch" and config.get("materialized") == "incremental"
    refine: dict[str, Any] = {}
    if microbatch and isinstance(spec, dict) and "type" not in spec:
        # A microbatch model keeps dbt's config and may only add what dbt has no setting for (an end).
        refine, spec = spec, None
        unknown = set(refine) - {"end", "timezone"}
        if unknown:
            raise PartitionError(f"{where}: a microbatch model's meta.sqlassets.run.partitions may set only end and "
                                 f"timezone (or a full spec with 'type'), not {', '.join(sorted(unknown))}")
    if spec is not None:
        if not isinstance(spec, dict) or "type" not in spec:
            raise PartitionError(f"{where}: meta.sqlassets.run.partitions must be a mapping with 'type'")
        unknown = set(spec) - {"type", "column", "start", "end", "timezone", "values", "batchable", "lookback"}
        if unknown:
            raise PartitionError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} in meta.sqlassets.run.partitions")
        typ = str(spec["type"]).lower()
        batchable = _truthy(spec.get("batchable", True))
        if typ == "static":
            values = spec.get("values")
            if not isinstance(values, list) or not values:
                raise PartitionError(f"{where}: static partitions need 'values: [a, b, ...]'")
            return StaticPartitionsDef(tuple(str(v) for v in values), spec.get("column"), batchable)
        return make_time_def(typ, spec.get("start"), end=spec.get("end"), timezone=spec.get("timezone"),
                             column=spec.get("column") or config.get("event_time"),
                             lookback=spec.get("lookback", 0), batchable=batchable, where=where)
    if microbatch:
        grain = _MICROBATCH_GRAINS.get(str(config.get("batch_size") or "").lower())
        if grain is None:
            raise PartitionError(f"{where}: microbatch batch_size must be hour, day, month or year, "
                                 f"not {_short(str(config.get('batch_size')))}")
        if not config.get("event_time"):
            raise PartitionError(f"{where}: microbatch models need event_time")
        if not config.get("begin"):
            raise PartitionError(f"{where}: microbatch models need begin (e.g. begin: '2024-01-01')")
        lookback = config.get("lookback")
        return make_time_def(grain, config.get("begin"), end=refine.get("end"), timezone=refine.get("timezone"),
                             column=config.get("event_time"), lookback=1 if lookback is None else lookback,
                             where=where)
    kind = config.get("partitioned")
    if kind not in (None, "", "none", False):
        kind = str(kind).lower()
        if kind == "static":
            values = config.get("partition_values")
            if isinstance(values, str):
                values = [v.strip() for v in values.split(",") if v.strip()]
            if not values:
                raise PartitionError(f"{where}: partitioned: static needs 'partition_values: a, b, c'")
            return StaticPartitionsDef(tuple(values), config.get("partition_column"))
        return make_time_def(kind, config.get("partition_start"), end=config.get("partition_end"),
                             timezone=config.get("partition_timezone"), column=config.get("partition_column"),
                             where=where)
    return None


_DEF_CACHE: dict[int, tuple[Asset, PartitionsDef | None]] = {}


def partitions_def(asset: Asset) -> PartitionsDef | None:
    """`partitions_def_from_config` for an asset, cached per asset object (assets are immutable)."""
    hit = _DEF_CACHE.get(id(asset))
    if hit is not None and hit[0] is asset:  # the entry holds the asset, so its id cannot be reused
        return hit[1]
    if asset.is_external or asset.materialization in ("seed", "snapshot", "view", "ephemeral"):
        pdef = None
        if asset.materialization in ("view", "ephemeral") and (
            (asset.config.get("meta") or {}).get("sqlassets", {}).get("partitions") or asset.config.get("partitioned")
        ):
            raise PartitionError(f"{asset.path or asset.key}: a {asset.materialization} cannot be partitioned; "
                                 "make it a table or incremental")
    else:
        pdef = partitions_def_from_config(asset.config, asset.meta, where=asset.path or asset.key)
        if pdef is not None and pdef.column is None:
            raise PartitionError(f"{asset.path or asset.key}: partitioned assets need a partition column "
                                 "(column / partition_column / event_time)")
    if len(_DEF_CACHE) > 100_000:
        _DEF_CACHE.clear()
    _DEF_CACHE[id(asset)] = (asset, pdef)
    return pdef


# -- mapping across edges -------------------------------------------------------------------------------

def map_partitions(down: PartitionsDef | None, down_keys: Sequence[str], up: PartitionsDef | None,
                   now: datetime | None = None) -> list[str]:
    """Upstream partitions that `down_keys` of the downstream asset read.

    identity at the same grain; overlapping windows across time grains (a monthly partition reads its
    days, a day reads its month); an unpartitioned downstream (or a static/time mix) reads every upstream
    partition; a partitioned downstream of an unpartitioned upstream reads that one table.
    """
    if up is None:
        return [UNPARTITIONED]
    if down is None:
        return up.keys(now)
    if isinstance(down, TimePartitionsDef) and isinstance(up, TimePartitionsDef):
        if down.grain == up.grain and down.start == up.start and down.timezone == up.timezone:
            existing = set(up.keys(now))
            return [k for k in down_keys if k in existing]
        if down.timezone == up.timezone:
            out: list[str] = []
            for start, end in _runs(down, down_keys):
                out.extend(up.keys_in(start, end, now))
            return list(dict.fromkeys(out))
        out = []
        for start, end in _runs(down, down_keys):
            s = _convert(start, down.timezone, up.timezone)
            e = _convert(end, down.timezone, up.timezone)
            out.extend(up.keys_in(s, e, now))
        return list(dict.fromkeys(out))
    if isinstance(down, StaticPartitionsDef) and isinstance(up, StaticPartitionsDef):
        ups = set(up.values)
        return [k for k in down_keys if k in ups]
    return up.keys(now)


def _convert(t: datetime, src: str, dst: str) -> datetime:
    return t.replace(tzinfo=_zone(src)).astimezone(_zone(dst)).replace(tzinfo=None)


def _runs(pdef: TimePartitionsDef, keys: Iterable[str]) -> list[tuple[datetime, datetime]]:
    """Merge keys into contiguous [start, end) runs so mapping a long range costs one bisect per run."""
    runs: list[tuple[datetime, datetime]] = []
    for k in keys:
        s = pdef.key_start(k)
        e = pdef.next(s)
        if runs and runs[-1][1] == s:
            runs[-1] = (runs[-1][0], e)
        else:
            runs.append((s, e))
    return runs


def contiguous_batches(pdef: PartitionsDef | None, keys: Sequence[str], size: int) -> list[tuple[str, ...]]:
    """Split ordered keys into batches of at most `size` neighbours (a gap starts a new batch)."""
    if pdef is None or size <= 1 or not pdef.batchable:
        return [(k,) for k in keys]
    batches: list[tuple[str, ...]] = []
    cur: list[str] = []
    if isinstance(pdef, TimePartitionsDef):
        prev_end: datetime | None = None
        for k in keys:
            s = pdef.key_start(k)
            if cur and (len(cur) >= size or s != prev_end):
                batches.append(tuple(cur))
                cur = []
            cur.append(k)
            prev_end = pdef.next(s)
    else:
        for k in keys:
            if len(cur) >= size:
                batches.append(tuple(cur))
                cur = []
            cur.append(k)
    if cur:
        batches.append(tuple(cur))
    return batches


def compress_keys(pdef: PartitionsDef | None, keys: Sequence[str], limit: int = 4) -> str:
    """`2024-01-01..2024-01-31, 2024-03-01` — how plans and status print a set of keys."""
    if not keys:
        return "-"
    if pdef is None or not isinstance(pdef, TimePartitionsDef):
        shown = ", ".join(keys[:limit * 2])
        return shown + (f" (+{len(keys) - limit * 2})" if len(keys) > limit * 2 else "")
    parts: list[str] = []
    run_start = prev = keys[0]
    prev_end = pdef.next(pdef.key_start(prev))
    for k in keys[1:]:
        s = pdef.key_start(k)
        if s == prev_end:
            prev, prev_end = k, pdef.next(s)
            continue
        parts.append(run_start if run_start == prev else f"{run_start}..{prev}")
        run_start = prev = k
        prev_end = pdef.next(s)
    parts.append(run_start if run_start == prev else f"{run_start}..{prev}")
    if len(parts) > limit:
        return ", ".join(parts[:limit]) + f", ... ({len(parts) - limit} more runs)"
    return ", ".join(parts)


def select_keys(pdef: PartitionsDef, spec: str | None, *, single: bool = False, now: datetime | None = None
                ) -> list[str]:
    """Keys of `pdef` named by a `--partitions`/`--partition` value; None = all existing keys.

    A range typed at another grain (days for a monthly asset) selects the partitions that overlap it.
    """
    if spec is None:
        return pdef.keys(now)
    if not isinstance(spec, str) or not spec.strip():
        raise PartitionError("empty partition; pass a key like 2024-01-05 or a range START..END")
    if single and ".." in spec:
        raise PartitionError(f"--partition takes one key, not a range {_short(spec)}; use --partitions")
    if not isinstance(pdef, TimePartitionsDef):
        return pdef.parse_range(spec, now)
    lo_text, sep, hi_text = spec.strip().partition("..")
    same_grain = all(_KEY_PATTERNS[pdef.grain].match(t.strip()) for t in ((lo_text, hi_text) if sep else (lo_text,)))
    if same_grain:
        return pdef.parse_range(spec, now)
    # Another grain (days for a monthly asset): take the partitions that overlap the typed interval.
    lo_s, _ = parse_bound(lo_text.strip(), what="partition")
    _, hi_e = parse_bound((hi_text if sep else lo_text).strip(), what="partition")
    if hi_e <= lo_s:
        raise PartitionError(f"range {_short(spec)} is backwards; write START..END with START first")
    keys = pdef.keys_in(lo_s, hi_e, now)
    if not keys:
        raise PartitionError(f"{_short(spec)} names no partition of {pdef.describe()}")
    return keys
