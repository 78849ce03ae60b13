"""`sqlassets ui`: a local web UI over the asset graph, partitions, runs, checks and column lineage.

Nothing here is imported by `sqlassets --help`: the server (Starlette, uvicorn) and the data layer
load only when `sqlassets ui` runs. The front-end is plain JS with vendored libraries (static/vendor,
from npm, with their licences); `sqlassets lineage --report` inlines the same files.
"""
