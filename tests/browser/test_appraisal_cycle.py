"""In a real browser, a whole appraisal cycle for one team: the admin opens last month's
appraisal, a rep writes a self-assessment, the manager rates the team and submits, the
calibration shows the grades, the admin closes and publishes, and the rep reads their
explained scorecard and its printable page."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from quotaflow import db
from quotaflow.org.models import Membership, User
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_version_id
from quotaflow.packs.validate import load_pack
from quotaflow.records.services import create_record
from quotaflow.resources import stock_pack_dir
from tests.browser.conftest import BrowserPage, LiveServer, sign_in

pytestmark = pytest.mark.browser
LAST_MONTH = date.today().replace(day=1) - timedelta(days=1)


def stock_pack_and_a_won_deal(live_server: LiveServer) -> None:
    with db.transaction(live_server.app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
        rep = session.scalars(select(User).where(User.username == "li.wei")).one()
        team = session.scalars(select(Membership.team_id).where(Membership.user_id == rep.id)).one()
        day = LAST_MONTH.replace(day=10)
        create_record(
            session, pack_id="b2b_manufacturer",
            pack_version_id=active_version_id(session, "b2b_manufacturer"), form_id="deal",
            owner_id=rep.id, team_id=team, actor_id=rep.id, stage="won",
            values={"customer": "Gree Electric", "amount": "300000"}, amount=Decimal("300000"),
            record_date=day, closed_at=datetime(day.year, day.month, day.day, 4, tzinfo=UTC),
        )  # fmt: skip


def test_a_whole_appraisal_cycle(pages: BrowserPage, live_server: LiveServer) -> None:
    stock_pack_and_a_won_deal(live_server)
    period = LAST_MONTH.strftime("%Y-%m")

    admin = pages.new()
    sign_in(admin, "admin")
    admin.wait_for_url(f"{live_server.url}/")
    admin.goto("/appraisals")
    admin.get_by_label("Period").fill(period)
    admin.get_by_role("button", name="Open").click()
    admin.wait_for_url(re.compile(r"/appraisals/\d+$"))
    overview_url = admin.url
    assert "Appraisal opened." in admin.locator(".messages").inner_text()

    rep = pages.new()
    sign_in(rep, "li.wei")
    rep.wait_for_url(f"{live_server.url}/")
    rep.goto("/appraisals")
    rep.get_by_role("link", name="My self-assessment").click()
    rep.locator('input[name="rating-training"][value="5"]').check()
    rep.get_by_label("Comment").fill("I trained two new colleagues")
    rep.get_by_test_id("submit-ratings").click()
    assert "Submitted." in rep.locator(".messages").inner_text()

    manager = pages.new()
    sign_in(manager, "wang.fang")
    manager.wait_for_url(f"{live_server.url}/")
    manager.goto(overview_url)
    people = manager.get_by_test_id("appraisal-people")
    assert "Li Wei" in people.inner_text() and "Zhang Min" in people.inner_text()
    for name, rating in (("li.wei", "4"), ("zhang.min", "3")):
        manager.goto(overview_url)
        manager.locator(f'tr[data-rep="{name}"]').get_by_role("link", name="Rate").click()
        if name == "li.wei":  # the self-assessment is shown beside the manager's form
            assert "I trained two new colleagues" in manager.locator("form.stack").inner_text()
        manager.locator(f'input[name="rating-training"][value="{rating}"]').check()
        manager.get_by_label("Comment").fill("Good product knowledge")
        manager.get_by_test_id("submit-ratings").click()
        assert "Submitted." in manager.locator(".messages").inner_text()
    manager.goto(overview_url)
    calibration = manager.get_by_test_id("calibration")
    assert "East A" in calibration.inner_text()
    assert "submitted" in manager.locator('tr[data-rep="zhang.min"]').inner_text()

    admin.goto(overview_url)
    asked: list[str] = []

    def answer(dialog: Any) -> None:  # closing and publishing ask first: yes
        asked.append(dialog.message)
        dialog.accept()

    admin.on("dialog", answer)
    admin.get_by_test_id("close").click()
    assert "results frozen" in admin.locator(".messages").inner_text()
    admin.get_by_test_id("publish").click()
    assert "Published" in admin.locator(".messages").inner_text()
    assert len(asked) == 2 and "Every rep sees their score" in asked[1]

    rep.goto("/appraisals")
    rep.get_by_role("link", name="My scorecard").click()
    summary = rep.get_by_test_id("final-score").inner_text()
    assert "frozen" in summary and "Grade" in summary
    won = rep.locator('tr[data-item="won_revenue"]').inner_text()
    assert "300,000" in won  # the actual is explained next to its target and score
    training = rep.locator('tr[data-item="training"]').inner_text()
    assert "80.00" in training and "Good product knowledge" in training
    rep.get_by_test_id("print-link").click()
    rep.wait_for_url(re.compile(r"/print$"))
    assert "Li Wei" in rep.locator("body").inner_text()
    assert pages.console_errors == []
