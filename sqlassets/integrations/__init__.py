"""Bridges to systems sqlassets plugs into rather than replaces.

- `openlineage`: run events (START / COMPLETE / FAIL per asset and partition) with schema and column
  lineage facets, to a file or an HTTP endpoint such as Marquez (`openlineage:` in sqlassets.yml);
- `dagster`: Dagster `Definitions` for a whole project, executed by sqlassets' own executor and state;
- `automation`: schedules, "upstream changed" sensors and freshness limits, declared once and read by the
  foreground scheduler (`sqlassets schedule`), `status` and the Dagster plugin.

Nothing is imported here: each bridge imports its third-party library only when it is used.
"""
