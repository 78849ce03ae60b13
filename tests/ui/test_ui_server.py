"""`sqlassets ui` over HTTP: every page answers from a real server on the built sample project; the
safety rules (loopback by default, token elsewhere, Host check, CSRF on actions, --read-only, nothing
but static files served) hold. Browser behaviour is in test_ui_browser.py."""

from __future__ import annotations

import json
import time

from ui_support import SECRET, start_server, stop_server, ui_root, ui_server  # noqa: F401 (fixtures)


def _csrf(server) -> str:
    status, _, body = server.get("/graph")
    assert status == 200
    text = body.decode()
    return text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]


def test_binds_loopback_and_pages_answer(ui_server) -> None:  # noqa: F811
    assert ui_server.url.startswith("http://127.0.0.1:")
    assert "token" not in ui_server.first_line
    for path in ("/graph", "/lineage", "/runs", "/runs/1", "/gate", "/assets/fct_daily_customer_events",
                 "/assets/raw.events", "/static/vendor/cytoscape.min.js"):
        status, headers, body = ui_server.get(path)
        assert status == 200, (path, body[:300])
        assert "default-src 'self'" in headers["content-security-policy"]
    status, _, _ = ui_server.get("/assets/no_such_asset")
    assert status == 404


def test_graph_api_has_states_groups_and_edges(ui_server) -> None:  # noqa: F811
    _, _, body = ui_server.get("/api/graph")
    data = json.loads(body)
    nodes = {n["k"]: n for n in data["nodes"]}
    assert nodes["stg_events"]["s"] == "done"                      # views built by the first materialize
    fct = nodes["fct_daily_customer_events"]
    assert fct["p"][0] == 7 and fct["p"][1] > 7 and fct["s"] == "missing"   # a week of the year is done
    assert nodes["raw.events"]["s"] == "observed"
    assert data["groups"] and data["owners"]
    idx = {n["k"]: i for i, n in enumerate(data["nodes"])}
    assert [idx["stg_events"], idx["fct_daily_customer_events"]] in data["edges"]
    _, _, body = ui_server.get("/api/select?q=%2Bfct_daily_customer_events")
    assert "stg_events" in json.loads(body)["keys"]
    status, _, body = ui_server.get("/api/select?q=nope_not_there")
    assert status == 400 and "nope_not_there" in json.loads(body)["error"]


def test_asset_page_shows_docs_columns_partitions_history(ui_server) -> None:  # noqa: F811
    _, _, body = ui_server.get("/assets/fct_daily_customer_events")
    html = body.decode()
    assert "One row per customer per day" in html               # description
    assert "decimal(14,2)" in html and "Purchases in EUR after discounts." in html   # column type + description
    assert "not_null" in html and "column_values_to_not_be_null" in html            # its checks (dbt + GX)
    assert 'class="calendar"' in html and "January 2024" in html                     # daily -> calendar
    assert 'title="2024-01-03: done"' in html and 'title="2024-01-20: missing"' in html
    assert "/runs/1" in html                                                         # history links the run
    assert "revenue-analytics@shop.example" in html


def test_runs_and_run_pages(ui_server) -> None:  # noqa: F811
    _, _, body = ui_server.get("/runs")
    assert "materialize" in body.decode()
    _, _, body = ui_server.get("/api/runs/1")
    run = json.loads(body)
    assert run["run"]["status"] == "success"
    fct = next(a for a in run["assets"] if a["asset"] == "fct_daily_customer_events")
    assert fct["counts"] == {"done": 7} and fct["rows"] > 0
    _, _, body = ui_server.get("/api/compiled/fct_daily_customer_events")
    assert "select" in json.loads(body)["sql"].lower()


def test_actions_need_csrf_and_same_origin(ui_server) -> None:  # noqa: F811
    body = {"action": "materialize", "select": "stg_events"}
    status, _, text = ui_server.post("/api/plan", body)
    assert status == 403 and b"CSRF" in text
    token = _csrf(ui_server)
    status, _, text = ui_server.post("/api/plan", body, {"X-CSRF-Token": token, "Origin": "http://evil.example"})
    assert status == 403
    status, _, text = ui_server.post("/api/plan", body, {"X-CSRF-Token": token})
    assert status == 200, text
    plan = json.loads(text)
    assert plan["command"] == "sqlassets materialize --select stg_events"
    status, _, text = ui_server.get("/api/plan")
    assert status == 405
    status, _, text = ui_server.post("/api/plan", {"action": "drop_tables"}, {"X-CSRF-Token": token})
    assert status == 400 and b"unknown action" in text


def test_dns_rebinding_host_is_refused(ui_server) -> None:  # noqa: F811
    status, _, _ = ui_server.get("/graph", {"Host": "attacker.example"})
    assert status == 400


def test_no_secret_or_project_file_is_served(ui_server) -> None:  # noqa: F811
    for path in ("/static/../profiles.yml", "/static/%2e%2e/%2e%2e/profiles.yml", "/profiles.yml",
                 "/static/..%2fprofiles.yml", "/assets/../profiles.yml"):
        status, _, body = ui_server.get(path)
        assert status in (400, 404), path
        assert SECRET.encode() not in body
    for path in ("/graph", "/api/graph", "/lineage", "/api/lineage", "/runs", "/api/runs/1",
                 "/assets/fct_daily_customer_events", "/gate"):
        _, _, body = ui_server.get(path)
        assert SECRET.encode() not in body and b"profiles.yml" not in body, path


def test_read_only_refuses_actions(ui_root) -> None:  # noqa: F811
    server = start_server(ui_root, "--read-only")
    try:
        status, _, body = server.get("/graph")
        html = body.decode()
        assert 'content="true"' in html and 'data-action="backfill"' not in html
        token = html.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        status, _, body = server.post("/api/jobs", {"action": "materialize"}, {"X-CSRF-Token": token})
        assert status == 403 and b"read-only" in body
    finally:
        stop_server(server)


def test_other_host_needs_the_token(ui_root) -> None:  # noqa: F811
    server = start_server(ui_root, "--host", "0.0.0.0")
    try:
        assert "?token=" in server.first_line
        token = server.first_line.split("?token=", 1)[1].split()[0]
        base = server.url.split("?")[0].replace("0.0.0.0", "127.0.0.1")
        server.url = base
        status, _, body = server.get("/graph")
        assert status == 401 and b"token" in body
        status, headers, _ = server.get(f"/graph?token={token}")
        assert status == 303 and headers["location"] == "/graph"
        cookie = headers["set-cookie"].split(";", 1)[0]
        assert "HttpOnly" in headers["set-cookie"] and "SameSite=Strict" in headers["set-cookie"]
        status, _, _ = server.get("/graph", {"Cookie": cookie})
        assert status == 200
        status, _, _ = server.get("/graph", {"Cookie": "sqlassets_ui_token=wrong"})
        assert status == 401
    finally:
        stop_server(server)
    env_token = "a-token-from-the-environment-123"
    server = start_server(ui_root, "--host", "0.0.0.0", env={"SQLASSETS_UI_TOKEN": env_token})
    try:
        assert env_token not in server.first_line  # never echoed
        server.url = server.url.replace("0.0.0.0", "127.0.0.1")
        status, _, _ = server.get("/api/graph", {"Authorization": f"Bearer {env_token}"})
        assert status == 200
    finally:
        stop_server(server)


def test_backfill_through_the_api_uses_the_cli_path(ui_server) -> None:  # noqa: F811
    token = _csrf(ui_server)
    h = {"X-CSRF-Token": token}
    body = {"action": "backfill", "select": "fct_daily_customer_events", "partitions": "2024-01-08..2024-01-10"}
    status, _, text = ui_server.post("/api/plan", body, h)
    assert status == 200, text
    plan = json.loads(text)
    assert plan["total"] == 3 and "fct_daily_customer_events" in plan["assets"]
    status, _, text = ui_server.post("/api/jobs", body, h)
    assert status == 200, text
    job = json.loads(text)
    deadline = time.time() + 120
    while time.time() < deadline:
        job = json.loads(ui_server.get(f"/api/jobs/{job['id']}")[2])
        if job["finished"]:
            break
        time.sleep(0.3)
    assert job["status"] == "success", job
    assert job["run_id"] and job["backfill_id"]
    run = json.loads(ui_server.get(f"/api/runs/{job['run_id']}")[2])
    assert run["run"]["kind"] == "backfill" and run["run"]["command"].startswith("sqlassets backfill")
    fct = next(a for a in run["assets"] if a["asset"] == "fct_daily_customer_events")
    assert sorted(s["partition"] for s in fct["steps"]) == ["2024-01-08", "2024-01-09", "2024-01-10"]
    assert any("insert" in q.lower() or "create" in q.lower() for q in fct["sql"])   # the SQL sent
    # resume goes through the same path: a finished backfill has nothing left to run
    status, _, text = ui_server.post("/api/plan", {"action": "resume", "backfill_id": job["backfill_id"]}, h)
    assert status == 200 and json.loads(text)["empty"] is True, text
    status, _, text = ui_server.post("/api/plan", {"action": "resume", "backfill_id": 999}, h)
    assert status == 400 and b"no backfill 999" in text
    # checks: the plan lists the checks the selection has
    status, _, text = ui_server.post("/api/plan", {"action": "check", "select": "fct_daily_customer_events"}, h)
    assert status == 200 and "fct_daily_customer_events:" in json.loads(text)["lines"][0], text
    # the CLI sees the UI's backfill like its own
    from conftest import invoke

    res = invoke(["--project", str(ui_server.root), "backfill", "list", "-o", "json"])
    bfs = json.loads(res.stdout)
    assert any(b["id"] == job["backfill_id"] and b["done"] == 3 for b in bfs)
