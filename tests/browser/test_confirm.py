"""In a real browser: deleting a deal asks first, in words; saying no keeps it, yes deletes it."""

from __future__ import annotations

import re

import pytest

from quotaflow.records.models import Record
from tests.browser.conftest import BrowserPage, LiveServer, add_deal, sign_in

pytestmark = pytest.mark.browser


def deleted(live_server: LiveServer, record_id: int) -> bool:
    with live_server.app.extensions["quotaflow.sessions"]() as session:
        record = session.get(Record, record_id)
        assert record is not None
        return record.deleted_at is not None


def test_deleting_a_deal_asks_first(pages: BrowserPage, live_server: LiveServer) -> None:
    deal = add_deal(live_server, "quotation", {"customer": "Midea Group", "potential": "900000"})
    rep = pages.new()
    sign_in(rep, "li.wei")
    rep.wait_for_url(f"{live_server.url}/")
    rep.goto(f"/records/{deal}")
    asked: list[str] = []

    def say_no(dialog) -> None:  # type: ignore[no-untyped-def]
        asked.append(dialog.message)
        dialog.dismiss()

    rep.once("dialog", say_no)
    rep.get_by_test_id("delete").click()
    rep.wait_for_timeout(300)
    assert asked and asked[0].startswith("Delete Midea Group?")
    assert rep.url.endswith(f"/records/{deal}") and not deleted(live_server, deal)

    rep.once("dialog", lambda dialog: dialog.accept())
    with rep.expect_navigation():
        rep.get_by_test_id("delete").click()
    rep.wait_for_url(re.compile(r"/records"))
    assert deleted(live_server, deal)
    assert pages.console_errors == []
