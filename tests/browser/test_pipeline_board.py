"""In a real browser: a rep drags a deal card to another stage on the board. A column the deal
may not move to refuses it; one it may move to takes it, through the card's own move form."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from quotaflow.pipelines.models import StageMove
from quotaflow.records.models import Record
from tests.browser.conftest import BrowserPage, LiveServer, add_deal, sign_in

pytestmark = pytest.mark.browser


def stage_of(live_server: LiveServer, record_id: int) -> tuple[str | None, int]:
    with live_server.app.extensions["quotaflow.sessions"]() as session:
        record = session.get(Record, record_id)
        assert record is not None
        moves = session.scalars(select(StageMove).where(StageMove.record_id == record_id))
        return record.stage, len(list(moves))


def test_a_deal_dragged_to_a_stage_it_may_enter_moves_there(
    pages: BrowserPage, live_server: LiveServer
) -> None:
    deal = add_deal(
        live_server,
        "quotation",
        {"customer": "Midea Group", "potential": "900000", "amount": "300000"},
    )
    rep = pages.new()
    sign_in(rep, "li.wei")
    rep.wait_for_url(f"{live_server.url}/")
    rep.goto("/pipelines/b2b")
    card = rep.locator(f'article[data-record="{deal}"]')
    assert card.get_attribute("draggable") == "true"

    # two stages back is not a move the pipeline allows: the column refuses the card, so
    # nothing is even sent (the page is the same page: the mark set on it is still there)
    rep.evaluate("window.sameBoard = true")
    card.drag_to(rep.locator('section[data-stage="initial_contact"]'))
    rep.wait_for_timeout(300)
    assert rep.evaluate("window.sameBoard === true")
    assert stage_of(live_server, deal) == ("quotation", 1)

    with rep.expect_navigation():
        card.drag_to(rep.locator('section[data-stage="negotiation"]'))
    rep.wait_for_url(re.compile(r"/pipelines/b2b$"))
    assert "Moved." in rep.locator(".messages").inner_text()
    column = rep.locator('section[data-stage="negotiation"]')
    assert "Midea Group" in column.inner_text()
    assert stage_of(live_server, deal) == ("negotiation", 2)
    assert pages.console_errors == []
