"""The HTML report in a real headless Debian chromium (Playwright): renders offline, search, click, path.

Skips locally with a reason when /usr/bin/chromium is missing; under CI=true that is a failure
(.ci/run installs chromium). Playwright's own browser downloads are never used.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import copy_parsed, invoke

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def report(shop_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_parsed(shop_root, tmp_path_factory.mktemp("report") / "shop")
    out = root / "lineage.html"
    r = invoke(["--project", str(root), "lineage", "--report", str(out)])
    assert r.exit_code == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def page(report: Path, tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but /usr/bin/chromium is missing: apt-get install chromium (.ci/run does)")
        pytest.skip("Debian chromium not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    user_data = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(user_data), executable_path=str(CHROMIUM), headless=True,
                                                   args=ARGS)
        requests: list[str] = []
        errors: list[str] = []
        pg = ctx.new_page()
        pg.on("request", lambda r: requests.append(r.url))
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.goto(report.as_uri())
        pg.wait_for_function("window.lineageReport && window.lineageReport.ready", timeout=20000)
        pg.requests, pg.errors = requests, errors
        yield pg
        ctx.close()


def test_renders_offline(page) -> None:
    assert page.title().startswith("Column lineage")
    # opens on the asset-level graph, not a blank canvas
    assert page.evaluate("window.assetGraph.cy.nodes().length") >= 15
    assert page.is_visible("#acy")
    page.click("#tab-columns")
    assets = page.locator("#assets li.asset")
    assert assets.count() >= 15
    assert "fct_orders" in page.inner_text("#assets")
    assert "columns" in page.inner_text("#summary")
    # one file, nothing fetched: every request is the report itself
    assert all(u.startswith("file://") for u in page.requests), page.requests
    assert not page.errors, page.errors


def test_search_finds_a_column_and_click_shows_its_path(page) -> None:
    page.click("#tab-columns")
    page.fill("#search", "revenue")
    hit = page.locator("#results li[data-nid]", has_text="customer_revenue.revenue")
    hit.first.wait_for()
    hit.first.click()
    assert page.inner_text("#focus-name") == "customer_revenue.revenue"
    upstream = page.inner_text("#details ul.upstream")
    assert "fct_orders.amount" in upstream and "raw.orders.amount" in upstream
    assert "ltv_segments.segment" in page.inner_text("#details ul.downstream")
    n_nodes = page.evaluate("window.lineageReport.cy.nodes('.col').length")
    assert n_nodes >= 5
    # columns sit inside their asset's box
    parent = page.evaluate("window.lineageReport.cy.nodes('.col').filter(n => n.data('name') === 'fct_orders.amount')"
                           ".first().parent().data('label')")
    assert parent == "fct_orders"
    # click the source column's node in the graph: its whole path to the focus is highlighted
    pos = page.evaluate("""() => {
        const n = window.lineageReport.cy.nodes('.col').filter(x => x.data('name') === 'raw.orders.amount').first();
        window.lineageReport.cy.center(n);  // pan it into view, as a user would
        const p = n.renderedPosition(); return [p.x, p.y]; }""")
    box = page.locator("#cy").bounding_box()
    page.mouse.click(box["x"] + pos[0], box["y"] + pos[1])
    path = " ".join(page.inner_text("#path").split())
    assert path == "path: raw.orders.amount \u2192 stg_orders.amount \u2192 fct_orders.amount \u2192 customer_revenue.revenue"
    on_path = page.evaluate("window.lineageReport.cy.nodes('.onpath').map(n => n.data('name'))")
    assert sorted(on_path) == sorted(["raw.orders.amount", "stg_orders.amount", "fct_orders.amount",
                                      "customer_revenue.revenue"])
    assert not page.errors, page.errors


def test_asset_browser_and_unresolved_reason(page) -> None:
    page.click("#tab-columns")
    page.locator("#assets li.asset", has_text="calendar_days").first.click()
    page.locator("#assets li.col[data-nid]", has_text="day").first.click()
    assert "table function" in page.inner_text("#details")


def test_refits_when_the_window_is_resized(page) -> None:
    page.click("#tab-assets")
    page.set_viewport_size({"width": 1400, "height": 900})
    page.wait_for_timeout(300)
    wide = page.evaluate("window.assetGraph.cy.width()")
    page.set_viewport_size({"width": 1000, "height": 700})
    page.wait_for_timeout(300)
    narrow = page.evaluate("window.assetGraph.cy.width()")
    assert narrow < wide
    # after the refit every node is inside the viewport
    inside = page.evaluate("""() => { const cy = window.assetGraph.cy, w = cy.width(), h = cy.height();
        return cy.nodes().every(n => { const p = n.renderedPosition(); return p.x >= 0 && p.x <= w && p.y >= 0 && p.y <= h; }); }""")
    assert inside
