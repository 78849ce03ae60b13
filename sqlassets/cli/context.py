"""Per-invocation CLI state: the project and its graph, loaded once and only when a command needs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project


@dataclass
class CliContext:
    project_dir: Path
    profiles_dir: Path | None = None
    target: str | None = None
    dbt_vars: str | None = None
    debug: bool = False
    _project: Project | None = field(default=None, repr=False)
    _graph: AssetGraph | None = field(default=None, repr=False)

    @property
    def project(self) -> Project:
        if self._project is None:
            from sqlassets.project import load_project

            self._project = load_project(self.project_dir, profiles_dir=self.profiles_dir, target=self.target,
                                         dbt_vars=self.dbt_vars)
        return self._project

    @property
    def graph(self) -> AssetGraph:
        if self._graph is None:
            from sqlassets.loaders import load_graph

            self._graph = load_graph(self.project)
        return self._graph
