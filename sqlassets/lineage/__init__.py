"""Column-level lineage across the whole project (issue 4).

Modules, in the order data flows through them:
- `schema`: column lists per asset in topological order (SQL output, YAML / CSV, DuckDB catalog);
- `resolve`: one query -> typed inputs of every output column (parse, qualify, one scope walk);
- `edges`: the edge types (copy / transform / aggregate / filter) and how they compose;
- `cache`: per-asset cache keyed by compiled SQL + upstream schemas, plus the finished graph;
- `build`: the whole project -> `graph.ColumnGraph` (transitive walks with a depth);
- `render`, `stats`, `report`: text / JSON / dot / Mermaid, `--stats`, the offline HTML report.

Nothing is imported here: `sqlassets --help` and the other commands never load lineage or sqlglot.
"""
