"""sqlassets: software-defined assets for dbt projects and plain SQL files.

Kept import-free on purpose: `sqlassets --help` must not pay for dbt, sqlglot, GX or warehouse SDKs.
"""

__version__ = "0.1.0"
