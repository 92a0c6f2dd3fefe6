"""Leaderboards: competition ranks with ties, blanks last, rank change against the previous
period, awards (top N of the board or of another KPI, with a minimum), team scope, the
pack checks, the CLI and the page (who may see which board)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.kpis.periods import parse_period
from quotaflow.leaderboards.ranking import competition_ranks, ordered, winners
from quotaflow.leaderboards.services import Board, LeaderboardError, leaderboard
from quotaflow.org.models import Membership, Team
from quotaflow.org.services import add_user
from quotaflow.packs.install import install_pack
from quotaflow.packs.problems import PackInvalid
from quotaflow.packs.services import active_pack, active_version_id
from quotaflow.packs.validate import load_pack
from quotaflow.records.services import create_record
from tests.conftest import TEST_PASSWORD
from tests.packfiles import write_pack

PACK_FILES = {
    "pack.yaml": """\
        kind: pack
        id: boards
        name: Boards
        version: 1.0.0
        timezone: UTC
        roles:
          - {id: director, capability: manager}
        """,
    "forms/deal.yaml": """\
        kind: form
        id: deal
        label: Deal
        fields:
          - {id: amount, type: money}
        """,
    "forms/visit.yaml": """\
        kind: form
        id: visit
        label: Visit
        fields:
          - {id: day, type: date, required: true}
        """,
    "kpis/all.yaml": """\
        kind: kpi
        id: won
        unit: money
        aggregate: {form: deal, op: sum, field: amount, where: "stage == 'won'", date: closed_at}
        ---
        kind: kpi
        id: lost
        higher_is_better: false
        aggregate: {form: deal, op: count, where: "stage == 'lost'", date: closed_at}
        ---
        kind: kpi
        id: visits
        aggregate: {form: visit, op: count, date: record_date}
        """,
    "leaderboards/boards.yaml": """\
        kind: leaderboard
        id: sellers
        label: {en: Top sellers, zh: 销售排行}
        kpi: won
        period: month
        limit: 2
        awards:
          - {label: Podium, top: 2}
          - {label: Service star, kpi: visits, top: 1, min: 2}
        ---
        kind: leaderboard
        id: fewest_lost
        kpi: lost
        ---
        kind: leaderboard
        id: teams
        kpi: won
        by: team
        period: quarter
        ---
        kind: leaderboard
        id: directors_only
        kpi: won
        roles: [director]
        """,
}
NOV, OCT = parse_period("2026-11"), parse_period("2026-10")


# --- ranks (pure) ---------------------------------------------------------------------------


def test_ties_share_a_rank_and_the_next_rank_skips() -> None:
    ranks = competition_ranks({"a": 5, "b": 9, "c": 5, "d": 1, "e": None})
    assert ranks == {"b": 1, "a": 2, "c": 2, "d": 4, "e": None}
    assert ordered(ranks, str.upper) == ["b", "a", "c", "d", "e"]


def test_lower_is_better_ranks_ascending() -> None:
    assert competition_ranks({"a": 3, "b": 0, "c": 3}, higher_is_better=False) == {
        "b": 1,
        "a": 2,
        "c": 2,
    }


@given(st.dictionaries(st.integers(0, 30), st.one_of(st.none(), st.integers(-5, 5)), max_size=25))
def test_a_rank_is_one_plus_how_many_did_strictly_better(values: dict[int, int | None]) -> None:
    ranks = competition_ranks(values)
    for key, value in values.items():
        if value is None:
            assert ranks[key] is None
        else:
            better = sum(1 for v in values.values() if v is not None and v > value)
            assert ranks[key] == better + 1


def test_award_winners_include_ties_at_the_line_but_never_blank_or_zero() -> None:
    values = {"a": 10, "b": 7, "c": 7, "d": 3, "e": 0, "f": None}
    assert winners(values, 2) == {"a", "b", "c"}
    assert winners(values, 9) == {"a", "b", "c", "d"}
    assert winners(values, 9, minimum=Decimal(7)) == {"a", "b", "c"}
    assert winners({"a": 0, "b": None}, 1) == set()


# --- boards from records ----------------------------------------------------------------------


@dataclass
class World:
    sessions: sessionmaker[Session]
    users: dict[str, int]
    teams: dict[str, int]

    def board(self, board_id: str, period: Any = NOV, **kw: Any) -> Board:
        with self.sessions() as session:
            return leaderboard(session, active_pack(session, "boards"), board_id, period, **kw)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    """north: ann, bob; south: cai, dan. November: ann 500, bob 300, cai 300, dan nothing;
    October: dan 900, cai 800, bob 100, ann 50 (ann's rank 4 -> 1 is +3). Visits in November: cai 3, ann 1."""
    pack = load_pack(write_pack(tmp_path / "pack", PACK_FILES))
    with db.transaction(sessions) as session:
        install_pack(session, pack, actor="test")
        version = active_version_id(session, "boards")
        company = Team(key="company", name="Company")
        session.add(company)
        session.flush()
        teams = {"company": company.id}
        for key in ("north", "south"):
            team = Team(key=key, name=key.title(), parent_id=company.id)
            session.add(team)
            session.flush()
            teams[key] = team.id
        users = {}
        for name, team in (("ann", "north"), ("bob", "north"), ("cai", "south"), ("dan", "south")):
            user = add_user(
                session, username=name, display_name=name.title(), password=TEST_PASSWORD
            )
            users[name] = user.id
            session.add(
                Membership(
                    user_id=user.id, team_id=teams[team], role="rep", valid_from=date(2026, 1, 1)
                )
            )
        boss = add_user(session, username="boss", display_name="Boss", password=TEST_PASSWORD)
        session.add(
            Membership(
                user_id=boss.id, team_id=company.id, role="director", valid_from=date(2026, 1, 1)
            )
        )
        users["boss"] = boss.id

        def deal(owner: str, amount: str, day: date, stage: str = "won") -> None:
            create_record(
                session, pack_id="boards", pack_version_id=version, form_id="deal",
                owner_id=users[owner], team_id=None, values={"amount": amount}, actor_id=None,
                stage=stage, amount=Decimal(amount), record_date=day, closed_at=_at(day),
            )  # fmt: skip

        def visit(owner: str, day: date) -> None:
            create_record(
                session, pack_id="boards", pack_version_id=version, form_id="visit",
                owner_id=users[owner], team_id=None, values={"day": day.isoformat()},
                actor_id=None, record_date=day,
            )  # fmt: skip

        deal("ann", "500", date(2026, 11, 3))
        deal("bob", "300", date(2026, 11, 4))
        deal("cai", "200", date(2026, 11, 5))
        deal("cai", "100", date(2026, 11, 30))
        deal("dan", "700", date(2026, 11, 6), stage="lost")
        deal("dan", "900", date(2026, 10, 6))
        deal("cai", "800", date(2026, 10, 7))
        deal("bob", "100", date(2026, 10, 8))
        deal("ann", "50", date(2026, 10, 9))
        deal("ann", "10", date(2026, 10, 10), stage="lost")
        for day in (1, 2, 3):
            visit("cai", date(2026, 11, day))
        visit("ann", date(2026, 11, 4))
    return World(sessions, users, teams)


def _table(board: Board) -> list[tuple[str, Any, int | None, int | None, tuple[str, ...]]]:
    return [(r.name, r.value, r.rank, r.change, r.awards) for r in board.rows]


def test_board_ranks_ties_moves_and_awards(world: World) -> None:
    board = world.board("sellers")
    assert _table(board) == [
        ("Ann", Decimal("500.00"), 1, 3, ("Podium",)),
        ("Bob", Decimal("300.00"), 2, 1, ("Podium",)),
        ("Cai", Decimal("300.00"), 2, 0, ("Podium", "Service star")),
        ("Dan", Decimal("0.00"), 4, -3, ()),
    ]
    assert board.previous == OCT


def test_the_limit_cuts_the_list_but_a_rep_still_sees_their_own_row(world: World) -> None:
    board = world.board("sellers")
    assert [r.name for r in board.shown()] == ["Ann", "Bob"]
    assert [r.name for r in board.shown(world.users["dan"])] == ["Ann", "Bob", "Dan"]


def test_lower_is_better_kpi_board(world: World) -> None:
    board = world.board("fewest_lost")
    ranks = {r.name: r.rank for r in board.rows}
    assert ranks["Dan"] == 4 and ranks["Ann"] == 1 and ranks["Bob"] == 1


def test_a_team_scope_keeps_only_its_reps_and_ranks_among_them(world: World) -> None:
    board = world.board("sellers", team_id=world.teams["south"])
    assert _table(board) == [
        ("Cai", Decimal("300.00"), 1, 1, ("Podium", "Service star")),
        ("Dan", Decimal("0.00"), 2, -1, ()),
    ]


def test_team_board_ranks_the_teams_where_reps_sit(world: World) -> None:
    board = world.board("teams", parse_period("2026-Q4"))
    assert _table(board) == [
        ("South", Decimal("2000.00"), 1, 0, ()),  # Q3: both teams at 0, tied first
        ("North", Decimal("950.00"), 2, -1, ()),
    ]


def test_a_new_empty_sub_team_neither_hides_its_parent_nor_joins_the_board(world: World) -> None:
    with db.transaction(world.sessions) as session:
        session.add(Team(key="north-ka", name="North KA", parent_id=world.teams["north"]))
    board = world.board("teams", parse_period("2026-Q4"))
    assert [(r.name, r.value) for r in board.rows] == [
        ("South", Decimal("2000.00")),
        ("North", Decimal("950.00")),  # its reps sit in North, not in the new sub-team
    ]
    # a rep sitting in the company itself does not put the company, which holds every team's
    # figures, at the top of a board of teams
    with db.transaction(world.sessions) as session:
        eve = add_user(session, username="eve", display_name="Eve", password=TEST_PASSWORD)
        session.add(Membership(user_id=eve.id, team_id=world.teams["company"], role="rep",
                               valid_from=date(2026, 1, 1)))  # fmt: skip
    again = world.board("teams", parse_period("2026-Q4"))
    assert [r.name for r in again.rows] == ["South", "North"]


def test_unknown_board_and_team_are_refused(world: World) -> None:
    with pytest.raises(LeaderboardError, match="no leaderboard 'nope'.*sellers"):
        world.board("nope")
    with pytest.raises(LeaderboardError, match="no team"):
        world.board("sellers", team_id=99999)


def test_pack_check_names_a_board_without_a_measure(tmp_path: Path) -> None:
    files = dict(PACK_FILES)
    files["leaderboards/bad.yaml"] = """\
        kind: leaderboard
        id: bad
        kpi: wonn
        scorecard: nope
        awards: [{label: X, kpi: visit}]
        """
    with pytest.raises(PackInvalid) as info:
        load_pack(write_pack(tmp_path / "bad", files))
    text = str(info.value)
    assert "exactly one of: kpi, scorecard" in text
    assert "did you mean 'won'" in text and "did you mean 'visits'" in text


# --- CLI and pages ------------------------------------------------------------------------------


def test_cli_prints_ranks_changes_and_awards(world: World, runner: Any) -> None:
    from quotaflow.cli import main

    result = runner.invoke(
        main, ["leaderboard", "show", "sellers", "--period", "2026-11", "--format", "csv"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "rank,name,won,change,awards"
    assert lines[1:] == [
        "1,Ann,500.00,+3,Podium",
        "2,Bob,300.00,+1,Podium",
        '2,Cai,300.00,=,"Podium, Service star"',
        "4,Dan,0.00,-3,",
    ]
    bad = runner.invoke(main, ["leaderboard", "show", "sellers", "--team", "nowhere"])
    assert bad.exit_code != 0 and "no team with key 'nowhere'" in bad.output


def test_page_shows_the_board_and_hides_role_restricted_ones(world: World, auth: Any) -> None:
    auth.login("dan")
    client = auth.client
    index = client.get("/leaderboards").get_data(as_text=True)
    assert "Top sellers" in index and "directors_only" not in index
    page = client.get("/leaderboards/boards/sellers?period=2026-11")
    assert page.status_code == 200
    body = page.get_data(as_text=True).split("<tbody>")[1]
    assert body.index("Ann") < body.index("Bob") < body.index("Dan")
    assert 'class="me"' in body and "Podium" in body
    assert "Cai" not in body  # below the limit of 2, and not the viewer
    assert client.get("/leaderboards/boards/directors_only").status_code == 403
    assert client.get("/leaderboards/boards/nope").status_code == 404
    bad = client.get("/leaderboards/boards/sellers?period=junk")
    assert bad.status_code == 200 and "&#39;junk&#39; is not a period" in bad.get_data(as_text=True)
    assert "The board shows " in bad.get_data(as_text=True)  # which one, since not the typed
    auth.post("/locale", {"locale": "zh", "next": "/"})
    zh = client.get("/leaderboards/boards/sellers?period=2026年11月").get_data(as_text=True)
    assert "“2026年11月”不是有效的期间" in zh and "排行榜显示的是" in zh
    auth.post("/locale", {"locale": "en", "next": "/"})


def test_a_role_named_on_the_board_opens_it(world: World, auth: Any) -> None:
    auth.login("boss")
    assert "directors_only" in auth.client.get("/leaderboards").get_data(as_text=True)
    assert auth.client.get("/leaderboards/boards/directors_only").status_code == 200


def test_the_index_shows_each_boards_first_three_and_the_readers_place(
    world: World, auth: Any, monkeypatch: Any
) -> None:
    import quotaflow.leaderboards.views as views

    class November:  # the boards' current period is the one holding today
        @staticmethod
        def today() -> date:
            return date(2026, 11, 24)

    monkeypatch.setattr(views, "date", November)
    auth.login("dan")
    index = auth.client.get("/leaderboards").get_data(as_text=True)
    card = index.split('data-testid="board-sellers"')[1].split("</section>")[0]
    places = re.findall(
        r'<li( class="me"[^>]*)?>\s*<span class="rank">(\d+)</span>\s*<span class="who">(\w+)</span>',
        card,
    )
    assert [(rank, who, bool(me)) for me, rank, who in places] == [
        ("1", "Ann", False), ("2", "Bob", False), ("2", "Cai", False), ("4", "Dan", True),
    ]  # fmt: skip
    assert "2026-11" in card
    auth.logout()
    auth.login("ann")  # on the podium: no extra row of her own
    card = auth.client.get("/leaderboards").get_data(as_text=True).split('board-sellers"')[1]
    assert card.split("</section>")[0].count("<li") == 3
