"""Find Great Expectations suites and attach them to assets, without importing GX.

A suite attaches to an asset in one of two ways:

* by file name: `<asset key>.json` anywhere under a folder of `checks_paths` (default `checks/`), e.g.
  `checks/fct_orders.json`, `checks/raw.events.json` for the source `raw.events`;
* by an explicit mapping in sqlassets.yml (a suite shared by several assets, or a file named otherwise):

    checks:
      default_severity: critical      # for expectations without meta.severity (default critical)
      dbt_tests: true                 # run dbt tests as checks too (default true)
      engine: auto                    # auto: covered expectations as one SQL query, the rest in GX; gx: all GX
      suites:
        checks/shared/ids_not_null.json: [stg_customers, stg_products]
        checks/orders_extra.json: {asset: fct_orders, severity: warning}

Each expectation's severity is its `meta.severity` (critical | warning | info), else the suite's
`meta.severity`, else the mapping's `severity`, else `checks.default_severity`. A JSON file in a checks
folder that matches no asset and is not mapped is an error: it is almost always a typo in an asset name,
and silently skipping it would switch a check off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from sqlassets.check_results import Severity
from sqlassets.checks.specs import Expectation, Suite, parse_severity
from sqlassets.errors import ConfigError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project

SETTINGS = "sqlassets.yml"
_SETTINGS_KEYS = {"default_severity", "dbt_tests", "engine", "suites"}
ENGINES = ("auto", "gx")


@dataclass(frozen=True)
class ChecksConfig:
    """The `checks:` mapping of sqlassets.yml, validated."""

    default_severity: Severity = "critical"
    dbt_tests: bool = True
    engine: str = "auto"  # auto | gx: who evaluates GX suites (see sqlassets.checks.pushdown)
    # suite file (resolved) -> [(asset key, severity override or None)]
    suites: tuple[tuple[Path, tuple[tuple[str, Severity | None], ...]], ...] = ()



def _severity(value: Any, label: str, where: str) -> Severity:
    """A severity from a suite or settings file, or a one-line error naming where it was written."""
    parsed = parse_severity(value)
    if parsed is None:
        raise ConfigError(f"{label} {value!r} is not critical, warning or info", path=where)
    return parsed

def _rel(project: Project, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(project.root))
    except ValueError:
        return str(path)


def checks_config(project: Project) -> ChecksConfig:
    """Read and validate `checks:` from sqlassets.yml (absent = defaults)."""
    raw = project.settings.raw.get("checks")
    where = str(project.root / SETTINGS)
    if raw is None:
        return ChecksConfig()
    if not isinstance(raw, dict):
        raise ConfigError("'checks' must be a mapping (default_severity, dbt_tests, suites)", path=where)
    unknown = sorted(set(raw) - _SETTINGS_KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} under 'checks'; known: "
                          f"{', '.join(sorted(_SETTINGS_KEYS))}", path=where)
    default = _severity(raw.get("default_severity", "critical"), "checks.default_severity", where)
    dbt_tests = raw.get("dbt_tests", True)
    if not isinstance(dbt_tests, bool):
        raise ConfigError("checks.dbt_tests must be true or false", path=where)
    engine = raw.get("engine", "auto")
    if engine not in ENGINES:
        raise ConfigError(f"checks.engine {engine!r} is not one of {', '.join(ENGINES)}", path=where)
    suites_raw = raw.get("suites") or {}
    if not isinstance(suites_raw, dict):
        raise ConfigError("checks.suites must map suite files to an asset key or a list of them", path=where)
    suites: list[tuple[Path, tuple[tuple[str, Severity | None], ...]]] = []
    for file, target in suites_raw.items():
        path = (project.root / str(file)).resolve()
        if not path.is_file():
            raise ConfigError(f"checks.suites: suite file {file} does not exist", path=where)
        entries = target if isinstance(target, list) else [target]
        attached: list[tuple[str, Severity | None]] = []
        for entry in entries:
            if isinstance(entry, str):
                attached.append((entry, None))
            elif isinstance(entry, dict) and isinstance(entry.get("asset"), str) and set(entry) <= {"asset",
                                                                                                    "severity"}:
                sev = _severity(entry["severity"], f"checks.suites[{file}]: severity", where) \
                    if "severity" in entry else None
                attached.append((entry["asset"], sev))
            else:
                raise ConfigError(f"checks.suites[{file}]: expected an asset key, a list of them, or "
                                  "{asset: KEY, severity: LEVEL}", path=where)
        suites.append((path, tuple(attached)))
    return ChecksConfig(default_severity=default, dbt_tests=dbt_tests, engine=engine, suites=tuple(suites))


def _expectation_name(etype: str, kwargs: dict[str, Any], meta: dict[str, Any]) -> str:
    if isinstance(meta.get("name"), str) and meta["name"].strip():
        return meta["name"].strip()
    short = etype.removeprefix("expect_")
    col = kwargs.get("column")
    if isinstance(col, str):
        return f"{short}({col})"
    if isinstance(kwargs.get("column_A"), str) and isinstance(kwargs.get("column_B"), str):
        return f"{short}({kwargs['column_A']},{kwargs['column_B']})"
    if isinstance(kwargs.get("column_list"), list):
        return f"{short}({','.join(str(c) for c in kwargs['column_list'])})"
    return short


def read_suite(path: Path, asset: str, *, project: Project, default: Severity,
               override: Severity | None = None) -> Suite:
    """Parse one GX 1.x suite file (`{"name", "expectations": [{"type", "kwargs", "meta"}], "meta"}`).

    The legacy 0.x key `expectation_type` is accepted for `type`. GX validates kwargs only when the
    suite runs; a bad expectation is then reported as an `error` check rather than failing discovery.
    """
    where = _rel(project, path)
    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"suite is not valid JSON ({exc}); fix the file", path=where) from None
    except OSError as exc:
        raise ConfigError(f"cannot read suite: {exc.strerror}", path=where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("expectations"), list):
        raise ConfigError("not a GX suite: expected an object with an 'expectations' list", path=where)
    suite_meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    suite_sev = default
    if override is not None:
        suite_sev = override
    if "severity" in suite_meta:
        suite_sev = _severity(suite_meta["severity"], "meta.severity", where)
    expectations: list[Expectation] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(doc["expectations"]):
        if not isinstance(item, dict):
            raise ConfigError(f"expectation #{i + 1} is not an object", path=where)
        etype = item.get("type", item.get("expectation_type"))
        if not isinstance(etype, str) or not etype:
            raise ConfigError(f"expectation #{i + 1} has no 'type'", path=where)
        kwargs = item.get("kwargs") or {}
        meta = item.get("meta") or {}
        if not isinstance(kwargs, dict) or not isinstance(meta, dict):
            raise ConfigError(f"expectation #{i + 1} ({etype}): 'kwargs' and 'meta' must be objects", path=where)
        severity = suite_sev
        if "severity" in meta:
            severity = _severity(meta["severity"], f"expectation #{i + 1} ({etype}): meta.severity", where)
        name = _expectation_name(etype, kwargs, meta)
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f"{name}#{seen[name]}"
        expectations.append(Expectation(type=etype, kwargs=kwargs, meta=meta, severity=severity, name=name,
                                        index=i))
    name = doc.get("name") if isinstance(doc.get("name"), str) and doc.get("name") else path.stem
    return Suite(asset=asset, path=where, name=name, expectations=tuple(expectations))


def _suite_files(folders: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            files.extend(sorted(p for p in folder.rglob("*.json") if p.is_file()))
    return files


def discover_suites(project: Project, graph: AssetGraph, config: ChecksConfig | None = None
                    ) -> dict[str, list[Suite]]:
    """Suites per asset key: `<asset>.json` in the checks folders plus the explicit mapping."""
    config = config or checks_config(project)
    out: dict[str, list[Suite]] = {}
    mapped = {path for path, _ in config.suites}
    for path, targets in config.suites:
        for asset, sev in targets:
            if asset not in graph:
                raise ConfigError(f"checks.suites[{_rel(project, path)}]: unknown asset '{asset}'; run "
                                  "'sqlassets list' to see asset keys", path=str(project.root / SETTINGS))
            out.setdefault(asset, []).append(read_suite(path, asset, project=project,
                                                        default=config.default_severity, override=sev))
    for path in _suite_files(project.settings.checks_paths):
        if path.resolve() in mapped:
            continue
        asset = path.stem
        if asset not in graph:
            raise ConfigError(f"suite file name '{asset}' matches no asset; rename it to <asset key>.json or map "
                              f"it under checks.suites in {SETTINGS}", path=_rel(project, path))
        out.setdefault(asset, []).append(read_suite(path, asset, project=project,
                                                    default=config.default_severity))
    return out
