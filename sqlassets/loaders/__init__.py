"""Loaders turn a project's files into `Asset`s; `load_graph` joins them into one `AssetGraph`."""

from __future__ import annotations

from sqlassets.graph import AssetGraph
from sqlassets.model import Asset
from sqlassets.project import Project


def load_assets(project: Project) -> list[Asset]:
    """dbt assets (if the project has dbt_project.yml), then raw SQL assets matched against them."""
    assets: list[Asset] = []
    from sqlassets.dbt.loader import DIALECTS  # warehouse type = dbt adapter type

    dialect = DIALECTS.get(project.warehouse.type, project.warehouse.type)
    if project.has_dbt:
        from sqlassets.dbt.loader import load_dbt_assets

        assets = load_dbt_assets(project)
        dialect = next((a.dialect for a in assets), dialect)
    if project.settings.sql_paths:
        from sqlassets.loaders.raw_sql import load_sql_assets

        database = next((a.relation.database for a in assets if a.kind != "source" and a.relation), None)
        if database is None and project.warehouse.type == "duckdb" and project.warehouse.path is not None:
            database = project.warehouse.path.stem
        assets += load_sql_assets(
            project.settings.sql_paths,
            project.root,
            assets,
            default_dialect=dialect,
            database=database,
            schema=project.warehouse.schema,
            exclude=(project.state_dir,),
            cache_dir=project.state_dir,
        )
    return assets


def load_graph(project: Project) -> AssetGraph:
    return AssetGraph(load_assets(project))
