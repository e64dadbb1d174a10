"""The report in a real headless Chromium: every chart drawn with data, tables that sort, no
error on the console, a screenshot. ``BOT_REPORT_SCREENSHOT=docs/report.png`` also saves the
screenshot there (how the README's picture is made)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backtest.html_report import write_report
from tests.report.browser import Browser

CHARTS = """[...document.querySelectorAll('.chart')].map((d) => ({
  id: d.id, points: (d._fullData || []).map((t) => (t.x || t.z || []).length),
  drawn: d.querySelectorAll('svg path, svg image').length}))"""
PRICES = """(() => {
  const tables = [...document.querySelectorAll('table.sortable')];
  const table = tables.find((t) => t.tHead.textContent.includes('realised P&L'));
  const th = [...table.tHead.rows[0].cells].find((c) => c.textContent === 'price');
  th.click();
  const up = [...table.tBodies[0].rows].map((r) => parseFloat(r.cells[th.cellIndex].dataset.v));
  th.click();
  const down = [...table.tBodies[0].rows].map((r) => parseFloat(r.cells[th.cellIndex].dataset.v));
  return {up, down, order: th.dataset.order};
})()"""


@pytest.mark.slow
def test_the_report_draws_in_a_real_browser(stored, tmp_path):
    page = write_report([stored.model, stored.momentum], tmp_path / "report.html",
                        store=stored.store)  # fmt: skip
    browser = Browser(tmp_path / "profile")
    try:
        browser.call("Page.navigate", session=True, url=page.as_uri())
        assert browser.wait_for("document.body && document.body.dataset.charts") == "drawn"
        charts = browser.evaluate(CHARTS)
        assert len(charts) == 2 + 6 + 3  # overview; weights, P&L, costs (+ model: 3) per run
        for chart in charts:
            assert chart["points"] and all(n > 0 for n in chart["points"]), chart
            assert chart["drawn"] > 0, chart
        sorted_ = browser.evaluate(PRICES)
        assert len(sorted_["up"]) == len(stored.model.trades) > 1
        assert sorted_["up"] == sorted(sorted_["up"]) != sorted_["down"]
        assert sorted_["down"] == sorted(sorted_["up"], reverse=True)
        assert sorted_["order"] == "desc"
        browser.evaluate("document.querySelectorAll('h2')[1].scrollIntoView()")  # the charts
        shot = browser.screenshot(tmp_path / "report.png")
        assert browser.errors() == []
    finally:
        browser.close()
    png = shot.read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    if target := os.environ.get("BOT_REPORT_SCREENSHOT"):
        shutil.copyfile(shot, Path(target))
