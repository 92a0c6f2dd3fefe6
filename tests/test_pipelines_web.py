"""Pipeline pages through HTTP: board, move asking for missing fields, approval queue, funnel."""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from quotaflow import db
from quotaflow.packs.install import install_pack
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record
from quotaflow.records.services import create_record
from quotaflow.resources import stock_pack_dir
from tests.conftest import stock_deal


@pytest.fixture
def deal(app: Flask, make_user) -> int:  # type: ignore[no-untyped-def]
    sessions = app.extensions["quotaflow.sessions"]
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
    rep = make_user("li.wei", team="east", role="account_manager")
    make_user("wang.fang", team="east", role="sales_manager")
    make_user("other.rep", team="south", role="account_manager")
    values = {
        "customer": "Midea HVAC",
        "discount": "0.2",
        "approval_note": "volume deal",
        "potential": "900000",
    }
    with db.transaction(sessions) as session:
        return stock_deal(session, rep.id, None, "needs_confirmed", values)


def _team_of(app: Flask, username: str) -> int:
    from sqlalchemy import select

    from quotaflow.org.models import Membership, User

    with app.extensions["quotaflow.sessions"]() as session:
        user = session.scalars(select(User).where(User.username == username)).one()
        return session.scalars(
            select(Membership.team_id).where(Membership.user_id == user.id)
        ).one()


def _in_reps_team(app: Flask, deal: int) -> None:
    """The deal made in li.wei's team, so wang.fang manages it."""
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        session.get(Record, deal).team_id = _team_of(app, "li.wei")  # type: ignore[union-attr]


def _record(app: Flask, record_id: int) -> Record:
    with app.extensions["quotaflow.sessions"]() as session:
        record = session.get(Record, record_id)
        assert record is not None
        return record


def test_rep_moves_a_deal_is_asked_for_the_amount_and_the_manager_approves(
    app: Flask,
    client: FlaskClient,
    auth,
    deal: int,  # type: ignore[no-untyped-def]
) -> None:
    _in_reps_team(app, deal)
    auth.login("li.wei")
    board = client.get("/pipelines/b2b")
    assert board.status_code == 200
    assert "Midea HVAC" in board.get_data(as_text=True)
    version = _record(app, deal).version_no
    asked = auth.post(f"/records/{deal}/move", {"to": "quotation", "version": version})
    assert asked.status_code == 200
    page = asked.get_data(as_text=True)
    assert 'name="field_amount"' in page and "To enter this stage, fill in:" in page
    assert "Fill this in" not in page  # asked, not yet refused
    blank = auth.post(
        f"/records/{deal}/move", {"to": "quotation", "version": version, "field_amount": " "}
    )
    # left blank on the page that asked for it: said next to the field, not a silent reload
    assert blank.status_code == 200
    assert "Fill this in to move the deal to this stage." in blank.get_data(as_text=True)
    bad = auth.post(
        f"/records/{deal}/move", {"to": "quotation", "version": version, "field_amount": "lots"}
    )
    assert bad.status_code == 200 and 'value="lots"' in bad.get_data(as_text=True)  # input kept
    sent = auth.post(
        f"/records/{deal}/move",
        {"to": "quotation", "version": version, "field_amount": "80000"},
        follow_redirects=True,
    )
    assert "Sent for approval" in sent.get_data(as_text=True)
    assert "waiting for approval" in client.get("/pipelines/b2b").get_data(as_text=True)
    assert _record(app, deal).stage == "needs_confirmed"
    mine = client.get("/approvals").get_data(as_text=True)
    assert "<td>Quotation</td>" in mine  # the stage's label, not its id
    auth.logout()
    auth.login("wang.fang")
    queue = client.get("/approvals").get_data(as_text=True)
    assert f'<a href="/records/{deal}">Midea HVAC</a>' in queue  # open it before deciding
    assert "to move it from Needs confirmed to Quotation." in queue
    assert "Discounts over 15 % need your manager&#39;s approval" in queue  # why it is asked
    assert "<dt>Amount</dt><dd>CN¥80,000.00</dd>" in queue  # by label, formatted
    assert "needs_confirmed" not in queue and "<dt>amount</dt>" not in queue
    home = client.get("/").get_data(as_text=True)
    assert "Decide: Midea HVAC to Quotation" in home
    assert re.search(r'<nav class="formnav".*?href="/approvals"', home, re.S)  # in the top bar
    from sqlalchemy import select

    from quotaflow.pipelines.models import Approval

    with app.extensions["quotaflow.sessions"]() as session:
        approval_id = session.scalars(select(Approval.id)).one()
    done = auth.post(
        f"/approvals/{approval_id}",
        {"decision": "approve", "comment": "ok"},
        follow_redirects=True,
    )
    assert "Approved" in done.get_data(as_text=True)
    assert _record(app, deal).stage == "quotation"
    history = client.get(f"/records/{deal}").get_data(as_text=True)
    assert "<del>Needs confirmed</del> → <ins>Quotation</ins>" in history
    # the approver's comment reads as said (a two-letter one once showed as "o → k"), and the
    # decision names the move asked for rather than reading as a move of its own
    assert re.search(
        r'data-testid="history-comment"><span class="what">Comment</span>: ok</p>', history
    )
    assert "<del>o</del>" not in history and "Move asked for" in history
    card = client.get("/pipelines/b2b").get_data(as_text=True)
    assert "· CN¥80,000</p>" in card  # the card's amount, in whole units
    assert "Nothing is waiting for your approval." in client.get("/approvals").get_data(
        as_text=True
    )


def test_a_refused_move_is_explained_in_the_readers_language(
    app: Flask,
    client: FlaskClient,
    auth,
    deal: int,  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy import select

    from quotaflow.org.models import User

    _in_reps_team(app, deal)
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        session.scalars(select(User).where(User.username == "li.wei")).one().locale = "zh"
    auth.login("li.wei")
    version = _record(app, deal).version_no
    same = auth.post(
        f"/records/{deal}/move",
        {"to": "needs_confirmed", "version": version},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "记录已经在这个阶段" in same and "already in this stage" not in same
    stale = auth.post(
        f"/records/{deal}/move",
        {"to": "quotation", "version": version + 1},
        follow_redirects=True,
    ).get_data(as_text=True)
    assert "你打开后有人修改了这条记录" in stale and "reload it" not in stale
    assert _record(app, deal).stage == "needs_confirmed"


def test_a_rejected_request_is_on_the_reps_home_with_why(
    app: Flask,
    client: FlaskClient,
    auth,
    deal: int,  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy import select

    from quotaflow.pipelines.models import Approval

    _in_reps_team(app, deal)
    auth.login("li.wei")
    version = _record(app, deal).version_no
    auth.post(f"/records/{deal}/move", {"to": "quotation", "version": version,
                                        "field_amount": "80000"})  # fmt: skip
    auth.logout()
    auth.login("wang.fang")
    with app.extensions["quotaflow.sessions"]() as session:
        approval_id = session.scalars(select(Approval.id)).one()
    auth.post(f"/approvals/{approval_id}", {"decision": "reject", "comment": "12 % at most"})
    auth.logout()
    auth.login("li.wei")
    home = client.get("/").get_data(as_text=True)
    assert f'<li data-kind="rejected"><a href="/records/{deal}">' in home
    assert "Rejected: Midea HVAC — 12 % at most" in home


def test_a_manager_narrows_the_board_to_one_owner(
    app: Flask, client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    east = _team_of(app, "li.wei")
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        session.get(Record, deal).team_id = east  # type: ignore[union-attr]
        stock_deal(session, _user_id(app, "wang.fang"), east, "needs_confirmed",
                   {"customer": "Gree Electric", "potential": "500000"})  # fmt: skip
    auth.login("wang.fang")
    both = client.get("/pipelines/b2b").get_data(as_text=True)
    assert 'data-testid="owner-filter"' in both
    assert "Midea HVAC" in both and "Gree Electric" in both
    li = client.get(f"/pipelines/b2b?owner={_user_id(app, 'li.wei')}").get_data(as_text=True)
    assert "Midea HVAC" in li and "Gree Electric" not in li
    assert f'<option value="{_user_id(app, "li.wei")}" selected>' in li
    # someone the reader may not see, or junk: the whole board, not an empty one
    other = client.get(f"/pipelines/b2b?owner={_user_id(app, 'other.rep')}").get_data(as_text=True)
    assert "Midea HVAC" in other and "Gree Electric" in other
    assert client.get("/pipelines/b2b?owner=x%00").status_code == 400  # NUL refused first
    auth.logout()
    auth.login("li.wei")  # a rep's board is their own: nothing to narrow
    assert 'data-testid="owner-filter"' not in client.get("/pipelines/b2b").get_data(as_text=True)


def test_the_deal_list_and_the_board_link_to_each_other(
    client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    auth.login("li.wei")
    listing = client.get("/forms/b2b_manufacturer/deal/records").get_data(as_text=True)
    board_url = re.search(r'href="([^"]+)" data-testid="board-link">Board<', listing)
    assert board_url is not None
    board = client.get(board_url.group(1))
    assert board.status_code == 200
    cards = board.get_data(as_text=True)
    assert f'<a href="/records/{deal}"><strong>Midea HVAC</strong></a>' in cards  # opens the deal
    assert cards.count("closed in the last 30 days") == 2  # under Won and Lost: not all history
    # on a phone the columns stack: a row of links jumps to each
    assert 'href="#stage-quotation"' in cards and 'id="stage-quotation"' in cards
    list_url = re.search(
        r'href="([^"]+)" data-testid="list-link">List<', board.get_data(as_text=True)
    )
    assert list_url is not None and list_url.group(1) == "/forms/b2b_manufacturer/deal/records"
    visits = client.get("/forms/b2b_manufacturer/visit/records").get_data(as_text=True)
    assert 'data-testid="board-link"' not in visits  # a form no pipeline moves has no board
    auth.post("/locale", {"locale": "zh", "next": "/"})
    listing = client.get("/forms/b2b_manufacturer/deal/records").get_data(as_text=True)
    assert 'data-testid="board-link">看板<' in listing


def test_the_funnel_offers_the_owners_the_reader_may_see(
    app: Flask, client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    sessions = app.extensions["quotaflow.sessions"]
    with db.transaction(sessions) as session:
        session.get(Record, deal).team_id = _team_of(app, "li.wei")  # type: ignore[union-attr]
        other = _user_id(app, "other.rep")
        stock_deal(session, other, _team_of(app, "other.rep"), "quotation", {"customer": "Gree"})
    today = date.today()
    url = f"/pipelines/b2b/funnel?from={today.year}-01-01&to={today}"

    def offered() -> set[str]:
        page = client.get(url).get_data(as_text=True)
        select_ = re.search(r'<select id="rep" name="rep">(.*?)</select>', page, re.S)
        assert select_ is not None
        return set(re.findall(r'<option value="([^"]+)"', select_.group(1)))

    auth.login("wang.fang")
    assert offered() == {"li.wei", "other.rep"}  # east and its sub-team south (make_user)
    mine = client.get(url + "&rep=li.wei").get_data(as_text=True)
    assert re.search(r'<option value="li.wei" selected>', mine)
    auth.logout()
    for rep in ("li.wei", "other.rep"):  # a rep is offered only themselves
        auth.login(rep)
        assert offered() == {rep}
        auth.logout()


def _user_id(app: Flask, username: str) -> int:
    from sqlalchemy import select

    from quotaflow.org.models import User

    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def test_another_teams_rep_cannot_move_the_deal(client: FlaskClient, auth, deal: int) -> None:  # type: ignore[no-untyped-def]
    auth.login("other.rep")
    assert "Midea HVAC" not in client.get("/pipelines/b2b").get_data(as_text=True)
    response = auth.post(f"/records/{deal}/move", {"to": "quotation", "version": 1})
    assert response.status_code == 403


def test_funnel_page_and_csv_export(app: Flask, client: FlaskClient, auth, deal: int) -> None:  # type: ignore[no-untyped-def]
    auth.login("li.wei")
    today = date.today()
    page = client.get(f"/pipelines/b2b/funnel?from={today.year}-01-01&to={today}")
    assert page.status_code == 200 and 'data-testid="funnel"' in page.get_data(as_text=True)
    assert 'href="/pipelines/b2b" data-testid="board-link"' in page.get_data(as_text=True)
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        stock_deal(session, _user_id(app, "other.rep"), _team_of(app, "other.rep"), "quotation",
                   {"customer": "Elsewhere Ltd"})  # fmt: skip
        session.get(Record, deal).team_id = _team_of(app, "li.wei")  # type: ignore[union-attr]
    offered = re.findall(r'<option value="(\w+)"', client.get("/pipelines/b2b/funnel").text)
    assert "east" in offered and "south" not in offered  # only teams whose deals one may see
    export = client.get(f"/pipelines/b2b/funnel?from={today.year}-01-01&to={today}&format=csv")
    assert export.mimetype == "text/csv"
    assert (
        export.get_data()
        .decode("utf-8-sig")
        .startswith(  # with a BOM: Excel reads 中文
            "stage,label,count,amount,reached,conversion,avg_days"
        )
    )
    assert client.get("/pipelines/b2b/funnel?from=junk").status_code == 400
    assert client.get("/pipelines/nope").status_code == 404


def test_deal_page_shows_moves_waiting_approval_and_linked_visits(
    app: Flask,
    client: FlaskClient,
    auth,
    deal: int,  # type: ignore[no-untyped-def]
) -> None:
    sessions = app.extensions["quotaflow.sessions"]
    with db.transaction(sessions) as session:
        record = session.get(Record, deal)
        assert record is not None
        record.team_id = _team_of(app, "li.wei")
        visit = create_record(
            session,
            pack_id="b2b_manufacturer",
            pack_version_id=record.pack_version_id,
            form_id="visit",
            owner_id=record.owner_id,
            team_id=record.team_id,
            values={
                "customer": "Midea HVAC",
                "visit_date": "2026-11-20",
                "visit_type": "onsite",
                "deal": deal,
            },
            actor_id=record.owner_id,
            record_date=date(2026, 11, 20),
        )
        visit_id = visit.id
    auth.login("li.wei")
    page = client.get(f"/records/{deal}").get_data(as_text=True)
    assert 'data-testid="deal-moves"' in page and 'name="to"' in page
    assert f'href="/records/{visit_id}"' in page  # the visit that refers to this deal
    version = _record(app, deal).version_no
    auth.post(
        f"/records/{deal}/move", {"to": "quotation", "version": version, "field_amount": "9000"}
    )
    page = client.get(f"/records/{deal}").get_data(as_text=True)
    assert "waiting for approval" in page and "Approval requested" in page


def _quotation_deal(app: Flask, discount: str) -> int:
    sessions = app.extensions["quotaflow.sessions"]
    values = {"customer": "Gree Electric", "potential": "900000", "amount": "100000",
              "discount": discount}  # fmt: skip
    with db.transaction(sessions) as session:
        return stock_deal(session, _user_id(app, "li.wei"), _team_of(app, "li.wei"), "quotation",
                          values)  # fmt: skip


def _user_id(app: Flask, username: str) -> int:
    from sqlalchemy import select

    from quotaflow.org.models import User

    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalars(select(User.id).where(User.username == username)).one()


def _edit(auth, record_id: int, discount: str, note: str = "") -> object:  # type: ignore[no-untyped-def]
    form = auth.client.get(f"/records/{record_id}/edit").get_data(as_text=True)
    version = re.search(r'name="version_no" value="(\d+)"', form)
    pack_version = re.search(r'name="pack_version_id" value="(\d+)"', form)
    assert version and pack_version
    data = {"pack_version_id": pack_version.group(1), "version_no": version.group(1),
            "f-customer": "Gree Electric", "f-potential": "900000", "f-amount": "100000",
            "f-discount": discount, "f-approval_note": note}  # fmt: skip
    return auth.post(f"/records/{record_id}/edit", data)


def test_raising_a_discount_past_the_stages_limit_waits_for_approval(
    app: Flask, client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    # entering Quotation with over 15 % off needs a manager: editing it up there once in
    # Quotation must too, or the approval is bypassed
    record_id = _quotation_deal(app, "0.05")
    auth.login("li.wei")
    small = _edit(auth, record_id, "8")  # still within the limit: saved at once
    assert small.status_code == 302 and _record(app, record_id).values["discount"] == "0.08"
    held = _edit(auth, record_id, "20", "frame contract")
    assert held.status_code == 302
    assert _record(app, record_id).values["discount"] == "0.08"  # not yet
    page = client.get(f"/records/{record_id}").get_data(as_text=True)
    assert "Sent for approval: the change is saved when it is approved." in page
    assert 'data-testid="pending">A change waits for approval' in page
    again = _edit(auth, record_id, "25", "more")
    assert again.status_code == 409 and "waiting for an approval" in again.get_data(as_text=True)
    auth.logout()

    auth.login("wang.fang")
    queue = client.get("/approvals").get_data(as_text=True)
    assert "asks to change it in Quotation:" in queue
    assert "<dt>Discount</dt><dd><del>8%</del> → <ins>20%</ins></dd>" in queue
    from sqlalchemy import select

    from quotaflow.pipelines.models import Approval

    with app.extensions["quotaflow.sessions"]() as session:
        approval_id = session.scalars(select(Approval.id).where(Approval.status == "pending")).one()
    done = auth.post(f"/approvals/{approval_id}", {"decision": "approve", "comment": "ok"})
    assert done.status_code == 302
    record = _record(app, record_id)
    assert record.values["discount"] == "0.2" and record.values["approval_note"] == "frame contract"
    assert record.stage == "quotation"
    history = client.get(f"/records/{record_id}").get_data(as_text=True)
    assert "<del>8%</del> → <ins>20%</ins>" in history
    auth.logout()
    auth.login("li.wei")
    # 20 % was approved: raising it further asks again; a change elsewhere is free
    assert _edit(auth, record_id, "40", "frame contract").status_code == 302
    assert _record(app, record_id).values["discount"] == "0.2"
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        pending = session.scalars(select(Approval).where(Approval.status == "pending")).one()
        pending.status = "rejected"
    assert _edit(auth, record_id, "20", "frame contract, 3 years").status_code == 302
    assert _record(app, record_id).values["approval_note"] == "frame contract, 3 years"


def test_a_change_approved_after_another_save_no_longer_applies(
    app: Flask, client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    record_id = _quotation_deal(app, "0.05")
    auth.login("li.wei")
    assert _edit(auth, record_id, "20", "frame contract").status_code == 302
    auth.logout()
    auth.login("wang.fang")  # their manager edits the deal meanwhile (a small change)
    from sqlalchemy import select

    from quotaflow.pipelines.models import Approval

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        session.get(Record, record_id).values = {  # type: ignore[union-attr]
            **_record(app, record_id).values,
            "customer": "Gree Electric Appliances",
        }
    with app.extensions["quotaflow.sessions"]() as session:
        approval_id = session.scalars(select(Approval.id).where(Approval.status == "pending")).one()
    refused = auth.post(
        f"/approvals/{approval_id}", {"decision": "approve", "comment": "ok"}, follow_redirects=True
    )
    assert "no longer applies" in refused.get_data(as_text=True)
    assert _record(app, record_id).values["discount"] == "0.05"


def test_a_deal_waiting_for_a_move_approval_cannot_be_changed_meanwhile(
    app: Flask, client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    # the approver decides on what they see: an edit from the stage before (which has no
    # approval) must not slip a 45 % discount in while the move waits
    _in_reps_team(app, deal)
    auth.login("li.wei")
    version = _record(app, deal).version_no
    sent = auth.post(
        f"/records/{deal}/move", {"to": "quotation", "version": version, "field_amount": "80000"}
    )
    assert sent.status_code == 302 and _record(app, deal).stage == "needs_confirmed"
    form = client.get(f"/records/{deal}/edit").get_data(as_text=True)
    assert "waiting for an approval" in form  # said before anything is typed
    assert 'data-testid="held-message"' in form and "Saving is off until then" in form
    assert '<button class="primary" type="submit" disabled>' in form
    data = {
        "pack_version_id": re.search(r'name="pack_version_id" value="(\d+)"', form).group(1),  # type: ignore[union-attr]
        "version_no": str(_record(app, deal).version_no),
        "f-customer": "Midea HVAC", "f-potential": "900000", "f-amount": "80000",
        "f-discount": "45", "f-approval_note": "volume deal",
    }  # fmt: skip
    refused = auth.post(f"/records/{deal}/edit", data)
    assert refused.status_code == 409
    assert "waiting for an approval" in refused.get_data(as_text=True)
    assert 'value="45"' in refused.get_data(as_text=True)  # the input is kept
    assert _record(app, deal).values["discount"] == "0.2"


def test_a_move_takes_only_the_values_its_stage_asks_for(
    app: Flask, client: FlaskClient, auth, deal: int
) -> None:  # type: ignore[no-untyped-def]
    record_id = _quotation_deal(app, "0.05")
    auth.login("li.wei")
    version = _record(app, record_id).version_no
    moved = auth.post(
        f"/records/{record_id}/move",
        {"to": "negotiation", "version": version, "field_discount": "0.9", "field_customer": "X"},
    )
    assert moved.status_code == 302
    record = _record(app, record_id)
    assert record.stage == "negotiation"
    assert record.values["discount"] == "0.05" and record.values["customer"] == "Gree Electric"


def test_nobody_decides_their_own_request_and_a_deleted_deal_is_not_approved(
    app: Flask, client: FlaskClient, auth, deal: int, make_user
) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from quotaflow.pipelines.models import Approval
    from quotaflow.pipelines.services import ApprovalError, decide_approval, may_decide
    from quotaflow.timeutil import utcnow

    boss = make_user("boss", is_admin=True)
    record_id = _quotation_deal(app, "0.05")
    auth.login("boss")  # an admin asks for a change on a deal
    assert _edit(auth, record_id, "20", "frame contract").status_code == 302
    sessions = app.extensions["quotaflow.sessions"]
    with sessions() as session:
        approval = session.scalars(select(Approval)).one()
        assert not may_decide(session, boss, approval, today=date.today())
    with db.transaction(sessions) as session:
        session.get(Record, record_id).deleted_at = utcnow()  # type: ignore[union-attr]
    manager = make_user("second.boss", is_admin=True)
    with db.transaction(sessions) as session:
        from quotaflow.packs.services import active_pack

        pack = active_pack(session, "b2b_manufacturer")
        with pytest.raises(ApprovalError, match="deleted"):
            decide_approval(
                session, pack, approval.id, approver=manager, approve=True, today=date.today()
            )
