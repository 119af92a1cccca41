"""The dashboard's charts draw in a real browser from the vendored Chart.js (no CDN)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS_DIR
from tests.tasks.helpers import create_task, decide, generate_all, submit

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHARTS = ("chart-strengths", "chart-bias", "chart-scores", "chart-throughput")


def test_the_dashboard_draws_its_charts(
    log_in, ready_repository, project, contractor, reviewer, admin_user
):
    for _ in range(2):
        task = submit(
            generate_all(
                create_task(contractor=contractor, project=project, repository=ready_repository)
            )
        )
        decide(task, reviewer=reviewer)
    page = log_in(admin_user)
    failed: list[str] = []
    page.on("requestfailed", lambda request: failed.append(request.url))
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard").click()
    expect(page.get_by_role("heading", name="Quality dashboard")).to_be_visible()
    expect(page.locator("#strengths tbody tr[data-model]")).to_have_count(2)
    # The table is HTML, there at once; Chart.js and dashboard.js are deferred scripts that
    # may still be running: wait until every chart exists before looking at them.
    page.wait_for_function(
        "(ids) => window.Chart && ids.every((id) => Chart.getChart(id))", arg=list(CHARTS)
    )
    # Every canvas holds a Chart.js chart with data, drawn to a real size.
    for chart_id in CHARTS:
        drawn = page.evaluate(
            """(id) => {
                const chart = Chart.getChart(id);
                return chart ? {points: chart.data.datasets.reduce((n, d) => n + d.data.length, 0),
                                width: chart.width} : null;
            }""",
            chart_id,
        )
        assert drawn is not None, chart_id
        assert drawn["points"] > 0 and drawn["width"] > 100, (chart_id, drawn)
    assert failed == []
    assert all(
        src.startswith("/static/")
        for src in page.eval_on_selector_all(
            "script[src]", "els => els.map(e => e.getAttribute('src'))"
        )
    )
    page.screenshot(path=str(ARTIFACTS_DIR / "dashboard.png"), full_page=True)
