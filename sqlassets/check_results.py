"""The contract between the executor and asset checks.

The executor (issue 3) calls a `PostMaterializeHook` after each partition's data commits and before it
records the partition done; checks (issue 5) implement it. Keeping the contract in core means the
executor never imports `sqlassets.checks` (data flows one way) and runs without checks installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:
    from sqlassets.model import Asset

Severity = Literal["critical", "warning", "info"]
Status = Literal["pass", "fail", "error", "skipped"]


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome on one asset (and partition).

    `blocking` is true when a critical check failed or errored: the partition is then not recorded done
    and its downstream is not built in that run.
    """

    asset: str
    check: str
    status: Status
    severity: Severity = "critical"
    partition: str | None = None
    column: str | None = None
    observed: Any = None
    expected: Any = None
    message: str = ""
    source: str = ""  # "gx:<suite file>" or "dbt:<test unique_id>"
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def blocking(self) -> bool:
        return self.severity == "critical" and self.status in ("fail", "error")


class PostMaterializeHook(Protocol):
    """Called by the executor after a partition (or an unpartitioned asset) commits.

    `window` is (start, end) as ISO strings for time partitions, None otherwise; `adapter` is the open
    warehouse adapter the data was written with.
    """

    def __call__(self, asset: Asset, partition: str | None, window: tuple[str, str] | None,
                 adapter: Any) -> Sequence[CheckResult]: ...
