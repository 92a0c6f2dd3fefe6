"""In a real browser: a rep moves a deal with a 20 % discount to quotation, is asked for the
amount, the deal waits for approval, the manager approves it from the queue, the rep sees it."""

from __future__ import annotations

import re

import pytest

from tests.browser.conftest import BrowserPage, LiveServer, add_deal, sign_in

pytestmark = pytest.mark.browser


def test_discount_approval_end_to_end(pages: BrowserPage, live_server: LiveServer) -> None:
    deal = add_deal(
        live_server,
        "needs_confirmed",
        {
            "customer": "Gree Electric",
            "potential": "800000",
            "discount": "0.2",
            "approval_note": "three-year volume commitment",
        },
    )
    rep = pages.new()
    sign_in(rep, "li.wei")
    rep.wait_for_url(f"{live_server.url}/")
    rep.goto("/pipelines/b2b")
    card = rep.locator(f'article[data-record="{deal}"]')
    assert "Gree Electric" in card.inner_text()
    card.locator("select[name=to]").select_option("quotation")
    card.get_by_role("button", name="Move").click()
    # asked for exactly the missing amount
    form = rep.get_by_test_id("move-form")
    form.wait_for()
    assert form.locator("input[name^=field_]").count() == 1
    rep.get_by_label("Amount").fill("250000")
    form.get_by_role("button", name="Move").click()
    rep.wait_for_url(re.compile(r"/pipelines/b2b"))
    assert "Sent for approval" in rep.locator(".messages").inner_text()
    assert "waiting for approval" in rep.locator(f'article[data-record="{deal}"]').inner_text()

    manager = pages.new()
    sign_in(manager, "wang.fang")
    manager.wait_for_url(f"{live_server.url}/")
    manager.goto("/approvals")
    item = manager.get_by_test_id("approval")
    assert "Gree Electric" in item.inner_text()
    item.get_by_label("Comment").fill("OK for this volume")
    item.get_by_role("button", name="Approve").click()
    manager.wait_for_url(re.compile(r"/approvals$"))
    assert "Approved" in manager.locator(".messages").inner_text()

    rep.goto("/pipelines/b2b")
    column = rep.locator('section[data-stage="quotation"]')
    assert "Gree Electric" in column.inner_text()
    assert "waiting for approval" not in column.inner_text()
    assert pages.console_errors == []
