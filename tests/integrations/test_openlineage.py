"""OpenLineage events from real runs on a real DuckDB file, validated against the spec's JSON schemas.

The schemas in openlineage_spec/ are the OpenLineage project's own (Apache-2.0, see its README); every
facet we emit must have one there, so a facet can never go unvalidated.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from run_support import make_project

from sqlassets.loaders import load_graph
from sqlassets.project import load_project
from sqlassets.run.events import EventBus, RunEvent
from sqlassets.run.executor import RunOptions, RunRequest, execute_request

if os.environ.get("CI") == "true":
    import jsonschema  # under CI a missing extra is a failure, not a skip
    import openlineage.client  # noqa: F401
else:
    pytest.importorskip("openlineage.client", reason="pip install 'sqlassets[openlineage]'")
    jsonschema = pytest.importorskip("jsonschema")

SPEC = Path(__file__).resolve().parent / "openlineage_spec"


def _validator_factory() -> Any:
    from referencing import Registry, Resource

    core = json.loads((SPEC / "OpenLineage.json").read_text())
    facets = {p.stem: json.loads(p.read_text()) for p in (SPEC / "facets").glob("*.json")}
    registry = Registry().with_resources(
        [(core["$id"], Resource.from_contents(core))]
        + [(f["$id"], Resource.from_contents(f)) for f in facets.values()])
    core_validator = jsonschema.Draft202012Validator(core, registry=registry,
                                                     format_checker=jsonschema.FormatChecker())

    def validate(event: dict[str, Any]) -> None:
        core_validator.validate(event)
        facet_groups = [event["run"].get("facets", {}), event["job"].get("facets", {})]
        for ds in event.get("inputs", []) + event.get("outputs", []):
            facet_groups += [ds.get("facets", {}), ds.get("inputFacets", {}), ds.get("outputFacets", {})]
        for group in facet_groups:
            for name, facet in group.items():
                url = facet["_schemaURL"]
                base, _, pointer = url.partition("#")
                stem = base.rpartition("/")[2].removesuffix(".json")
                assert stem in facets, f"facet {name} ({url}) has no vendored schema to validate against"
                schema = {"$ref": f"{facets[stem]['$id']}#{pointer}"}
                jsonschema.Draft202012Validator(schema, registry=registry,
                                                format_checker=jsonschema.FormatChecker()).validate(facet)

    return validate


validate_event = _validator_factory()


def _configure(root: Path, transport: str) -> None:
    with (root / "sqlassets.yml").open("a") as f:
        f.write(f"openlineage:\n  namespace: test-ns\n  transport: {transport}\n")


def _run(root: Path, **kw: Any) -> Any:
    project = load_project(root)
    graph = load_graph(project)
    lines: list[str] = []
    opts = RunOptions(**{k: kw.pop(k) for k in list(kw) if k in RunOptions.__dataclass_fields__})
    _, summary = execute_request(project, graph, RunRequest(options=opts, **kw), echo=lines.append)
    return summary, lines


def _events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_file_transport_writes_valid_start_complete_fail_per_partition(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", days=4, end="2024-01-05", bad_day=2, monthly=False)
    _configure(root, "{type: file, log_file_path: lineage/events.jsonl}")
    summary, _ = _run(root, batch_size=2)
    assert summary.failed == 2  # the batch 2024-01-03..04 holds the bad day
    events = _events(root / "lineage" / "events.jsonl")
    for e in events:
        validate_event(e)
    daily = [e for e in events if e["job"]["name"] == "daily"]
    by_part: dict[str, list[str]] = {}
    for e in daily:
        part = next(t["value"] for t in e["run"]["facets"]["tags"]["tags"] if t["key"] == "sqlassets.partition")
        by_part.setdefault(part, []).append(e["eventType"])
    assert by_part == {"2024-01-01": ["START", "COMPLETE"], "2024-01-02": ["START", "COMPLETE"],
                       "2024-01-03": ["START", "FAIL"], "2024-01-04": ["START", "FAIL"]}
    # START and its end share one run id; each partition has its own.
    run_ids = {e["run"]["runId"] for e in daily}
    assert len(run_ids) == 4
    fail = next(e for e in daily if e["eventType"] == "FAIL")
    assert "oops" in fail["run"]["facets"]["errorMessage"]["message"]
    done = next(e for e in daily if e["eventType"] == "COMPLETE")
    assert done["run"]["facets"]["nominalTime"]["nominalStartTime"].startswith("2024-01-01T00:00:00")
    out = done["outputs"][0]
    assert out["name"].endswith("daily") and out["namespace"].startswith("duckdb://")
    assert [f["name"] for f in out["facets"]["schema"]["fields"]] == ["day", "customer_id", "net", "n"]
    cl = out["facets"]["columnLineage"]
    net = cl["fields"]["net"]["inputFields"]
    assert [(f["name"].split(".")[-1], f["field"], f["transformations"][0]["subtype"]) for f in net] == \
        [("events", "amount", "AGGREGATION")]
    assert cl["fields"]["day"]["inputFields"][0]["field"] == "event_ts"
    # the WHERE on event_ts decides which rows exist: an indirect, dataset-level filter input
    assert any(f["field"] == "event_ts" and f["transformations"][0]["type"] == "INDIRECT" for f in cl["dataset"])
    assert done["inputs"][0]["name"].endswith("events")
    rows = [e["outputs"][0].get("outputFacets", {}).get("outputStatistics", {}).get("rowCount") for e in daily
            if e["eventType"] == "COMPLETE"]
    assert rows[0] and rows[0] > 0
    # the run itself: START then FAIL, and every unit names it as parent
    parent = [e for e in events if e["job"]["name"] == "p.run"]
    assert [e["eventType"] for e in parent] == ["START", "FAIL"]
    assert {e["run"]["facets"]["parent"]["run"]["runId"] for e in daily} == {parent[0]["run"]["runId"]}
    # the downstream summary was skipped: it never started, so it has no events
    assert not [e for e in events if e["job"]["name"] == "summary"]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, Any]]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, json.loads(body)))
        self.send_response(201)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_http_transport_posts_marquez_style_events(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False)
        _configure(root, f"{{type: http, url: 'http://127.0.0.1:{server.server_port}', endpoint: api/v1/lineage}}")
        summary, _ = _run(root)
        assert summary.status == "success"
    finally:
        server.shutdown()
        server.server_close()
    assert {p for p, _ in _Receiver.received} == {"/api/v1/lineage"}
    events = [e for _, e in _Receiver.received]
    for e in events:
        validate_event(e)
    kinds = [(e["job"]["name"], e["eventType"]) for e in events]
    assert kinds.count(("daily", "COMPLETE")) == 2 and kinds.count(("summary", "COMPLETE")) == 1
    summary_done = next(e for e in events if e["job"]["name"] == "summary" and e["eventType"] == "COMPLETE")
    assert "nominalTime" not in summary_done["run"]["facets"]  # unpartitioned
    assert "select customer_id" in summary_done["job"]["facets"]["sql"]["query"].lower()


def test_bad_openlineage_config_is_a_one_line_error_before_anything_runs(tmp_path: Path) -> None:
    from conftest import invoke

    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False)
    _configure(root, "{type: file}")
    res = invoke(["--project", str(root), "materialize"])
    assert res.exit_code == 2
    assert res.stderr.startswith("error: ") and "log_file_path" in res.stderr and "sqlassets.yml" in res.stderr
    from sqlassets.run.state import StateStore

    with StateStore(root / ".sqlassets") as st:
        assert st.runs() == []  # refused before a run started: nothing recorded, nothing written


def test_a_failing_listener_never_fails_the_run(tmp_path: Path) -> None:
    class Broken:
        def on_event(self, event: RunEvent) -> None:
            raise RuntimeError("listener down")

    seen: list[str] = []

    class Recorder:
        def on_event(self, event: RunEvent) -> None:
            seen.append(event.kind)

    root = make_project(tmp_path / "p", days=2, end="2024-01-03", monthly=False, summary=False)
    project = load_project(root)
    lines: list[str] = []
    _, summary = execute_request(project, load_graph(project), RunRequest(), echo=lines.append,
                                 listeners=[Broken(), Recorder()])
    assert summary.status == "success" and summary.done == 2
    assert sum("listener down" in line for line in lines) == 1
    assert seen == ["run_started", "unit_started", "unit_finished", "unit_started", "unit_finished",
                    "run_finished"]
    assert not EventBus([])
