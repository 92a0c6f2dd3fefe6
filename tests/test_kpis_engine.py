"""The KPI engine on SQLite and PostgreSQL: SQL aggregates equal a plain Python computation,
dated memberships, the team roll-up, time-zone boundaries, exact money, formula blanks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.kpis.engine import KpiEngine, KpiError
from quotaflow.kpis.periods import parse_period
from quotaflow.org.models import Membership, Team, User
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack, active_version
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import create_record
from tests.packfiles import write_pack

TZ = ZoneInfo("Asia/Shanghai")
CENT = Decimal("0.01")
PACK_FILES = {
    "pack.yaml": """\
        kind: pack
        id: kpitest
        name: KPI test
        version: 1.0.0
        timezone: Asia/Shanghai
        """,
    "forms/deal.yaml": """\
        kind: form
        id: deal
        label: Deal
        fields:
          - {id: customer, type: text}
          - {id: amount, type: money}
          - {id: fee, type: money}
          - {id: qty, type: number}
          - {id: due, type: date}
        """,
    "kpis/all.yaml": """\
        kind: kpi
        id: won_revenue
        unit: money
        aggregate: {form: deal, op: sum, field: amount, where: "stage == 'won'", date: closed_at}
        ---
        kind: kpi
        id: won_deals
        aggregate: {form: deal, op: count, where: "stage == 'won'", date: closed_at}
        ---
        kind: kpi
        id: lost_deals
        aggregate: {form: deal, op: count, where: "stage == 'lost'", date: closed_at}
        ---
        kind: kpi
        id: win_rate
        unit: percent
        formula: "won_deals / (won_deals + lost_deals)"
        ---
        kind: kpi
        id: avg_deal_size
        unit: money
        formula: "won_revenue / won_deals"
        ---
        kind: kpi
        id: avg_amount
        unit: money
        aggregate: {form: deal, op: avg, field: amount, date: closed_at}
        ---
        kind: kpi
        id: min_amount
        unit: money
        aggregate: {form: deal, op: min, field: amount, date: closed_at}
        ---
        kind: kpi
        id: max_amount
        unit: money
        aggregate: {form: deal, op: max, field: amount, date: closed_at}
        ---
        kind: kpi
        id: fees
        unit: money
        aggregate: {form: deal, op: sum, field: fee, where: "amount > 100", date: record_date}
        ---
        kind: kpi
        id: qty_total
        aggregate: {form: deal, op: sum, field: qty, date: due}
        ---
        kind: kpi
        id: max_qty
        aggregate: {form: deal, op: max, field: qty, date: due}
        ---
        kind: kpi
        id: customers
        aggregate: {form: deal, op: count_distinct, field: customer, date: record_date}
        ---
        kind: kpi
        id: deals_with_qty
        aggregate: {form: deal, op: count, field: qty, date: record_date}
        """,
}


@dataclass
class World:
    sessions: sessionmaker[Session]
    pack_id: str
    version_id: int
    users: dict[str, int]
    teams: dict[str, int]

    def session(self) -> Session:
        return self.sessions()

    def engine(self, session: Session) -> KpiEngine:
        return KpiEngine(session, active_pack(session, self.pack_id), today=date(2025, 12, 31))

    def add(self, session: Session, owner: str, **kw: Any) -> Record:
        values = kw.pop("values", {})
        return create_record(
            session,
            pack_id=self.pack_id,
            pack_version_id=self.version_id,
            form_id="deal",
            owner_id=self.users[owner],
            team_id=None,
            values=values,
            actor_id=None,
            **kw,
        )


def _team(session: Session, key: str, parent: int | None) -> int:
    team = Team(key=key, name=key.title(), parent_id=parent)
    session.add(team)
    session.flush()
    return team.id


def _user(session: Session, name: str) -> int:
    user = User(username=name, display_name=name.title())
    session.add(user)
    session.flush()
    return user.id


def _member(session: Session, user: int, team: int, start: date, end: date | None = None) -> None:
    session.add(Membership(user_id=user, team_id=team, role="rep", valid_from=start, valid_to=end))


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    return make_world(sessions, tmp_path)


def make_world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    """company > east > (east_a, east_b), company > west; ann moves east_a -> west on 15 Aug."""
    pack = load_pack(write_pack(tmp_path / "pack", PACK_FILES))
    with db.transaction(sessions) as session:
        install_pack(session, pack, actor="test")
        version = active_version(session, pack.id).id
        company = _team(session, "company", None)
        east = _team(session, "east", company)
        east_a = _team(session, "east_a", east)
        east_b = _team(session, "east_b", east)
        west = _team(session, "west", company)
        users = {n: _user(session, n) for n in ("ann", "bob", "cai")}
        start = date(2024, 1, 1)
        _member(session, users["ann"], east_a, start, date(2025, 8, 15))
        _member(session, users["ann"], west, date(2025, 8, 15))
        _member(session, users["bob"], east_a, start)
        _member(session, users["bob"], east_b, date(2025, 7, 1))  # in two teams at once
        _member(session, users["cai"], east_b, start)
        teams = {"company": company, "east": east, "east_a": east_a, "east_b": east_b}
        teams["west"] = west
    return World(sessions, pack.id, version, users, teams)


def _at(day: date, hour: int = 12, minute: int = 0) -> datetime:
    """Local (Shanghai) time of day as a UTC instant."""
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=TZ).astimezone(UTC)


# --- examples -----------------------------------------------------------------------------------


def test_a_deal_closed_late_on_the_last_day_counts_in_that_quarter(world: World) -> None:
    with db.transaction(world.sessions) as session:
        world.add(
            session,
            "cai",
            stage="won",
            amount=Decimal("100"),
            closed_at=_at(date(2025, 9, 30), 23, 30),
        )
        world.add(
            session,
            "cai",
            stage="won",
            amount=Decimal("7"),
            closed_at=_at(date(2025, 10, 1), 0, 30),
        )
        world.add(
            session, "cai", stage="won", amount=Decimal("1"), closed_at=_at(date(2025, 7, 1), 0, 0)
        )
    with world.session() as session:
        engine = world.engine(session)
        q3 = engine.figures("won_revenue", parse_period("2025-Q3"), "company").values[None]
        q4 = engine.figures("won_revenue", parse_period("2025-Q4"), "company").values[None]
    assert (q3, q4) == (Decimal("101.00"), Decimal("7.00"))


def test_a_rep_who_changes_team_counts_for_the_old_team_before_and_the_new_one_after(
    world: World,
) -> None:
    with db.transaction(world.sessions) as session:
        world.add(
            session,
            "ann",
            stage="won",
            amount=Decimal("10"),
            closed_at=_at(date(2025, 8, 14), 23, 59),
        )
        world.add(
            session,
            "ann",
            stage="won",
            amount=Decimal("20"),
            closed_at=_at(date(2025, 8, 15), 0, 1),
        )
        world.add(session, "cai", stage="won", amount=Decimal("5"), closed_at=_at(date(2025, 8, 1)))
        world.add(session, "bob", stage="won", amount=Decimal("3"), closed_at=_at(date(2025, 8, 1)))
    t = world.teams
    with world.session() as session:
        engine = world.engine(session)
        by_team = engine.figures("won_revenue", parse_period("2025-Q3"), "team").values
        by_rep = engine.figures("won_revenue", parse_period("2025-Q3"), "rep").values
    assert by_team[t["east_a"]] == Decimal("13.00")  # ann before the move + bob
    assert by_team[t["west"]] == Decimal("20.00")  # ann after the move
    assert by_team[t["east_b"]] == Decimal("8.00")  # cai + bob (in both teams since July)
    assert by_team[t["east"]] == Decimal("18.00")  # bob counted once for the region
    assert by_team[t["company"]] == Decimal("38.00")
    assert by_rep[world.users["ann"]] == Decimal("30.00")


def test_formulas_keep_blank_semantics_and_money_rounds_to_the_cent(world: World) -> None:
    with db.transaction(world.sessions) as session:
        for amount in ("10.00", "10.00", "10.01"):
            world.add(
                session, "ann", stage="won", amount=Decimal(amount), closed_at=_at(date(2025, 2, 1))
            )
        world.add(session, "ann", stage="lost", closed_at=_at(date(2025, 2, 2)))
    with world.session() as session:
        engine = world.engine(session)
        figures = engine.compute(
            ["win_rate", "avg_deal_size", "min_amount"], parse_period("2025-Q1"), "rep"
        )
    ann, bob = world.users["ann"], world.users["bob"]
    assert figures["win_rate"].values[ann] == 0.75
    assert figures["win_rate"].values[bob] is None  # 0 / 0 is blank, not 0
    assert figures["avg_deal_size"].values[ann] == Decimal("10.00")  # 30.01 / 3
    assert figures["avg_deal_size"].values[bob] is None
    assert figures["min_amount"].values[bob] is None  # no records: blank, not 0


def test_money_is_exact_over_a_million_cents(world: World) -> None:
    with db.transaction(world.sessions) as session:
        for i in range(300):
            world.add(
                session,
                "bob",
                stage="won",
                amount=Decimal("3333.33"),
                record_date=date(2025, 1, 2),
                closed_at=_at(date(2025, 1, 2)),
                values={
                    "fee": Decimal("0.1") if i % 2 else Decimal("0.2"),
                    "amount": Decimal("3333.33"),
                },
            )
    with world.session() as session:
        engine = world.engine(session)
        revenue = engine.figures("won_revenue", parse_period("2025"), "company").values[None]
        fees = engine.figures("fees", parse_period("2025"), "company").values[None]
    assert revenue == Decimal("999999.00")
    assert fees == Decimal("45.00")
    assert isinstance(revenue, Decimal) and isinstance(fees, Decimal)


def test_unknown_kpi_is_a_message(world: World) -> None:
    with world.session() as session:
        with pytest.raises(KpiError, match="no KPI 'revenue' in pack kpitest"):
            world.engine(session).figures("revenue", parse_period("2025"), "rep")


# --- property: SQL == Python --------------------------------------------------------------------

STAGES = ["won", "lost", "open", None]
CUSTOMERS = ["acme", "globex", "initech", None]
DAY0 = date(2025, 6, 1)

record_strategy = st.fixed_dictionaries(
    {
        "owner": st.sampled_from(["ann", "bob", "cai"]),
        "stage": st.sampled_from(STAGES),
        "amount": st.one_of(st.none(), st.integers(0, 10**9).map(lambda c: Decimal(c).scaleb(-2))),
        "fee": st.one_of(st.none(), st.integers(0, 10**7).map(lambda c: Decimal(c).scaleb(-2))),
        "qty": st.one_of(
            st.none(), st.integers(-50, 50), st.floats(-100, 100).map(lambda f: round(f, 2))
        ),
        "customer": st.sampled_from(CUSTOMERS),
        # minutes around the Q3 bounds, so local-midnight edges are exercised
        "closed": st.one_of(st.none(), st.integers(-60 * 24 * 40, 60 * 24 * 140)),
        "day": st.integers(-40, 140),
        "due": st.one_of(st.none(), st.integers(-40, 140)),
    }
)


def _local_day(moment: datetime) -> date:
    return moment.astimezone(TZ).date()


def _team_of(world: World, user: str, day: date) -> set[int]:
    """Reference attribution: the teams (and ancestors) of the memberships valid that day."""
    t, teams = world.teams, set()
    spans = {
        "ann": [
            (t["east_a"], date(2024, 1, 1), date(2025, 8, 15)),
            (t["west"], date(2025, 8, 15), None),
        ],
        "bob": [(t["east_a"], date(2024, 1, 1), None), (t["east_b"], date(2025, 7, 1), None)],
        "cai": [(t["east_b"], date(2024, 1, 1), None)],
    }[user]
    parents = {
        t["east_a"]: t["east"],
        t["east_b"]: t["east"],
        t["east"]: t["company"],
        t["west"]: t["company"],
    }
    for team, start, end in spans:
        if start <= day and (end is None or day < end):
            while team is not None:
                teams.add(team)
                team = parents.get(team)
    return teams


def _reference(
    world: World, rows: list[dict[str, Any]], period_text: str, by: str
) -> dict[str, dict[Any, Any]]:
    period = parse_period(period_text)
    out: dict[str, dict[Any, list[dict[str, Any]]]] = {}
    kpis: dict[
        str, tuple[Callable[[dict[str, Any]], date | None], Callable[[dict[str, Any]], bool]]
    ] = {
        "won_revenue": (lambda r: r["closed_day"], lambda r: r["stage"] == "won"),
        "won_deals": (lambda r: r["closed_day"], lambda r: r["stage"] == "won"),
        "lost_deals": (lambda r: r["closed_day"], lambda r: r["stage"] == "lost"),
        "avg_amount": (lambda r: r["closed_day"], lambda r: True),
        "min_amount": (lambda r: r["closed_day"], lambda r: True),
        "max_amount": (lambda r: r["closed_day"], lambda r: True),
        "fees": (
            lambda r: r["record_date"],
            lambda r: r["amount"] is not None and r["amount"] > 100,
        ),
        "qty_total": (lambda r: r["due_day"], lambda r: True),
        "max_qty": (lambda r: r["due_day"], lambda r: True),
        "customers": (lambda r: r["record_date"], lambda r: True),
        "deals_with_qty": (lambda r: r["record_date"], lambda r: True),
    }
    for kpi, (day_of, keep) in kpis.items():
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in rows:
            day = day_of(r)
            if day is None or not period.contains(day) or not keep(r):
                continue
            if by == "company":
                keys: set[Any] = {None}
            elif by == "rep":
                keys = {world.users[r["owner"]]}
            else:
                keys = _team_of(world, r["owner"], day)
            for key in keys:
                groups.setdefault(key, []).append(r)
        out[kpi] = groups
    result: dict[str, dict[Any, Any]] = {}

    def present(values: list[Any]) -> list[Any]:
        return [v for v in values if v is not None]

    for kpi, groups in out.items():
        result[kpi] = {}
        for key, rs in groups.items():
            amounts = present([r["amount"] for r in rs])
            qtys = present([r["qty"] for r in rs])
            value: Any
            if kpi == "won_revenue":
                value = sum(amounts, Decimal("0.00"))
            elif kpi in ("won_deals", "lost_deals"):
                value = len(rs)
            elif kpi == "avg_amount":
                value = (
                    (sum(amounts) / len(amounts)).quantize(CENT, ROUND_HALF_UP) if amounts else None
                )
            elif kpi == "min_amount":
                value = min(amounts) if amounts else None
            elif kpi == "max_amount":
                value = max(amounts) if amounts else None
            elif kpi == "fees":
                value = sum(present([r["fee"] for r in rs]), Decimal("0.00"))
            elif kpi == "qty_total":
                value = sum(qtys) if qtys else 0
            elif kpi == "max_qty":
                value = max(qtys) if qtys else None
            elif kpi == "customers":
                value = len(set(present([r["customer"] for r in rs])))
            else:
                value = len(qtys)
            result[kpi][key] = value
    return result


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    return abs(float(a) - float(b)) < 1e-6


@pytest.fixture
def clean_world(world: World) -> Iterator[World]:
    yield world


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    rows=st.lists(record_strategy, max_size=25),
    period_text=st.sampled_from(["2025-Q3", "2025-08", "2025-W31", "2025-06-20..2025-09-03"]),
    by=st.sampled_from(["rep", "team", "company"]),
)
def test_sql_aggregates_equal_a_python_computation(
    clean_world: World, rows: list[dict[str, Any]], period_text: str, by: str
) -> None:
    world = clean_world
    q3_start = datetime(2025, 6, 30, 16, 0, tzinfo=UTC)  # Shanghai midnight, 1 July
    with db.transaction(world.sessions) as session:
        session.execute(delete(RecordHistory))
        session.execute(delete(Record))
        for row in rows:
            closed = None if row["closed"] is None else q3_start + timedelta(minutes=row["closed"])
            row["closed_day"] = None if closed is None else _local_day(closed)
            row["record_date"] = DAY0 + timedelta(days=row["day"])
            row["due_day"] = None if row["due"] is None else DAY0 + timedelta(days=row["due"])
            values = {k: row[k] for k in ("amount", "fee", "qty", "customer") if row[k] is not None}
            if row["due_day"] is not None:
                values["due"] = row["due_day"]
            world.add(
                session,
                row["owner"],
                stage=row["stage"],
                amount=row["amount"],
                record_date=row["record_date"],
                closed_at=closed,
                values=values,
            )
    expected = _reference(world, rows, period_text, by)
    with world.session() as session:
        engine = world.engine(session)
        figures = engine.compute(list(expected), parse_period(period_text), by)  # type: ignore[arg-type]
    for kpi, want in expected.items():
        got = figures[kpi].values
        for key, value in want.items():
            assert _same(got.get(key), value), (kpi, key, got.get(key), value)
        for key, value in got.items():
            if key not in want:  # scopes with no records: counts/sums 0, the rest blank
                assert value in (0, None), (kpi, key, value)


def test_a_series_of_months_equals_each_month_computed_alone(world: World) -> None:
    """compute_series (one query per KPI for the whole year) gives, for every month, grouping
    and KPI — sums, counts, averages, min/max, count distinct, formulas — exactly what
    compute() gives month by month, across ann's mid-August team change and bob's two teams."""
    import random

    rng = random.Random(42)
    with db.transaction(world.sessions) as session:
        for _ in range(120):
            day = date(2025, 1, 1) + timedelta(days=rng.randrange(365))
            stage = rng.choice(["won", "won", "lost", None])
            amount = Decimal(rng.randrange(100, 900_000)) / 100
            world.add(
                session,
                rng.choice(["ann", "bob", "cai"]),
                stage=stage,
                amount=amount,
                record_date=day,
                closed_at=_at(day, rng.randrange(24), rng.randrange(60)) if stage else None,
                values={
                    "customer": rng.choice(["Acme", "Beta", "Gree", "Haier"]),
                    "amount": str(amount),
                    "fee": str(Decimal(rng.randrange(0, 5000)) / 100),
                    "qty": rng.randrange(0, 40),
                    "due": (day + timedelta(days=rng.randrange(60))).isoformat(),
                },
            )
    months = [parse_period(f"2025-{m:02d}") for m in range(1, 13)]
    kpis = [
        "won_revenue", "won_deals", "lost_deals", "win_rate", "avg_deal_size", "avg_amount",
        "min_amount", "max_amount", "fees", "qty_total", "max_qty", "customers", "deals_with_qty",
    ]  # fmt: skip
    with world.session() as session:
        engine = world.engine(session)
        series = engine.compute_series(kpis, months, ["rep", "team", "company"])
        for i, month in enumerate(months):
            for by in ("rep", "team", "company"):
                alone = engine.compute(kpis, month, by)  # type: ignore[arg-type]
                for kpi in kpis:
                    assert series[(by, i)][kpi].values == alone[kpi].values, (month.label, by, kpi)
