"""`sqlassets ui` in a real headless Debian chromium (Playwright): every page on the built sample project,
a backfill launched from the UI and watched to the end, the lineage view highlighting a column's path.

Screenshots go to test-artifacts/ui/ (gitignored). Skips locally with a reason when /usr/bin/chromium is
missing; under CI=true that is a failure (.ci/run installs chromium). Playwright's own browser downloads
are never used.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ui_support import ARTIFACTS, ui_root, ui_server  # noqa: F401 (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but /usr/bin/chromium is missing: apt-get install chromium (.ci/run does)")
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, ui_server):  # noqa: F811
    ctx = browser.new_context(viewport={"width": 1400, "height": 880})
    pg = ctx.new_page()
    errors: list[str] = []
    requests: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("request", lambda r: requests.append(r.url))
    pg.errors, pg.requests, pg.base = errors, requests, ui_server.url.rstrip("/")
    yield pg
    assert not pg.errors, pg.errors
    # works with no network: every request goes to the UI server itself
    assert all(u.startswith(pg.base) or u.startswith("data:") for u in pg.requests), pg.requests
    ctx.close()


def shot(pg, name: str) -> None:
    pg.wait_for_timeout(400)
    pg.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_graph_page_filters_and_selection(page) -> None:
    page.goto(page.base + "/graph")
    page.wait_for_function("() => window.assetGraphReady === true")
    assert page.evaluate("window.assetGraph.cy.nodes().length") >= 15
    colors = page.evaluate("window.assetGraph.cy.nodes().map(n => n.data('color'))")
    assert "#2da44e" in colors and "#afb8c1" in colors          # done and missing assets
    shot(page, "graph")
    page.fill("#select", "+fct_daily_customer_events")
    page.press("#select", "Enter")
    page.wait_for_function("() => document.getElementById('select-msg').textContent.includes('selected')")
    keys = page.evaluate("window.assetGraph.cy.nodes().map(n => window.assetGraph.nodes[n.data('idx')].k)")
    assert sorted(keys) == ["fct_daily_customer_events", "raw.events", "stg_events"]
    page.fill("#select", "")
    page.press("#select", "Enter")
    page.select_option("#group", index=1)
    n_group = page.evaluate("window.assetGraph.cy.nodes().length")
    assert 0 < n_group < 16
    page.select_option("#group", index=0)
    page.select_option("#collapse", "folder")
    labels = page.evaluate("window.assetGraph.cy.nodes().map(n => n.data('name'))")
    assert "models/marts" in labels
    shot(page, "graph-collapsed")
    page.select_option("#collapse", "none")
    # a click shows the asset; its neighbourhood view keeps only nearby assets
    page.evaluate("window.assetGraph.cy.nodes().filter(n => window.assetGraph.nodes[n.data('idx')].k === 'stg_events').emit('tap')")
    assert "stg_events" in page.inner_text("#node-info")
    page.click("#nb")
    n_nb = page.evaluate("window.assetGraph.cy.nodes().length")
    assert 3 <= n_nb < 16
    shot(page, "graph-neighbourhood")


def test_asset_page(page) -> None:
    page.goto(page.base + "/assets/fct_daily_customer_events")
    assert "One row per customer per day" in page.inner_text(".desc")
    assert page.locator(".calendar .month").count() >= 1
    assert page.locator(".calendar td.st-done").count() >= 7
    page.click("button.tab[data-tab='compiled']")
    page.wait_for_function("() => !document.getElementById('code-compiled').textContent.includes('compiling')")
    assert "select" in page.inner_text("#code-compiled").lower()
    shot(page, "asset")


def test_backfill_from_the_ui_runs_to_the_end(page) -> None:
    page.goto(page.base + "/assets/fct_daily_customer_events")
    page.fill("#act-partitions", "2024-01-11..2024-01-13")
    page.click("button[data-action='backfill']")
    page.wait_for_function("() => document.getElementById('modal-plan').textContent.includes('fct_daily_customer_events')")
    plan = page.inner_text("#modal-plan")
    assert "sqlassets backfill --select fct_daily_customer_events --partitions 2024-01-11..2024-01-13" in plan
    shot(page, "backfill-plan")
    page.click("#modal-ok")
    page.wait_for_url("**/runs/*", timeout=60000)
    # the page refreshes itself while the run goes on; wait for the run to end, whatever its outcome
    page.wait_for_function("() => document.getElementById('run-status').textContent.trim() !== 'running'",
                           timeout=300000)
    text = page.inner_text("#run-body")
    assert page.inner_text("#run-status").strip() == "success", text
    assert "fct_daily_customer_events" in text and "3 done" in text
    page.locator("details.sql summary").first.click()
    assert "2024-01-11" in page.inner_text("details.sql")      # the SQL sent for the window
    shot(page, "run")
    page.goto(page.base + "/runs")
    assert "backfill" in page.inner_text("#runs")
    shot(page, "runs")


def test_lineage_view_highlights_a_columns_path(page) -> None:
    page.goto(page.base + "/lineage#customer_lifetime_value.net_revenue")
    page.wait_for_function("() => window.lineageReport && window.lineageReport.state.focus !== null")
    assert page.inner_text("#focus-name") == "customer_lifetime_value.net_revenue"
    details = page.inner_text("#details")
    assert "fct_daily_customer_events.net_revenue" in details, details
    # columns are inside their asset's node
    parent = page.evaluate("window.lineageReport.cy.nodes('.col').filter(n => n.data('name') === "
                           "'fct_daily_customer_events.net_revenue').first().parent().data('label')")
    assert parent == "fct_daily_customer_events"
    ups = page.evaluate("window.lineageReport.cy.nodes('.col.up').length")
    assert ups >= 3
    page.locator("#details ul.upstream li", has_text="stg_events.signed_amount").first.click()
    path = " ".join(page.inner_text("#path").split())
    assert path.startswith("path: stg_events.signed_amount") and path.endswith("customer_lifetime_value.net_revenue")
    on_path = page.evaluate("window.lineageReport.cy.nodes('.onpath').map(n => n.data('name'))")
    assert "stg_events.signed_amount" in on_path and "customer_lifetime_value.net_revenue" in on_path
    shot(page, "lineage-path")
    # filter edges off: the filter-only upstream columns disappear
    before = page.evaluate("window.lineageReport.cy.edges('.filter').length")
    assert before > 0
    page.uncheck("#show-filter")
    assert page.evaluate("window.lineageReport.cy.edges('.filter').length") == 0
    page.fill("#search", "vip_customers.net")
    page.locator("#results li[data-nid]").first.click()
    assert page.inner_text("#focus-name").startswith("vip_customers.net")
    shot(page, "lineage-search")


def test_gate_page_renders_the_gate_json(page, ui_server) -> None:  # noqa: F811
    gate = {"changed": [{"asset": "stg_events", "change": "modified", "downstream": ["fct_daily_customer_events"]}],
            "breaking": [{"asset": "stg_events", "column": "amount", "change": "removed",
                          "downstream": ["fct_daily_customer_events"]}],
            "build": {"done": 3, "failed": 0, "skipped": 0, "failures": []},
            "results": [{"asset": "stg_events", "check": "not_null", "status": "fail", "severity": "critical",
                         "blocking": True, "message": "2 failing rows"}]}
    path = ui_server.root / ".sqlassets" / "ci" / "gate.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(gate))
    page.goto(page.base + "/gate")
    verdict = page.inner_text(".verdict")
    assert "FAIL" in verdict
    text = page.inner_text("#gate-view")
    assert "removed" in text and "2 failing rows" in text
    shot(page, "gate")
