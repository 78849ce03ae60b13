"""Asset checks: Great Expectations suites and dbt tests attached to assets, and the CI gate.

Shipped as `sqlassets.checks`. Nothing here is imported by `sqlassets list`/`graph`; Great Expectations
itself is imported only by `sqlassets.checks.gx`, and only when a suite actually runs.
"""
