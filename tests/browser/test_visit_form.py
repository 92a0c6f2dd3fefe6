"""In a real browser, on a phone: a rep logs a visit. The date starts on today (the company's
day), the deal list offers the open deals only, and choosing one fills the blank customer in
as the form reacts; what they typed themselves is never overwritten."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from quotaflow.records.models import Record
from tests.browser.conftest import BrowserPage, LiveServer, add_deal, sign_in

pytestmark = pytest.mark.browser


def test_a_visit_starts_today_and_the_deal_chosen_fills_the_customer(
    pages: BrowserPage, live_server: LiveServer
) -> None:
    open_deal = add_deal(live_server, "quotation", {"customer": "Midea Group"})
    lost = add_deal(live_server, "lost", {"customer": "Gree Electric", "lost_reason": "price"})
    phone = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(phone, "li.wei")
    phone.wait_for_url(f"{live_server.url}/")
    phone.goto(f"{live_server.url}/forms/b2b_manufacturer/visit/new")
    today = datetime.now(ZoneInfo("Asia/Shanghai")).date().isoformat()
    expect(phone.get_by_label("Date")).to_have_value(today)
    deal = phone.get_by_label("Deal")
    offered = deal.locator("option").evaluate_all("os => os.map(o => o.value)")
    assert str(open_deal) in offered and str(lost) not in offered
    customer = phone.get_by_label("Customer")
    expect(customer).to_have_value("")
    deal.select_option(str(open_deal))
    expect(customer).to_have_value("Midea Group")  # filled as the form reacts
    # emptied, with the same deal chosen, it stays empty as the form reacts to other changes
    customer.fill("")
    phone.get_by_label("Type").select_option("phone")
    phone.wait_for_timeout(600)
    expect(customer).to_have_value("")
    # typed over, then another change of the form: what was typed stays
    customer.fill("Midea HVAC")
    phone.get_by_label("Type").select_option("onsite")
    phone.wait_for_timeout(600)
    expect(customer).to_have_value("Midea HVAC")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    phone.get_by_role("button", name="Save").tap()
    phone.wait_for_url(re.compile(r"/records/\d+$"))  # (?saved=1 dropped)
    record_id = int(phone.url.rsplit("/", 1)[1])
    with live_server.app.extensions["quotaflow.sessions"]() as session:
        visit = session.get(Record, record_id)
        assert visit is not None
        assert visit.values["customer"] == "Midea HVAC" and visit.values["deal"] == open_deal
        assert visit.values["visit_date"] == today
    assert pages.console_errors == []


def test_a_long_deal_list_is_searched_and_the_deal_found_is_chosen(
    pages: BrowserPage, live_server: LiveServer
) -> None:
    for n in range(12):
        add_deal(live_server, "lead", {"customer": f"Customer {n:02}"})
    wanted = add_deal(live_server, "quotation", {"customer": "Gree Electric"})
    page = pages.new(viewport={"width": 1280, "height": 900})
    sign_in(page, "li.wei")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/forms/b2b_manufacturer/visit/new")
    deal = page.get_by_label("Deal", exact=True)
    assert deal.locator("option").count() >= 14  # the blank one, twelve customers, Gree
    find = page.get_by_role("searchbox", name="Search: Deal")
    previews: list[str] = []
    page.on("request", lambda r: previews.append(r.url) if r.url.endswith("/preview") else None)
    find.fill("gree")
    expect(page.get_by_text("1 record matches.")).to_be_visible()
    expect(deal.locator("option")).to_have_count(2)
    assert previews == []  # typing in it does not work the whole form out again
    find.press("Enter")  # the search box is no part of the form: Enter saves nothing
    page.wait_for_timeout(600)
    assert page.url.endswith("/visit/new")
    deal.select_option(str(wanted))
    expect(page.get_by_label("Customer")).to_have_value("Gree Electric")
    find.fill("nobody like this")
    expect(page.get_by_text("No record matches “nobody like this”.")).to_be_visible()
    expect(deal).to_have_value(str(wanted))  # the deal chosen stays chosen
    page.get_by_label("Type").select_option("onsite")
    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/records/\d+$"))  # (?saved=1 dropped)
    with live_server.app.extensions["quotaflow.sessions"]() as session:
        visit = session.get(Record, int(page.url.rsplit("/", 1)[1]))
        assert visit is not None and visit.values["deal"] == wanted
    assert pages.console_errors == []
