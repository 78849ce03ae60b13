"""What a check is before it runs: frozen descriptions read from suite files and the dbt manifest.

Kept free of GX and dbt imports so that discovering checks (for `check --select`, the CI gate's list of
what will run, or deciding that an asset has no checks at all) costs only a JSON read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlassets.check_results import Severity

SEVERITIES: tuple[str, ...] = ("critical", "warning", "info")
# Spellings users bring from dbt and GX docs; all map onto the three severities the executor knows.
_SEVERITY_ALIASES = {
    "critical": "critical", "error": "critical", "blocking": "critical", "high": "critical",
    "warning": "warning", "warn": "warning", "medium": "warning",
    "info": "info", "low": "info",
}


def parse_severity(value: Any) -> Severity | None:
    """`critical|warning|info` (and the aliases error/warn); None when `value` is not a severity."""
    if not isinstance(value, str):
        return None
    return _SEVERITY_ALIASES.get(value.strip().lower())  # type: ignore[return-value]


@dataclass(frozen=True)
class Expectation:
    """One expectation of a GX suite as written in its JSON (validated by GX only when it runs)."""

    type: str
    kwargs: dict[str, Any] = field(compare=False)
    meta: dict[str, Any] = field(compare=False)
    severity: Severity
    name: str  # unique within the suite: `type(column)`, or meta.name when given
    index: int  # position in the file, for messages

    @property
    def column(self) -> str | None:
        for key in ("column", "column_A", "column_B"):
            value = self.kwargs.get(key)
            if isinstance(value, str):
                return value
        cols = self.kwargs.get("column_list")
        if isinstance(cols, list) and cols:
            return ",".join(str(c) for c in cols)
        return None


@dataclass(frozen=True)
class Suite:
    """A GX 1.x expectation suite attached to one asset."""

    asset: str
    path: str  # file path relative to the project root (or absolute when outside it)
    name: str
    expectations: tuple[Expectation, ...]


@dataclass(frozen=True)
class DbtTest:
    """A dbt data test (generic or singular) attached to the asset it tests."""

    unique_id: str
    name: str
    asset: str
    severity: Severity  # the severity a failure past error_if (or warn_if for warn tests) gets
    warn_if: str
    error_if: str
    fail_calc: str
    limit: int | None
    column: str | None
    test_type: str  # the generic test's name (not_null, unique, ...) or "singular"
    path: str | None
    depends_on: tuple[str, ...]  # asset keys the test reads
    # dbt `store_failures`: "table" or "view" (as `store_failures_as`), None when failures are not stored;
    # `audit` is the relation dbt would store them in (database, schema, identifier)
    store_failures_as: str | None = None
    audit: tuple[str | None, str | None, str] | None = None


@dataclass(frozen=True)
class AssetChecks:
    """Everything that checks one asset."""

    asset: str
    suites: tuple[Suite, ...] = ()
    dbt_tests: tuple[DbtTest, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.suites or self.dbt_tests)

    @property
    def count(self) -> int:
        return sum(len(s.expectations) for s in self.suites) + len(self.dbt_tests)
