"""Pipelines on both databases: every transition and rule type, approvals, concurrency, funnel."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.org.models import User
from quotaflow.org.services import add_membership, add_user, ensure_team
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack, active_version
from quotaflow.packs.validate import load_pack
from quotaflow.pipelines.funnel import funnel
from quotaflow.pipelines.machine import default_moves
from quotaflow.pipelines.models import Approval, StageMove
from quotaflow.pipelines.services import (
    ApprovalError,
    MoveConflict,
    MoveRefused,
    approval_queue,
    decide_approval,
    move_record,
    record_first_stage,
    stale_records,
)
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import create_record
from quotaflow.resources import stock_pack_dir
from tests.packfiles import PACK, minimal_files, write_pack

TODAY = date(2026, 11, 24)


@dataclass
class World:
    sessions: sessionmaker[Session]
    pack_id: str
    rep: int
    manager: int
    other_rep: int
    team: int

    def pack(self, session: Session) -> CompiledPack:
        return active_pack(session, self.pack_id)

    def user(self, session: Session, user_id: int) -> User:
        found = session.get(User, user_id)
        assert found is not None
        return found

    def deal(self, values: dict, stage: str = "initial_contact", owner: int | None = None) -> int:
        with db.transaction(self.sessions) as session:
            version = active_version(session, self.pack_id)
            record = create_record(
                session,
                pack_id=self.pack_id,
                pack_version_id=version.id,
                form_id="deal",
                owner_id=owner or self.rep,
                team_id=self.team,
                values=values,
                actor_id=self.rep,
                stage=stage,
                record_date=TODAY,
            )
            pipeline = next(iter(self.pack(session).pipelines))
            record_first_stage(session, record, pipeline, self.rep)
            return record.id

    def move(self, record_id: int, to: str, actor: int | None = None, **kw):  # type: ignore[no-untyped-def]
        with db.transaction(self.sessions) as session:
            record = session.get(Record, record_id)
            assert record is not None
            return move_record(
                session,
                self.pack(session),
                record_id,
                to,
                actor=self.user(session, actor or self.rep),
                expected_version=kw.pop("expected_version", record.version_no),
                today=TODAY,
                **kw,
            )

    def stage(self, record_id: int) -> str | None:
        with self.sessions() as session:
            record = session.get(Record, record_id)
            assert record is not None
            return record.stage


def make_world(sessions: sessionmaker[Session], pack_path: Path) -> World:
    with db.transaction(sessions) as session:
        pack = load_pack(pack_path)
        install_pack(session, pack, actor="test")
        company = ensure_team(session, key="company", name="Company")
        team = ensure_team(session, key="east", name="East", parent=company)
        rep = add_user(session, username="rep", display_name="Rep", password="x" * 12)
        other = add_user(session, username="rep2", display_name="Rep 2", password="x" * 12)
        boss = add_user(session, username="boss", display_name="Boss", password="x" * 12)
        start = date(2025, 1, 1)
        add_membership(session, user=rep, team=team, role="account_manager", valid_from=start)
        add_membership(session, user=other, team=team, role="account_manager", valid_from=start)
        add_membership(session, user=boss, team=team, role="sales_manager", valid_from=start)
        return World(sessions, pack.id, rep.id, boss.id, other.id, team.id)


@pytest.fixture
def world(sessions: sessionmaker[Session]) -> World:
    return make_world(sessions, stock_pack_dir())


def test_default_moves_are_forward_back_one_and_lost() -> None:
    pipeline = load_pack(stock_pack_dir()).pipelines["b2b"]
    assert default_moves(pipeline, "initial_contact") == [
        "needs_confirmed",
        "quotation",
        "negotiation",
        "won",
        "lost",
    ]
    assert default_moves(pipeline, "quotation") == ["needs_confirmed", "negotiation", "won", "lost"]
    assert default_moves(pipeline, "won") == []


def test_missing_fields_are_asked_for_and_what_was_typed_is_kept(world: World) -> None:
    deal = world.deal({"customer": "Haier", "potential": "500000"})
    with pytest.raises(MoveRefused) as refused:
        world.move(deal, "quotation")
    assert refused.value.check is not None and refused.value.check.missing == ["amount"]
    assert str(refused.value) == "fill in amount to enter this stage"
    with pytest.raises(MoveRefused) as unreadable:
        world.move(deal, "quotation", extra={"amount": "lots"})
    assert unreadable.value.field_errors == {"amount": "enter a number, e.g. 1250.50"}
    result = world.move(deal, "quotation", extra={"amount": "120000"})
    assert result.status == "moved" and world.stage(deal) == "quotation"
    with world.sessions() as session:
        record = session.get(Record, deal)
        assert record is not None and record.values["amount"] == "120000.00"
        assert record.amount == Decimal("120000.00")
        actions = [
            h.action
            for h in session.scalars(
                select(RecordHistory)
                .where(RecordHistory.record_id == deal)
                .order_by(RecordHistory.id)
            )
        ]
        assert actions == ["create", "update", "stage"]
        moves = [
            (m.from_stage, m.to_stage)
            for m in session.scalars(
                select(StageMove).where(StageMove.record_id == deal).order_by(StageMove.id)
            )
        ]
        assert moves == [(None, "initial_contact"), ("initial_contact", "quotation")]


def test_back_two_stages_is_refused_and_lost_needs_a_reason(world: World) -> None:
    deal = world.deal({"customer": "Sany", "amount": "1000"}, stage="negotiation")
    with pytest.raises(MoveRefused, match="cannot move from Negotiation to Needs confirmed"):
        world.move(deal, "needs_confirmed")
    world.move(deal, "quotation")
    with pytest.raises(MoveRefused, match="fill in lost_reason"):
        world.move(deal, "lost")
    world.move(deal, "lost", extra={"lost_reason": "price"})
    with world.sessions() as session:
        record = session.get(Record, deal)
        assert record is not None and record.closed_at is not None


def test_won_closes_and_reopening_is_a_permission(world: World) -> None:
    deal = world.deal({"customer": "BYD", "amount": "5000"}, stage="negotiation")
    world.move(deal, "won")
    with pytest.raises(MoveRefused, match="reopening it needs a manager"):
        world.move(deal, "negotiation")
    world.move(deal, "negotiation", actor=world.manager, may_reopen=True)
    with world.sessions() as session:
        record = session.get(Record, deal)
        assert record is not None and record.stage == "negotiation" and record.closed_at is None


def test_a_big_discount_waits_for_the_managers_approval(world: World) -> None:
    deal = world.deal(
        {"customer": "Midea", "discount": "0.2", "approval_note": "volume"}, stage="needs_confirmed"
    )
    result = world.move(deal, "quotation", extra={"amount": "80000"})
    assert result.status == "pending_approval"
    assert result.messages == ["Discounts over 15 % need your manager's approval"]
    assert world.stage(deal) == "needs_confirmed"
    with pytest.raises(MoveRefused, match="waiting for approval"):
        world.move(deal, "negotiation")
    with db.transaction(world.sessions) as session:
        assert approval_queue(session, world.user(session, world.rep), today=TODAY) == []
        assert approval_queue(session, world.user(session, world.other_rep), today=TODAY) == []
        queue = approval_queue(session, world.user(session, world.manager), today=TODAY)
        assert [a.record_id for a in queue] == [deal]
        with pytest.raises(ApprovalError, match="may not decide"):
            decide_approval(
                session,
                world.pack(session),
                queue[0].id,
                approver=world.user(session, world.rep),
                approve=True,
                today=TODAY,
            )
        decide_approval(
            session,
            world.pack(session),
            queue[0].id,
            approver=world.user(session, world.manager),
            approve=True,
            comment="ok for this volume",
            today=TODAY,
        )
    assert world.stage(deal) == "quotation"
    with world.sessions() as session:
        approval = session.scalars(select(Approval)).one()
        assert (approval.status, approval.comment) == ("approved", "ok for this volume")
        timeline = [
            h.action
            for h in session.scalars(
                select(RecordHistory)
                .where(RecordHistory.record_id == deal)
                .order_by(RecordHistory.id)
            )
        ]
        assert timeline == ["create", "update", "approval_requested", "approval_approved", "stage"]
        actions = set(session.scalars(select(AuditEvent.action)))
        assert {"approval.request", "approval.approved", "record.move"} <= actions


def test_a_rejected_approval_leaves_the_deal_where_it_was(world: World) -> None:
    deal = world.deal(
        {"customer": "Gree", "discount": "0.3", "approval_note": "x", "amount": "90000"},
        stage="needs_confirmed",
    )
    world.move(deal, "quotation")
    with db.transaction(world.sessions) as session:
        (pending,) = approval_queue(session, world.user(session, world.manager), today=TODAY)
        decide_approval(
            session,
            world.pack(session),
            pending.id,
            approver=world.user(session, world.manager),
            approve=False,
            comment="too deep",
            today=TODAY,
        )
    assert world.stage(deal) == "needs_confirmed"
    with (
        pytest.raises(ApprovalError, match="already decided"),
        db.transaction(world.sessions) as session,
    ):
        decide_approval(
            session,
            world.pack(session),
            pending.id,
            approver=world.user(session, world.manager),
            approve=True,
            today=TODAY,
        )


def _decide(world: World, approve: bool) -> None:
    with db.transaction(world.sessions) as session:
        (pending,) = approval_queue(session, world.user(session, world.manager), today=TODAY)
        decide_approval(session, world.pack(session), pending.id,
                        approver=world.user(session, world.manager), approve=approve, today=TODAY)  # fmt: skip


def test_the_stage_that_asks_for_approval_cannot_be_skipped_or_gone_round(world: World) -> None:
    deal = world.deal(
        {"customer": "Haier", "discount": "0.22", "approval_note": "x", "amount": "400000"},
        stage="needs_confirmed",
    )
    assert world.move(deal, "quotation").status == "pending_approval"
    _decide(world, approve=False)
    # past Quotation, whose rule asks, to a later stage: the same rule asks
    for later in ("negotiation", "won"):
        result = world.move(deal, later)
        assert result.status == "pending_approval", later
        assert result.messages == ["Discounts over 15 % need your manager's approval"]
        assert world.stage(deal) == "needs_confirmed"
        _decide(world, approve=False)
    # approved once on the way in, the deal goes on without asking again
    assert world.move(deal, "negotiation").status == "pending_approval"
    _decide(world, approve=True)
    assert world.stage(deal) == "negotiation"
    assert world.move(deal, "won").status == "moved"
    # losing a deal asks nothing of its discount
    other = world.deal(
        {"customer": "Gree", "discount": "0.3", "approval_note": "x", "amount": "90000"},
        stage="needs_confirmed",
    )
    assert world.move(other, "lost", extra={"lost_reason": "price"}).status == "moved"


def test_a_discount_raised_after_the_stage_that_asks_asks_again(world: World) -> None:
    from quotaflow.pipelines.machine import change_needs_approval

    with world.sessions() as session:
        pack = world.pack(session)
    low = {"customer": "BYD", "discount": Decimal("0.05"), "amount": Decimal("1000")}
    high = {**low, "discount": Decimal("0.25"), "approval_note": "volume"}
    for stage in ("quotation", "negotiation", "won"):  # the stage that asks, and after it
        asked = change_needs_approval(pack, "b2b", stage, low, high)
        assert asked is not None and asked[0] == "sales_manager", stage
    assert change_needs_approval(pack, "b2b", "needs_confirmed", low, high) is None  # before it


def test_two_people_moving_the_same_deal_at_once(world: World) -> None:
    deal = world.deal({"customer": "CRRC", "amount": "1000"}, stage="quotation")
    first, second = world.sessions(), world.sessions()
    try:
        pack = active_pack(first, world.pack_id)
        opened = [session.get(Record, deal) for session in (first, second)]  # both hold version 1
        assert all(r is not None and r.version_no == 1 for r in opened)
        move_record(
            first,
            pack,
            deal,
            "negotiation",
            actor=world.user(first, world.rep),
            expected_version=1,
            today=TODAY,
        )
        first.commit()
        with pytest.raises(MoveConflict, match="at the same time"):
            move_record(
                second,
                pack,
                deal,
                "lost",
                actor=world.user(second, world.manager),
                expected_version=1,
                extra={"lost_reason": "price"},
                today=TODAY,
            )
    finally:
        first.close()
        second.close()
    assert world.stage(deal) == "negotiation"
    with pytest.raises(MoveConflict, match="since you opened it"):
        world.move(deal, "won", expected_version=1)


def test_explicit_transitions_and_stage_rules(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    pipeline = """\
    kind: pipeline
    id: sales
    form: deal
    stages:
      - {id: lead}
      - id: quotation
        rules: [{check: "amount >= 1000", error: "Quotes start at 1000"}]
      - {id: won, outcome: won}
      - {id: lost, outcome: lost}
    transitions:
      - {from: lead, to: quotation}
      - {from: quotation, to: won, when: "discount < 0.1"}
      - {from: quotation, to: lost}
    """
    pack = (
        PACK
        + "roles: [{id: account_manager, capability: rep}, {id: sales_manager, capability: manager}]\n"
    )
    folder = write_pack(
        tmp_path, minimal_files({"pack.yaml": pack, "pipelines/sales.yaml": pipeline})
    )
    world = make_world(sessions, folder)
    deal = world.deal({"customer": "X", "amount": "500", "discount": "0.2"}, stage="lead")
    with pytest.raises(MoveRefused, match="cannot move from lead to won"):
        world.move(deal, "won")
    with pytest.raises(MoveRefused, match="Quotes start at 1000"):
        world.move(deal, "quotation")
    world.move(deal, "quotation", extra={"amount": "1500"})
    with pytest.raises(MoveRefused, match="cannot move from quotation to won"):
        world.move(deal, "won")  # discount too high for the conditional transition
    world.move(deal, "won", extra={"discount": "5"})
    assert world.stage(deal) == "won"


def test_stale_deals_are_the_open_ones_untouched_for_too_long(world: World) -> None:
    old = world.deal({"customer": "Old"})
    fresh = world.deal({"customer": "Fresh"})
    closed = world.deal({"customer": "Done", "amount": "1"}, stage="won")
    with db.transaction(world.sessions) as session:
        for record_id in (old, closed):
            record = session.get(Record, record_id)
            assert record is not None
            record.updated_at = datetime(2026, 11, 1, tzinfo=UTC)
    with world.sessions() as session:
        found = stale_records(session, world.pack(session), "b2b", today=TODAY)
        assert [r.id for r in found] == [old]
        assert fresh not in [r.id for r in found]


def test_funnel_figures_match_a_hand_computed_example(world: World) -> None:
    """Four deals created on 1 March; their histories, and the figures worked out by hand.

    A: initial(0) -> needs(+2d) -> quotation(+5d) -> won(+10d), amount 100
    B: initial(0) -> needs(+4d) -> lost(+6d)
    C: initial(0) -> quotation(+3d) (skipped needs), open, amount 200 (probability 0.5)
    D: initial(0), open
    reached: initial 4, needs 3 (A, B, C passed it), quotation 2, negotiation 1 (A won) → won 1
    conversion: initial 3/4, needs 2/3, quotation 1/2, negotiation 1/1
    days in initial: A 2, B 4, C 3 → 3.0; needs: A 3, B 2 → 2.5; quotation: A 5 → 5.0
    win rate 1/2; cycle (A) 10 days; weighted pipeline 200 * 0.5 = 100
    """
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    histories = {
        "A": (["needs_confirmed", "quotation", "won"], [2, 5, 10], "100"),
        "B": (["needs_confirmed", "lost"], [4, 6], None),
        "C": (["quotation"], [3], "200"),
        "D": ([], [], None),
    }
    with db.transaction(world.sessions) as session:
        version = active_version(session, world.pack_id)
        for name, (stages, days, amount) in histories.items():
            final = stages[-1] if stages else "initial_contact"
            record = create_record(
                session,
                pack_id=world.pack_id,
                pack_version_id=version.id,
                form_id="deal",
                owner_id=world.rep,
                team_id=None,
                values={"customer": name},
                actor_id=world.rep,
                stage=final,
                amount=Decimal(amount) if amount else None,
                created_at=t0,
                closed_at=t0 + timedelta(days=days[-1]) if final in ("won", "lost") else None,
            )
            previous = None
            for stage, day in [("initial_contact", 0), *zip(stages, days, strict=True)]:
                session.add(
                    StageMove(
                        record_id=record.id,
                        pipeline_id="b2b",
                        from_stage=previous,
                        to_stage=stage,
                        moved_at=t0 + timedelta(days=day),
                    )
                )
                previous = stage
    with world.sessions() as session:
        report = funnel(
            session, world.pack(session), "b2b", start=date(2026, 3, 1), end=date(2026, 3, 31)
        )
    rows = {r.stage: r for r in report.rows}
    assert [
        rows[s].reached for s in ("initial_contact", "needs_confirmed", "quotation", "negotiation")
    ] == [4, 3, 2, 1]
    assert rows["initial_contact"].conversion == pytest.approx(0.75)
    assert rows["needs_confirmed"].conversion == pytest.approx(2 / 3)
    assert rows["quotation"].conversion == pytest.approx(0.5)
    assert rows["negotiation"].conversion == pytest.approx(1.0)
    assert rows["initial_contact"].avg_days == pytest.approx(3.0)
    assert rows["needs_confirmed"].avg_days == pytest.approx(2.5)
    assert rows["quotation"].avg_days == pytest.approx(5.0)
    assert (rows["won"].count, rows["lost"].count, rows["quotation"].count) == (1, 1, 1)
    assert rows["quotation"].amount == Decimal("200")
    assert report.win_rate == pytest.approx(0.5)
    assert report.avg_cycle_days == pytest.approx(10.0)
    assert report.weighted_pipeline == Decimal("100.00")
    csv_text = report.csv_bytes().decode("utf-8-sig")
    assert "quotation,Quotation,1,200.00,2,0.5000,5.0" in csv_text
    assert "weighted_pipeline,100.00" in csv_text
