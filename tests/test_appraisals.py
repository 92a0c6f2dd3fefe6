"""The appraisal cycle on SQLite and PostgreSQL: scoring a period from records, targets and
ratings; open -> rate -> close (frozen) -> publish -> reopen; permissions; frozen results
surviving a definition change and a record edit; explanations that add up; the
forced-distribution check; exports; the rep's view before and after publishing."""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.kpis.periods import parse_period
from quotaflow.leaderboards.services import leaderboard, scorecard_scores
from quotaflow.org.models import Membership, Team, User
from quotaflow.org.services import add_user
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack, active_version_id
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record
from quotaflow.records.services import create_record, update_record
from quotaflow.scorecards import cycle
from quotaflow.scorecards.exports import csv_bytes, results_table, xlsx_bytes
from quotaflow.scorecards.models import AppraisalPeriod
from quotaflow.scorecards.scoring import score_period
from tests.conftest import TEST_PASSWORD
from tests.packfiles import write_pack

SCORECARD = """\
    kind: scorecard
    id: monthly
    applies_to: {role: rep}
    groups: {result: 70, capability: 30}
    items:
      - {kpi: won, group: result, weight: 100, target: plan}
      - {manual: training, group: capability, weight: 100, scale: [1, 5], rated_by: both}
    grades:
      - {min: 110, grade: S, bonus: 1.5}
      - {min: 70, grade: A, bonus: 1.2}
      - {min: 0, grade: C, bonus: 0.5}
    forced_distribution: {S: 0.1, A: 0.5}
    """
PACK_FILES = {
    "pack.yaml": """\
        kind: pack
        id: appraise
        name: Appraise
        version: 1.0.0
        timezone: UTC
        """,
    "forms/deal.yaml": """\
        kind: form
        id: deal
        label: Deal
        fields:
          - {id: amount, type: money}
        """,
    "kpis/won.yaml": """\
        kind: kpi
        id: won
        unit: money
        aggregate: {form: deal, op: sum, field: amount, where: "stage == 'won'", date: closed_at}
        """,
    "targets/plan.yaml": """\
        kind: target_plan
        id: plan
        kpi: won
        period: "2026"
        total: 36000
        split:
          - {level: rep, method: equal}
        phasing: {by: month, weights: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}
        """,
    "scorecards/monthly.yaml": SCORECARD,
    "leaderboards/scores.yaml": """\
        kind: leaderboard
        id: scores
        scorecard: monthly
        """,
}
OCT = parse_period("2026-10")


@dataclass
class World:
    sessions: sessionmaker[Session]
    users: dict[str, int]
    pack_dir: Path

    def user(self, session: Session, name: str) -> User:
        found = session.get(User, self.users[name])
        assert found is not None
        return found

    def open(self, session: Session) -> AppraisalPeriod:
        pack = active_pack(session, "appraise")
        return cycle.open_period(session, pack, "monthly", "2026-10", self.user(session, "admin"))

    def rate(
        self, session: Session, row: AppraisalPeriod, rep: str, value: str, **kw: Any
    ) -> dict[str, str]:
        rater = kw.pop("rater", "manager")
        actor = kw.pop("actor", "boss" if rater == "manager" else rep)
        return cycle.save_ratings(
            session, active_pack(session, "appraise"), row, rep_id=self.users[rep], rater=rater,
            actor=self.user(session, actor), values={"training": value},
            comments={"training": kw.pop("comment", "")}, submit=kw.pop("submit", True),
            today=date(2026, 11, 2),
        )  # fmt: skip


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    """company > east (boss manages; ann, bob, cai are reps) and west (dan, another manager's).
    Won in October: ann 1500, bob 700, cai nothing; the plan gives each rep 36000 / 4 / 12 =
    750 a month."""
    pack_dir = write_pack(tmp_path / "pack", PACK_FILES)
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(pack_dir), actor="test")
        version = active_version_id(session, "appraise")
        company = Team(key="company", name="Company")
        session.add(company)
        session.flush()
        east = Team(key="east", name="East", parent_id=company.id)
        west = Team(key="west", name="West", parent_id=company.id)
        session.add_all([east, west])
        session.flush()
        users = {}
        for name, team, role in (
            ("boss", east, "manager"), ("ann", east, "rep"), ("bob", east, "rep"),
            ("cai", east, "rep"), ("dan", west, "rep"),
        ):  # fmt: skip
            user = add_user(
                session, username=name, display_name=name.title(), password=TEST_PASSWORD
            )
            session.add(
                Membership(user_id=user.id, team_id=team.id, role=role, valid_from=date(2026, 1, 1))
            )
            users[name] = user.id
        users["admin"] = add_user(
            session, username="admin", display_name="Admin", password=TEST_PASSWORD, is_admin=True
        ).id
        for owner, amount in (("ann", "1500"), ("bob", "700")):
            create_record(
                session, pack_id="appraise", pack_version_id=version, form_id="deal",
                owner_id=users[owner], team_id=east.id, values={"amount": amount}, actor_id=None,
                stage="won", amount=Decimal(amount), record_date=date(2026, 10, 5),
                closed_at=datetime(2026, 10, 5, 12, tzinfo=UTC),
            )  # fmt: skip
    return World(sessions, users, pack_dir)


# --- scoring ------------------------------------------------------------------------------------


def test_a_period_is_scored_from_records_targets_and_ratings(world: World) -> None:
    with world.sessions() as session:
        pack = active_pack(session, "appraise")
        ratings = {world.users["ann"]: {"training": 4}}
        results = score_period(session, pack, "monthly", OCT, ratings=ratings)
    assert set(results) == {world.users[n] for n in ("ann", "bob", "cai", "dan")}
    ann = results[world.users["ann"]]
    # won 1500 of 750 -> capped at 120; training 4 of 5 -> 80: 0.7 * 120 + 0.3 * 80 = 108
    assert [(i.id, i.actual, i.target, i.score) for i in ann.items] == [
        ("won", Decimal("1500.00"), Decimal("750.00"), Decimal("120")),
        ("training", Decimal("4"), None, Decimal("80")),
    ]
    assert (ann.final_score, ann.grade, ann.bonus) == (Decimal("108.00"), "A", Decimal("1.2"))
    bob = results[world.users["bob"]]  # 700 / 750 -> 93.33; no rating -> 0
    assert bob.final_score == Decimal("65.33") and bob.grade == "C"
    assert results[world.users["cai"]].final_score == Decimal("0.00")


def test_explanations_add_up_to_the_final_score(world: World) -> None:
    with world.sessions() as session:
        pack = active_pack(session, "appraise")
        results = score_period(
            session, pack, "monthly", OCT, ratings={world.users["bob"]: {"training": 3}}
        )
    for result in results.values():
        items = sum((i.contribution for i in result.items), Decimal(0))
        groups = sum((g.contribution for g in result.groups), Decimal(0))
        assert abs(items - result.final_score) < Decimal("0.01")
        assert abs(groups - result.final_score) < Decimal("0.01")


# --- the cycle ----------------------------------------------------------------------------------


def test_the_cycle_open_rate_close_publish_reopen(world: World) -> None:
    with db.transaction(world.sessions) as session:
        row = world.open(session)
        with pytest.raises(cycle.AppraisalError, match="already open"):
            world.open(session)
        assert world.rate(session, row, "ann", "9") == {
            "training": "choose a whole number from 1 to 5"
        }
        assert world.rate(session, row, "ann", "") == {
            "training": "choose a rating before submitting"
        }
        assert world.rate(session, row, "ann", "", submit=False) == {}  # a blank draft is fine
        assert world.rate(session, row, "ann", "4", comment="Good product knowledge") == {}
        assert world.rate(session, row, "ann", "5", rater="self") == {}
        ratings = cycle.ratings_of(session, row)
        assert cycle.submitted(ratings, world.users["ann"], "manager")
        assert cycle.submitted(ratings, world.users["ann"], "self")
        pack = active_pack(session, "appraise")
        live = cycle.results_for(session, pack, row)
        # the manager's 4 scores (rated by both: the self-assessment is shown, not counted)
        assert live[world.users["ann"]].final_score == Decimal("108.00")
        assert not live[world.users["ann"]].frozen
        with pytest.raises(cycle.AppraisalError, match="close the appraisal before publishing"):
            cycle.publish_period(session, row, world.user(session, "admin"))
        assert cycle.close_period(session, pack, row, world.user(session, "admin")) == 4
        assert row.status == "closed" and row.content_hash == pack.content_hash
        with pytest.raises(cycle.AppraisalError, match="closed"):
            world.rate(session, row, "bob", "3")
        cycle.publish_period(session, row, world.user(session, "admin"))
        assert row.status == "published"
        with pytest.raises(cycle.AppraisalError, match="only an administrator"):
            cycle.reopen_period(session, row, world.user(session, "boss"), "typo")
        with pytest.raises(cycle.AppraisalError, match="say why"):
            cycle.reopen_period(session, row, world.user(session, "admin"), "  ")
        cycle.reopen_period(
            session, row, world.user(session, "admin"), "Bob's October deal was missing"
        )
        assert (
            row.status == "open"
            and not cycle.results_for(session, pack, row)[world.users["ann"]].frozen
        )
    with world.sessions() as session:
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.object_type == "appraisal_period")
            .order_by(AuditEvent.id)
        ).all()
        actions = [e.action for e in events]
        assert actions[0] == "appraisal_open" and actions[-3:] == [
            "appraisal_close", "appraisal_publish", "appraisal_reopen",
        ]  # fmt: skip
        assert events[-1].details["reason"] == "Bob's October deal was missing"


def test_who_may_rate_whom(world: World) -> None:
    with db.transaction(world.sessions) as session:
        row = world.open(session)
        with pytest.raises(cycle.AppraisalError, match="only the people of your teams"):
            world.rate(session, row, "dan", "3")  # boss manages east, dan is in west
        with pytest.raises(cycle.AppraisalError, match="written by the person appraised"):
            world.rate(session, row, "ann", "3", rater="self", actor="bob")
        with pytest.raises(cycle.AppraisalError, match="only the people of your teams"):
            world.rate(session, row, "bob", "3", actor="ann")
        pack = active_pack(session, "appraise")
        assert cycle.managed_reps(session, pack, row, world.users["boss"]) == {
            world.users[n] for n in ("ann", "bob", "cai")
        }


def test_frozen_results_survive_a_definition_change_and_a_record_edit(
    world: World, tmp_path: Path
) -> None:
    with db.transaction(world.sessions) as session:
        row = world.open(session)
        world.rate(session, row, "ann", "4")
        cycle.close_period(
            session, active_pack(session, "appraise"), row, world.user(session, "admin")
        )
        row_id = row.id
    # April: an admin changes the weights and a deal is edited after the close
    files = dict(PACK_FILES)
    files["pack.yaml"] = PACK_FILES["pack.yaml"].replace("1.0.0", "1.1.0")
    files["scorecards/monthly.yaml"] = SCORECARD.replace(
        "result: 70, capability: 30", "result: 50, capability: 50"
    )
    with db.transaction(world.sessions) as session:
        install_pack(session, load_pack(write_pack(tmp_path / "v2", files)), actor="test")
        deal = session.scalars(select(Record).where(Record.owner_id == world.users["bob"])).one()
        update_record(
            session, deal.id, values={"amount": "100"}, actor_id=world.users["admin"],
            expected_version=deal.version_no, amount=Decimal("100"),
        )  # fmt: skip
    with world.sessions() as session:
        row = session.get(AppraisalPeriod, row_id)
        assert row is not None
        pack = active_pack(session, "appraise")
        frozen = cycle.results_for(session, pack, row)
        assert frozen[world.users["ann"]].final_score == Decimal("108.00")
        assert frozen[world.users["bob"]].final_score == Decimal("65.33")
        assert frozen[world.users["ann"]].explanation["groups"][0]["weight"] == "70.0"
        board = leaderboard(session, pack, "scores", OCT, scores=scorecard_scores)
        ranked = {r.name: (r.value, r.rank) for r in board.rows}
        assert ranked["Ann"] == (Decimal("108.00"), 1) and ranked["Bob"] == (Decimal("65.33"), 2)
        live = score_period(
            session, pack, "monthly", OCT, ratings={world.users["ann"]: {"training": 4}}
        )
        assert live[world.users["ann"]].final_score == Decimal("100.00")  # 0.5 * 120 + 0.5 * 80
        assert live[world.users["bob"]].final_score != Decimal("65.33")


def test_forced_distribution_warns_with_the_numbers(world: World) -> None:
    with db.transaction(world.sessions) as session:
        row = world.open(session)
        for rep in ("ann", "bob", "cai"):
            world.rate(session, row, rep, "5")
        pack = active_pack(session, "appraise")
        results = cycle.results_for(session, pack, row)
        calib = cycle.calibration(session, pack, row, results)
        # ann 114 (S), bob 0.7*93.33+30 = 95.33 (A), cai 0 + 30 = 30 (C), dan 0 (C)
        assert calib.overall == {"S": 1, "A": 1, "C": 2}
        assert calib.by_team["East"] == {"S": 1, "A": 1, "C": 1}
        # a sub-team added under East (nobody in it yet) leaves East's people in East
        east = session.scalars(select(Team).where(Team.name == "East")).one()
        session.add(Team(key="east-new", name="East new", parent_id=east.id))
        session.flush()
        again = cycle.calibration(session, pack, row, results)
        assert again.by_team == calib.by_team and "—" not in again.by_team
        assert calib.warnings == (
            "1 of 4 people (25%) have grade S; the scheme allows at most 10% (0)",
        )


def test_exports_carry_every_item_and_the_final_score(world: World) -> None:
    with db.transaction(world.sessions) as session:
        row = world.open(session)
        world.rate(session, row, "ann", "4")
        pack = active_pack(session, "appraise")
        results = cycle.results_for(session, pack, row)
        names = {world.users[n]: (n, n.title()) for n in ("ann", "bob", "cai", "dan")}
        columns, rows = results_table(results, names)
    assert columns == [
        "username", "name", "won", "training", "group result", "group capability",
        "final_score", "grade", "bonus",
    ]  # fmt: skip
    text = csv_bytes(columns, rows).decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[1] == ["ann", "Ann", "120.00", "80.00", "120.00", "80.00", "108.00", "A", "1.2"]
    sheet = load_workbook(io.BytesIO(xlsx_bytes(columns, rows, "2026-10"))).active
    assert sheet is not None
    assert [c.value for c in sheet[2]][:3] == ["ann", "Ann", 120.0]
    assert sheet.cell(row=2, column=7).value == 108.0


# --- pages ---------------------------------------------------------------------------------------


def test_a_rep_reads_their_scorecard_only_once_published(world: World, auth: Any) -> None:
    with db.transaction(world.sessions) as session:
        row = world.open(session)
        world.rate(session, row, "ann", "4", comment="Knows the catalogue")
        cycle.add_note(
            session,
            row,
            rep_id=world.users["ann"],
            author=world.user(session, "boss"),
            text="Aim for 2000 in November",
        )
        cycle.close_period(
            session, active_pack(session, "appraise"), row, world.user(session, "admin")
        )
        row_id = row.id
    page = f"/appraisals/{row_id}/reps/{world.users['ann']}"
    auth.login("ann")
    assert auth.client.get(page).status_code == 403
    assert auth.client.get(f"/appraisals/{row_id}/reps/{world.users['bob']}").status_code == 403
    auth.logout()
    auth.login("admin")
    assert auth.post(f"/appraisals/{row_id}/publish").status_code == 302
    auth.logout()
    auth.login("ann")
    html = auth.client.get(page).get_data(as_text=True)
    assert "108.00" in html and "frozen" in html and "Knows the catalogue" in html
    assert "Aim for 2000 in November" in html
    assert 'data-item="won"' in html and "750" in html  # the target is explained
    won = re.search(r'<tr data-item="won">(.*?)</tr>', html, re.S)
    assert won is not None and re.search(r"[$¥€£]\s?750\b|750\s?[$¥€£]", won.group(1))  # money
    printable = auth.client.get(page + "/print")
    assert printable.status_code == 200 and "print.css" in printable.get_data(as_text=True)
    assert auth.client.get(f"/appraisals/{row_id}/export.csv").status_code == 403


def test_a_manager_rates_from_the_page_and_keeps_input_on_error(world: World, auth: Any) -> None:
    with db.transaction(world.sessions) as session:
        row_id = world.open(session).id
    auth.login("boss")
    url = f"/appraisals/{row_id}/rate/{world.users['bob']}"
    bad = auth.post(
        url, {"rating-training": "", "comment-training": "Needs coaching", "submit": "1"}
    )
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert "choose a rating before submitting" in html and "Needs coaching" in html
    auth.logout()
    auth.login("admin")  # opening one with a period typed wrong: said there, the text kept
    opened = auth.post(
        "/appraisals/open", {"scorecard": "appraise:monthly", "period": "November 2026"}
    )
    page = opened.get_data(as_text=True)
    assert opened.status_code == 400 and 'value="November 2026"' in page
    assert "&#39;November 2026&#39; is not a period" in page
    assert '<option value="appraise:monthly" selected>' in page
    auth.logout()
    auth.login("boss")
    auth.post("/locale", {"locale": "zh", "next": "/"})  # said in the reader's language
    html = auth.post(url, {"rating-training": "11", "submit": "1"}).get_data(as_text=True)
    assert "请选择 1 到 5 之间的整数" in html and "whole number" not in html
    auth.post("/locale", {"locale": "en", "next": "/"})
    assert (
        auth.post(
            url, {"rating-training": "3", "comment-training": "Needs coaching", "submit": "1"}
        ).status_code
        == 302
    )
    overview = auth.client.get(f"/appraisals/{row_id}").get_data(as_text=True)
    assert 'data-rep="bob"' in overview and 'data-rep="dan"' not in overview
    # handed in, a later save is handed in too (no draft button; an old page's draft keeps it)
    rate_page = auth.client.get(url).get_data(as_text=True)
    assert "Save draft" not in rate_page and "Submit changes" in rate_page
    auth.post(url, {"rating-training": "4", "comment-training": "Better", "save": "1"})
    with world.sessions() as session:
        ratings = cycle.ratings_of(session, session.get(AppraisalPeriod, row_id))
        assert cycle.submitted(ratings, world.users["bob"], "manager")
    assert auth.client.get(f"/appraisals/{row_id}/rate/{world.users['dan']}").status_code == 403
    assert 'data-testid="closed-note"' not in auth.client.get(url).get_data(as_text=True)
    with db.transaction(world.sessions) as session:
        row = session.get(AppraisalPeriod, row_id)
        pack = active_pack(session, "appraise")
        cycle.close_period(session, pack, row, world.user(session, "admin"))
    closed = auth.client.get(url).get_data(as_text=True)
    assert "This appraisal period is closed" in closed  # says why nothing can be changed
