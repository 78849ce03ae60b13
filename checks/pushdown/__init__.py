"""The SQL engine for Great Expectations suites: covered expectations compiled to one aggregate query.

`expectations` compiles (sqlglot, any dialect) and judges (as GX does); `evaluate` runs a batch.
Great Expectations stays the engine for whatever is not covered, and for `--engine gx`.
"""

from sqlassets.checks.pushdown.expectations import covered, covered_types

__all__ = ["covered", "covered_types"]
