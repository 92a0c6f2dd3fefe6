"""In a real browser: a rep moves a deal with a 20 % discount to quotation, is asked for the
amount, the deal waits for approval, the manager approves it from the queue, the rep sees it."""

from __future__ import annotations

import re
from datetime import date

import pytest
from sqlalchemy import select

from quotaflow import db
from quotaflow.org.models import Membership, User
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_version
from quotaflow.packs.validate import load_pack
from quotaflow.pipelines.services import record_first_stage
from quotaflow.records.services import create_record
from quotaflow.resources import stock_pack_dir
from tests.browser.conftest import BrowserPage, LiveServer, sign_in

pytestmark = pytest.mark.browser


def add_deal(live_server: LiveServer) -> int:
    with db.transaction(live_server.app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
        rep = session.scalars(select(User).where(User.username == "li.wei")).one()
        team = session.scalars(select(Membership.team_id).where(Membership.user_id == rep.id)).one()
        record = create_record(
            session,
            pack_id="b2b_manufacturer",
            pack_version_id=active_version(session, "b2b_manufacturer").id,
            form_id="deal",
            owner_id=rep.id,
            team_id=team,
            actor_id=rep.id,
            stage="needs_confirmed",
            values={
                "customer": "Gree Electric",
                "potential": "800000",
                "discount": "0.2",
                "approval_note": "three-year volume commitment",
            },
            record_date=date.today(),
        )
        record_first_stage(session, record, "b2b", rep.id)
        return record.id


def test_discount_approval_end_to_end(pages: BrowserPage, live_server: LiveServer) -> None:
    deal = add_deal(live_server)
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
