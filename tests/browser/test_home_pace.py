"""In a real browser: a manager's pace table shows one period at a time when asked (radio
buttons and the stylesheet, no script), so a phone's list of cards is a third as long."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import BrowserPage, LiveServer, add_deal, sign_in

pytestmark = pytest.mark.browser


def test_the_pace_table_shows_the_period_chosen(
    pages: BrowserPage, live_server: LiveServer
) -> None:
    add_deal(live_server, "quotation", {"customer": "Midea Group"})  # the stock pack, its plan
    phone = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(phone, "wang.fang")
    phone.wait_for_url(f"{live_server.url}/")
    rows = phone.locator("table.pace tbody tr")
    picker = phone.get_by_test_id("period-pick").locator("label")
    periods = picker.all_inner_texts()[1:]  # after "All": this month, quarter and year
    assert len(periods) == 3
    total = rows.count()
    assert total == 3 * len(set(rows.evaluate_all("rs => rs.map(r => r.dataset.who)")))
    for label in periods:
        picker.filter(has_text=label).tap()
        visible = phone.locator("table.pace tbody tr:visible")
        expect(visible).to_have_count(total // 3)
        assert set(visible.evaluate_all("rs => rs.map(r => r.dataset.period)")) == {label}
    picker.first.tap()  # all of them again
    expect(phone.locator("table.pace tbody tr:visible")).to_have_count(total)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    assert pages.console_errors == []
