"""`sqlassets.dagster.definitions(project_dir)`: the Dagster plugin (`pip install 'sqlassets[dagster]'`).

The implementation lives in `sqlassets.integrations.dagster`; this module is the short import path.
"""

from sqlassets.integrations.dagster import DagsterBuilder, asset_key, dagster_partitions, definitions

__all__ = ["DagsterBuilder", "asset_key", "dagster_partitions", "definitions"]
