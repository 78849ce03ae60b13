"""The UI's HTTP server: Starlette routes over `data` (what pages show) and `jobs` (actions), run by uvicorn.

Pages are server-rendered HTML (Jinja2, autoescaped) with small scripts from `static/`; the graph and
lineage views draw with the vendored cytoscape. The graph is loaded once at start (like a CLI run);
the state store is opened read-only per request, so every page shows the latest runs and partitions.
Only `static/` is served as files: never the project folder, profiles or the state database.
"""

from __future__ import annotations

import json
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError
from sqlassets.ui import data
from sqlassets.ui.jobs import ActionRequest, Jobs
from sqlassets.ui.security import Guard, GuardMiddleware

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project


def _static_dir() -> Path:
    return Path(str(resources.files("sqlassets.ui").joinpath("static")))


class UiState:
    """The project, its graph and the lazily built extras (column lineage, defined checks)."""

    def __init__(self, project: Project, graph: AssetGraph, guard: Guard, gate_file: Path | None = None) -> None:
        self.project = project
        self.graph = graph
        self.guard = guard
        self.jobs = Jobs(project, graph)
        self.gate_file = gate_file
        self._lineage: Any = None
        self._lineage_json: bytes | None = None
        self._checks: dict[str, Any] | None = None
        self._compiled: dict[str, str] = {}
        self._lock = threading.Lock()

    def state(self):
        from sqlassets.run.state import open_state

        return open_state(self.project, readonly=True)

    def running(self, st) -> set[str]:
        return data.running_assets(self.graph, st, self.jobs.running_assets())

    def defined_checks(self) -> dict[str, Any]:
        """asset -> AssetChecks (GX suites, dbt tests), discovered once; {} without the checks extra."""
        with self._lock:
            if self._checks is None:
                try:
                    from sqlassets.checks.runner import CheckRunner

                    self._checks = CheckRunner(self.project, self.graph).checks
                except ImportError:
                    self._checks = {}
                except UserError:
                    self._checks = {}
            return self._checks

    def compiled(self, keys: list[str]) -> dict[str, str]:
        """Compiled SQL (the compile cache a run filled; dbt compiles only on a cold cache)."""
        keys = [k for k in keys if k in self.graph and not self.graph[k].is_external and self.graph[k].kind != "seed"]
        missing = [k for k in keys if k not in self._compiled]
        if missing:
            with self._lock:  # one dbt compile at a time in this process (lineage compiles too)
                self._compile(missing)
        return {k: self._compiled[k] for k in keys if k in self._compiled}

    def _compile(self, missing: list[str]) -> None:
        if missing:
            from sqlassets.dbt.compile import compiled_sql

            try:
                self._compiled.update(compiled_sql(self.project, self.graph, missing))
            except UserError:
                pass

    def lineage_json(self) -> bytes:
        """The column lineage of the whole project in the report's format (built once, cached on disk)."""
        with self._lock:
            if self._lineage_json is None:
                import orjson

                from sqlassets.lineage.build import build_lineage
                from sqlassets.lineage.report import report_data

                built = build_lineage(self.project, self.graph)
                self._lineage = built.columns
                payload = report_data(built.columns, None, self.graph, self.project.name)
                self._lineage_json = orjson.dumps(payload, option=orjson.OPT_NON_STR_KEYS)
            return self._lineage_json


def templates():
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("sqlassets.ui", "templates"),
                             autoescape=jinja2.select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["ts"] = data.ts
    env.filters["secs"] = lambda v: "-" if v is None else (f"{v:.2f}s" if v < 120 else f"{v / 60:.1f}m")
    env.filters["num"] = lambda v: "-" if v is None else f"{v:,}"
    env.filters["tojson_attr"] = lambda v: json.dumps(v, default=str)
    return env


def build_app(ui: UiState):
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, RedirectResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = templates()

    def page(name: str, request: Request, status_code: int = 200, **ctx: Any) -> HTMLResponse:
        html = env.get_template(name).render(project=ui.project.name, csrf=ui.guard.csrf,
                                             read_only=ui.guard.read_only, path=request.url.path, **ctx)
        return HTMLResponse(html, status_code=status_code)

    def json_response(obj: Any, status_code: int = 200) -> Response:
        import orjson

        return Response(orjson.dumps(obj, default=str), status_code=status_code, media_type="application/json")

    def not_found(request: Request, what: str) -> HTMLResponse:
        return page("error.html", request, 404, message=what)

    async def home(request: Request) -> Response:
        return RedirectResponse("/graph", status_code=303)

    async def graph_page(request: Request) -> Response:
        return page("graph.html", request, title="Asset graph", n_assets=len(ui.graph))

    def _graph_json() -> dict[str, Any]:
        with ui.state() as st:
            states = data.node_states(ui.graph, st, ui.running(st))
        return data.graph_payload(ui.graph, states, ui.project.name)

    async def api_graph(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        return json_response(await run_in_threadpool(_graph_json))

    async def api_select(request: Request) -> Response:
        from sqlassets.selection import select_keys

        q = request.query_params.get("q", "").strip()
        exclude = request.query_params.get("exclude", "").strip()
        try:
            keys = select_keys(ui.graph, [q] if q else None, [exclude] if exclude else None)
        except UserError as exc:
            return json_response({"error": str(exc)}, 400)
        return json_response({"keys": keys})

    def _asset_ctx(key: str) -> dict[str, Any]:
        with ui.state() as st:
            detail = data.asset_detail(ui.graph, st, key, ui.running(st))
        defined = ui.defined_checks().get(key)
        if defined is not None:
            by_col: dict[str, list[str]] = {}
            for s in defined.suites:
                for e in s.expectations:
                    by_col.setdefault((e.column or "").lower(), []).append(f"{e.name} (GX {s.name}, {e.severity})")
            for t in defined.dbt_tests:
                by_col.setdefault((t.column or "").lower(), []).append(f"{t.test_type} (dbt, {t.severity})")
            for c in detail["columns"]:
                c["defined"] = by_col.get(c["name"].lower(), [])
            detail["asset_defined"] = [x for k, v in by_col.items() if k not in
                                       {c["name"].lower() for c in detail["columns"]} for x in v]
        return detail

    async def asset_page(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        key = request.path_params["key"]
        if key not in ui.graph:
            return not_found(request, f"no asset '{key}'")
        detail = await run_in_threadpool(_asset_ctx, key)
        return page("asset.html", request, title=key, **detail)

    async def api_compiled(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        key = request.path_params["key"]
        if key not in ui.graph:
            return json_response({"error": f"no asset '{key}'"}, 404)
        asset = ui.graph[key]
        if asset.compiled_sql:
            return json_response({"sql": asset.compiled_sql})
        if asset.is_external or asset.kind == "seed":
            return json_response({"sql": "", "note": f"a {asset.kind} has no SQL"})

        def compile_one() -> dict[str, Any]:
            sql = ui.compiled([key]).get(key, "")
            return {"sql": sql} if sql else {"sql": "", "note": "could not compile it; see `sqlassets show`"}

        return json_response(await run_in_threadpool(compile_one))

    def _runs_ctx() -> dict[str, Any]:
        with ui.state() as st:
            return data.runs_list(st)

    async def runs_page(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        ctx = await run_in_threadpool(_runs_ctx)
        return page("runs.html", request, title="Runs and backfills", jobs=[j.to_json() for j in ui.jobs.all()], **ctx)

    def _run_ctx(run_id: int) -> dict[str, Any] | None:
        with ui.state() as st:
            ctx = data.run_detail(ui.graph, st, run_id, ui.jobs.sql_for(run_id))
        if ctx is not None:
            # only what is already compiled (never a dbt compile per asset of a big run: that took
            # minutes on a cold cache); the asset page compiles one asset on demand
            for a in ctx["assets"]:
                if not a.get("compiled"):
                    a["compiled"] = ui._compiled.get(a["asset"], "")
        return ctx

    async def run_page(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        run_id = request.path_params["run_id"]
        ctx = await run_in_threadpool(_run_ctx, run_id)
        if ctx is None:
            return not_found(request, f"no run {run_id}")
        name = "_run_body.html" if request.query_params.get("fragment") else "run.html"
        return page(name, request, title=f"Run {run_id}", **ctx)

    async def api_run(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        ctx = await run_in_threadpool(_run_ctx, request.path_params["run_id"])
        if ctx is None:
            return json_response({"error": "no such run"}, 404)
        return json_response(ctx)

    async def lineage_page(request: Request) -> Response:
        return page("lineage.html", request, title="Column lineage")

    async def api_lineage(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            body = await run_in_threadpool(ui.lineage_json)
        except UserError as exc:
            return json_response({"error": str(exc)}, 500)
        return Response(body, media_type="application/json")

    async def gate_page(request: Request) -> Response:
        gate = None
        error = None
        path = ui.gate_file or (Path(ui.project.state_dir) / "ci" / "gate.json")
        if path.exists():
            try:
                gate = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                error = f"cannot read {path.name}: {exc}"
        return page("gate.html", request, title="CI gate", gate=gate, gate_file=path.name if gate else None,
                    error=error)

    async def _action(request: Request) -> tuple[ActionRequest | None, Response | None]:
        if ui.guard.read_only:
            return None, json_response({"error": "this UI runs with --read-only: actions are off"}, 403)
        try:
            body = await request.json()
        except ValueError:
            return None, json_response({"error": "expected a JSON body"}, 400)
        try:
            return ActionRequest.from_json(body), None
        except UserError as exc:
            return None, json_response({"error": str(exc)}, 400)

    async def api_plan(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        req, err = await _action(request)
        if err is not None:
            return err
        try:
            return json_response(await run_in_threadpool(ui.jobs.plan, req))
        except UserError as exc:
            return json_response({"error": str(exc)}, 400)

    async def api_start(request: Request) -> Response:
        req, err = await _action(request)
        if err is not None:
            return err
        try:
            job = ui.jobs.start(req)
        except UserError as exc:
            return json_response({"error": str(exc)}, 409)
        return json_response(job.to_json())

    async def api_job(request: Request) -> Response:
        job = ui.jobs.get(request.path_params["job_id"])
        if job is None:
            return json_response({"error": "no such job"}, 404)
        return json_response(job.to_json())

    routes = [
        Route("/", home),
        Route("/graph", graph_page),
        Route("/assets/{key:path}", asset_page),
        Route("/runs", runs_page),
        Route("/runs/{run_id:int}", run_page),
        Route("/lineage", lineage_page),
        Route("/gate", gate_page),
        Route("/api/graph", api_graph),
        Route("/api/select", api_select),
        Route("/api/compiled/{key:path}", api_compiled),
        Route("/api/runs/{run_id:int}", api_run),
        Route("/api/lineage", api_lineage),
        Route("/api/plan", api_plan, methods=["POST"]),
        Route("/api/jobs", api_start, methods=["POST"]),
        Route("/api/jobs/{job_id:int}", api_job),
        Mount("/static", app=StaticFiles(directory=str(_static_dir())), name="static"),
    ]

    async def on_404(request: Request, exc: Exception) -> Response:
        return page("error.html", request, 404, message=f"nothing at {request.url.path}")

    app = Starlette(routes=routes, exception_handlers={404: on_404})
    return GuardMiddleware(app, ui.guard)


def serve(project: Project, graph: AssetGraph, *, host: str, port: int, token: str | None, read_only: bool,
          open_browser: bool, gate_file: Path | None = None, print_token: bool = True, echo=print) -> None:
    """Bind, print the URL (with the token when there is one), and serve until Ctrl-C."""
    import uvicorn

    guard = Guard(host=host, port=port, token=token, read_only=read_only)
    ui = UiState(project, graph, guard, gate_file)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    guard.port = bound
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    echo(f"sqlassets ui: {url}" + (f"?token={token}" if token and print_token else "") +
         (" (read-only)" if read_only else "") + "  (Ctrl-C to stop)")
    if token and print_token:
        echo("the token is printed once; keep it to yourself (or set SQLASSETS_UI_TOKEN)")
    elif token:
        echo("token from SQLASSETS_UI_TOKEN: open the URL with ?token=<it>")
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, args=(url + (f"?token={token}" if token else ""),)).start()
    config = uvicorn.Config(build_app(ui), log_level="warning", lifespan="off", access_log=False,
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
