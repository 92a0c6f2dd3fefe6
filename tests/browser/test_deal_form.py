"""In a real browser: a rep fills the stock deal form (a field appears, a grade computes as
they type), is refused with the message next to the field and their input kept, saves, and
finds the deal; their manager sees it, another rep gets 403. On a phone, and without JS."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from quotaflow import db
from quotaflow.packs.install import install_pack
from quotaflow.packs.validate import load_pack
from quotaflow.resources import stock_pack_dir
from tests.browser.conftest import BrowserPage, LiveServer, sign_in

pytestmark = pytest.mark.browser


@pytest.fixture
def stock_pack(live_server: LiveServer) -> None:
    with db.transaction(live_server.app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")


def open_new_deal(page: Any, live_server: LiveServer) -> None:
    sign_in(page, "li.wei")
    page.wait_for_url(f"{live_server.url}/")
    page.get_by_role("navigation", name="Forms").get_by_role(
        "link", name="Deal"
    ).click()  # navigation from the pack
    page.wait_for_url(re.compile(r"/forms/b2b_manufacturer/deal/records$"))
    page.get_by_test_id("new-record").click()
    page.wait_for_url(re.compile(r"/deal/new$"))


def type_deal(page: Any) -> None:
    """Type like a person (key by key), so the form reacts while they type."""
    page.get_by_label("Customer").fill("Browser Motors")
    approval = page.locator('[data-field="approval_note"]')
    expect(approval).to_be_hidden()
    discount = page.get_by_label("Discount", exact=True)
    discount.press_sequentially("20")
    expect(approval).to_be_visible()  # discount over 15 %: the reason is asked for
    expect(discount).to_have_value("20")  # nothing typed is lost by the update
    expect(page.get_by_test_id("computed-grade")).to_have_text("—")  # no potential, no grade
    # pasted or filled in by the browser (no key pressed, the field still focused): it updates
    page.get_by_label("Potential (yearly)").fill("1500000")
    expect(page.get_by_test_id("computed-grade")).to_have_text("A")
    page.get_by_label("Amount", exact=True).press_sequentially("200000")
    expect(page.get_by_test_id("computed-net_amount")).to_have_text("CN¥160,000.00")


def test_rep_fills_the_deal_form_and_others_see_what_they_may(
    pages: BrowserPage, live_server: LiveServer, stock_pack: None
) -> None:
    page = pages.new(viewport={"width": 1280, "height": 900})
    open_new_deal(page, live_server)
    # on a wide screen the fields fill the grid row by row, in the pack's order, no gaps
    left, top = page.locator(".form-grid").first.evaluate(
        "g => [g.getBoundingClientRect().left, g.getBoundingClientRect().top]"
    )
    corners = page.locator(".form-grid > .field:visible").evaluate_all(
        "fields => fields.slice(0, 3).map(f => [f.getBoundingClientRect().left,"
        " f.getBoundingClientRect().top])"
    )
    assert corners[0] == pytest.approx([left, top], abs=1)  # the first field: top left
    assert [y for _x, y in corners] == pytest.approx([top] * 3, abs=1)  # one row
    assert corners[0][0] < corners[1][0] < corners[2][0]
    type_deal(page)
    page.get_by_role("button", name="Save").click()  # the reason is still missing
    expect(page.locator("#e-approval_note")).to_have_text("this field is required")
    # said at the top too, and the cursor waits in the field to fix
    expect(page.get_by_test_id("error-summary")).to_have_text(
        "1 field needs your attention: Why this discount."
    )
    expect(page.get_by_label("Why this discount")).to_be_focused()
    expect(page.get_by_label("Discount", exact=True)).to_have_value("20")
    expect(page.get_by_label("Customer")).to_have_value("Browser Motors")
    page.get_by_label("Why this discount").fill("Strategic account, 3-year frame contract")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/records/\d+$"))  # "?saved=1" dropped once it is said
    record_url = page.url
    expect(page.get_by_test_id("saved")).to_have_text("Saved.")
    expect(page.get_by_test_id("record-title")).to_have_text("Browser Motors")
    expect(page.get_by_test_id("stage")).to_have_text("Initial contact")
    page.get_by_role("navigation", name="Forms").get_by_role("link", name="Deal").click()
    expect(page.get_by_role("link", name="Browser Motors")).to_be_visible()

    manager = pages.new()
    sign_in(manager, "wang.fang")
    manager.wait_for_url(f"{live_server.url}/")
    expect(manager.get_by_role("link", name="Browser Motors")).to_be_visible()  # team home
    manager.goto(record_url)
    expect(manager.get_by_test_id("record-title")).to_have_text("Browser Motors")

    other = pages.new()
    sign_in(other, "zhang.min")
    other.wait_for_url(f"{live_server.url}/")
    response = other.goto(record_url)
    assert response is not None and response.status == 403
    expected = ("403 (FORBIDDEN)", "400 (BAD REQUEST)")  # the refusal above, the stranger
    assert [e for e in pages.console_errors if not e.endswith(expected)] == []


def test_the_deal_form_on_a_phone(
    pages: BrowserPage, live_server: LiveServer, stock_pack: None
) -> None:
    phone = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    open_new_deal(phone, live_server)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    type_deal(phone)
    phone.get_by_label("Why this discount").fill("Frame contract")
    save = phone.get_by_role("button", name="Save")
    box = save.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 375 and box["height"] >= 44
    save.tap()
    phone.wait_for_url(re.compile(r"/records/\d+$"))  # (?saved=1 dropped)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.goto(f"{live_server.url}/forms/b2b_manufacturer/deal/records")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375  # filters fit too
    row = phone.get_by_test_id("records").locator("tbody tr").first
    expect(row).to_contain_text("Browser Motors")
    # one card per deal: nothing to scroll sideways, each value under its column's name
    assert phone.evaluate(
        "(t => t.scrollWidth <= t.parentElement.clientWidth)"
        "(document.querySelector('[data-testid=records]'))"
    )
    stage = row.locator("td[data-label=Stage]")
    assert stage.evaluate("td => getComputedStyle(td, '::before').content") == '"Stage"'
    assert pages.console_errors == []


def test_without_javascript_the_form_still_works(
    pages: BrowserPage, live_server: LiveServer, stock_pack: None
) -> None:
    page = pages.new(java_script_enabled=False)
    open_new_deal(page, live_server)
    page.get_by_label("Customer").fill("No Script Ltd")
    page.get_by_label("Discount", exact=True).fill("20")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#e-approval_note")).to_have_text("this field is required")
    expect(page.locator('[data-field="approval_note"]')).to_be_visible()  # shown by the server
    expect(page.get_by_label("Discount", exact=True)).to_have_value("20")
    page.get_by_label("Why this discount").fill("Agreed with my manager")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/records/\d+\?saved=1$"))  # no script drops the mark
    expect(page.get_by_test_id("saved")).to_have_text("Saved.")
    expect(page.get_by_test_id("record-title")).to_have_text("No Script Ltd")
