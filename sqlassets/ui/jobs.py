"""Actions started from the UI: materialize, backfill, resume and check, through the CLI's own code path.

Why the same path: a run started in the browser must take the same leases, write the same state and
obey the same refusals as `sqlassets backfill ...` in a terminal, so a CLI run and a UI run never
overwrite each other and `sqlassets runs` / `backfill resume` see UI runs like any other. So a plan is
`execute_request(..., dry_run=True)` (read-only state, nothing written) and a run is
`execute_request(...)` with the CLI's checks hook, on a worker thread of this process.

One UI job runs at a time (a second one is refused with a message); leases still arbitrate against
CLI runs and other UI servers. The SQL each unit sends is recorded by a thin adapter wrapper, shown on
the run page, and kept in `<state_dir>/ui/sql/run-<id>.json` after the run.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlassets.errors import UserError

if TYPE_CHECKING:
    from sqlassets.graph import AssetGraph
    from sqlassets.project import Project

ACTIONS = ("materialize", "backfill", "resume", "check")
MODES = ("missing", "stale", "all")
_MAX_STATEMENTS = 300
_MAX_SQL_CHARS = 20_000
_TARGET = re.compile(r"\b(?:INTO|TABLE|VIEW|UPDATE|MERGE\s+INTO)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?([\w\".`]+)", re.I)


@dataclass
class ActionRequest:
    """What the browser asks for, validated; the same knobs as the CLI flags."""

    action: str
    select: str = ""
    exclude: str = ""
    partitions: str | None = None
    mode: str = "missing"
    concurrency: int = 1
    batch_size: int = 1
    backfill_id: int | None = None

    @classmethod
    def from_json(cls, body: Any) -> ActionRequest:
        if not isinstance(body, dict):
            raise UserError("expected a JSON object")
        action = str(body.get("action") or "")
        if action not in ACTIONS:
            raise UserError(f"unknown action '{action}'; one of {', '.join(ACTIONS)}")
        mode = str(body.get("mode") or "missing")
        if mode not in MODES:
            raise UserError(f"unknown mode '{mode}'; one of {', '.join(MODES)}")

        def _int(name: str, default: int, lo: int, hi: int) -> int:
            raw = body.get(name)
            if raw in (None, ""):
                return default
            try:
                value = int(raw)
            except (TypeError, ValueError):
                raise UserError(f"{name} must be a whole number") from None
            if not lo <= value <= hi:
                raise UserError(f"{name} must be between {lo} and {hi}")
            return value

        bid = body.get("backfill_id")
        req = cls(action=action, select=str(body.get("select") or "").strip(),
                  exclude=str(body.get("exclude") or "").strip(),
                  partitions=(str(body.get("partitions")).strip() or None) if body.get("partitions") else None,
                  mode=mode, concurrency=_int("concurrency", 1, 1, 64), batch_size=_int("batch_size", 1, 1, 100_000),
                  backfill_id=_int("backfill_id", 0, 1, 10**12) if bid not in (None, "") else None)
        if action == "resume" and req.backfill_id is None:
            raise UserError("resume needs a backfill id")
        return req

    def command(self, job_id: int) -> str:
        """The CLI command this action equals (stored on the run, so `sqlassets runs` shows it)."""
        if self.action == "resume":
            return f"sqlassets backfill resume {self.backfill_id}  # ui job {job_id}"
        parts = ["sqlassets", self.action]
        if self.select:
            parts += ["--select", self.select]
        if self.exclude:
            parts += ["--exclude", self.exclude]
        if self.partitions:
            parts += ["--partitions", self.partitions]
        if self.action != "check" and self.mode != "missing":
            parts.append("--" + self.mode)
        if self.concurrency != 1:
            parts += ["-j", str(self.concurrency)]
        if self.batch_size != 1:
            parts += ["--batch-size", str(self.batch_size)]
        return " ".join(parts) + f"  # ui job {job_id}"


@dataclass
class Job:
    id: int
    request: ActionRequest
    command: str
    status: str = "starting"  # starting | running | success | failed | interrupted | error
    lines: list[str] = field(default_factory=list)
    run_id: int | None = None
    backfill_id: int | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    planned_assets: list[str] = field(default_factory=list)
    sql: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "action": self.request.action, "command": self.command, "status": self.status,
                "lines": self.lines[-200:], "run_id": self.run_id, "backfill_id": self.backfill_id,
                "error": self.error, "started": self.started, "finished": self.finished}


class _RecordingSession:
    """A warehouse session that notes every statement before running it (for the run page)."""

    def __init__(self, inner: Any, sink: Callable[[str], None]) -> None:
        self._inner = inner
        self._sink = sink

    def execute(self, sql: str) -> Any:
        self._sink(sql)
        return self._inner.execute(sql)

    def query(self, sql: str, params: Any = ()) -> Any:
        self._sink(sql)
        return self._inner.query(sql, params)

    def run_atomic(self, statements: Any) -> Any:
        """A unit's statements (one request on engines that batch them): each is noted, then sent."""
        for sql in statements:
            self._sink(sql)
        return self._inner.run_atomic(statements)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class RecordingAdapter:
    """Wraps the project's adapter; statements are attributed to the asset they write (their target
    relation), else to the unit the thread is running (set by the executor's `before_write`)."""

    def __init__(self, inner: Any, graph: AssetGraph, keys: list[str], job: Job) -> None:
        self._inner = inner
        self._job = job
        self._local = threading.local()
        self._lock = threading.Lock()
        self._by_ident: dict[str, str] = {}
        for k in keys:
            rel = graph[k].relation
            if rel is not None:
                self._by_ident.setdefault(rel.identifier.lower(), k)

    def before_write(self, asset: Any, keys: tuple[str, ...], attempts: int) -> None:
        self._local.current = asset.key

    def _sink(self, sql: str) -> None:
        key = None
        m = _TARGET.search(sql)
        if m:
            ident = m.group(1).replace('"', "").replace("`", "").rsplit(".", 1)[-1].lower()
            key = self._by_ident.get(ident)
        key = key or getattr(self._local, "current", None) or "(run)"
        text = sql if len(sql) <= _MAX_SQL_CHARS else sql[:_MAX_SQL_CHARS] + "\n-- ... (truncated)"
        with self._lock:
            bucket = self._job.sql.setdefault(key, [])
            if len(bucket) < _MAX_STATEMENTS:
                bucket.append(text)

    def session(self) -> Any:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = _RecordingSession(self._inner.session(), self._sink)
        return s

    def close(self) -> None:
        self._inner.close()
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Jobs:
    """Plans and runs actions for one project; at most one run at a time from this server."""

    def __init__(self, project: Project, graph: AssetGraph) -> None:
        self.project = project
        self.graph = graph
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()
        self._next = 1

    # -- plan -------------------------------------------------------------------------------------------
    def _run_request(self, req: ActionRequest, *, dry_run: bool, command: str = ""):
        from sqlassets.run.executor import RunOptions, RunRequest
        from sqlassets.run.state import open_state

        if req.action == "resume":
            with open_state(self.project, readonly=True) as st:
                bf = st.backfill(int(req.backfill_id or 0))
            if bf is None:
                raise UserError(f"no backfill {req.backfill_id}; see the backfills list")
            opts = bf["options"]
            return RunRequest(mode="missing", dry_run=dry_run, backfill=True, resume=req.backfill_id, command=command,
                              options=RunOptions(concurrency=int(opts.get("concurrency") or 1),
                                                 batch_size=int(opts.get("batch_size") or 1)))
        return RunRequest(select=[req.select] if req.select else [], exclude=[req.exclude] if req.exclude else [],
                          partitions=req.partitions, mode=req.mode, dry_run=dry_run,
                          backfill=req.action == "backfill", command=command,
                          options=RunOptions(concurrency=req.concurrency, batch_size=req.batch_size))

    def plan(self, req: ActionRequest) -> dict[str, Any]:
        """The plan the action would run, computed exactly as `--dry-run` does (nothing is written)."""
        if req.action == "check":
            return self._check_plan(req)
        from sqlassets.run.executor import execute_request

        lines: list[str] = []
        plan, _ = execute_request(self.project, self.graph, self._run_request(req, dry_run=True), echo=lines.append)
        return {"lines": lines, "total": plan.total, "assets": [a.key for a in plan.to_run],
                "empty": plan.empty, "command": req.command(0).split("  #")[0]}

    def _check_plan(self, req: ActionRequest) -> dict[str, Any]:
        from sqlassets.selection import select_keys

        keys = select_keys(self.graph, [req.select] if req.select else None, [req.exclude] if req.exclude else None)
        if not keys:
            raise UserError("the selection matches no asset")
        try:
            from sqlassets.checks.runner import CheckRunner
        except ImportError:
            raise UserError("checks are not installed: pip install 'sqlassets[checks]'") from None
        runner = CheckRunner(self.project, self.graph, keys)
        lines = [f"{k}: {c.count} check(s)" for k, c in runner.checks.items() if c] if runner else []
        if not lines:
            lines = ["no checks on the selected assets"]
        return {"lines": lines, "total": sum(c.count for c in runner.checks.values()) if runner else 0,
                "assets": [k for k, c in runner.checks.items() if c] if runner else [],
                "empty": not runner, "command": req.command(0).split("  #")[0]}

    # -- run --------------------------------------------------------------------------------------------
    def start(self, req: ActionRequest) -> Job:
        with self._lock:
            busy = [j for j in self._jobs.values() if j.finished is None]
            if busy:
                raise UserError(f"UI job {busy[0].id} ({busy[0].command.split('  #')[0]}) is still running; "
                                "wait for it to finish")
            job = Job(self._next, req, req.command(self._next))
            self._next += 1
            self._jobs[job.id] = job
        threading.Thread(target=self._work, args=(job,), name=f"sqlassets-ui-job-{job.id}", daemon=True).start()
        return job

    def get(self, job_id: int) -> Job | None:
        job = self._jobs.get(job_id)
        if job is not None and job.run_id is None and job.finished is None:
            self._find_run(job)
        return job

    def all(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: -j.id)

    def running_assets(self) -> set[str]:
        return {k for j in self._jobs.values() if j.finished is None for k in j.planned_assets}

    def sql_for(self, run_id: int) -> dict[str, list[str]] | None:
        for j in self._jobs.values():
            if j.run_id == run_id:
                return j.sql
        path = self._sql_path(run_id)
        if path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
        return None

    def _sql_path(self, run_id: int) -> Path:
        return Path(self.project.state_dir) / "ui" / "sql" / f"run-{run_id}.json"

    def _find_run(self, job: Job) -> None:
        """The state-store run this job started: ours by pid and by the command we stored on it."""
        from sqlassets.run.state import open_state

        st = open_state(self.project, history=True)
        try:
            for r in st.runs(20):
                if r.get("pid") == os.getpid() and r.get("command") == job.command:
                    job.run_id = int(r["id"])
                    job.backfill_id = r.get("backfill_id")
                    return
        finally:
            st.close()

    def _work(self, job: Job) -> None:
        job.status = "running"
        try:
            if job.request.action == "check":
                self._work_check(job)
            else:
                self._work_run(job)
        except UserError as exc:
            job.status, job.error = "error", str(exc)
            job.lines.append(f"error: {exc}")
        except Exception as exc:  # noqa: BLE001 - shown on the page, the server keeps serving
            from sqlassets.run.executor import one_line

            job.status, job.error = "error", one_line(exc)
            job.lines.append(f"error: {job.error}")
        finally:
            job.finished = time.time()
            if job.run_id is None:
                self._find_run(job)
            if job.run_id is not None and job.sql:
                path = self._sql_path(job.run_id)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_suffix(".tmp")
                    tmp.write_text(json.dumps(job.sql), encoding="utf-8")
                    os.replace(tmp, path)
                except OSError:
                    pass

    def _work_run(self, job: Job) -> None:
        from sqlassets.adapters.base import adapter_for
        from sqlassets.cli.context import CliContext
        from sqlassets.cli.run_cmds import _hook_factory
        from sqlassets.run.executor import execute_request

        req = self._run_request(job.request, dry_run=False, command=job.command)
        # the planned assets count as running for the graph's colours until the run ends
        try:
            job.planned_assets = self.plan(job.request)["assets"]
        except UserError:
            job.planned_assets = []
        obj = CliContext(project_dir=self.project.root, _project=self.project, _graph=self.graph)
        inner = adapter_for(self.project.warehouse, wait=req.options.wait)
        adapter = RecordingAdapter(inner, self.graph, job.planned_assets, job)
        try:
            _plan, summary = execute_request(self.project, self.graph, req, hook_factory=_hook_factory(obj),
                                             echo=job.lines.append, before_write=adapter.before_write,
                                             adapter=adapter)  # type: ignore[arg-type]
        finally:
            adapter.close()
        if summary is None:
            job.status = "success"
            return
        if summary.run_id is not None:
            job.run_id = summary.run_id
        job.backfill_id = summary.backfill_id
        job.status = summary.status if summary.status != "success" or not summary.failed else "failed"
        if summary.failed or summary.skipped:
            job.status = "failed"
        job.lines.append(f"run {summary.run_id} {summary.status}: {summary.done} done, {summary.failed} failed, "
                         f"{summary.skipped} skipped")

    def _work_check(self, job: Job) -> None:
        try:
            from sqlassets.checks.ondemand import run_on_demand
        except ImportError:
            raise UserError("checks are not installed: pip install 'sqlassets[checks]'") from None
        req = job.request
        outcome = run_on_demand(self.project, self.graph, select=[req.select] if req.select else (),
                                exclude=[req.exclude] if req.exclude else (), partitions=req.partitions,
                                command=job.command)
        if outcome is None:
            job.status = "success"
            job.lines.append("no checks on the selected assets")
            return
        job.run_id = outcome.run_id
        counts: dict[str, int] = {}
        for r in outcome.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        job.lines.append("checks: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))
        job.status = "failed" if outcome.blocking else "success"
