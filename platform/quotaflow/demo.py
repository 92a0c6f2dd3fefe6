"""Reproducible demo company: org, logins, and deals, visits and payments since the start of
last year for the stock pack."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from quotaflow.appended import append_rows
from quotaflow.org.models import Team, User
from quotaflow.org.services import add_membership, add_user, ensure_team
from quotaflow.pipelines.models import StageMove
from quotaflow.records.models import Record
from quotaflow.records.services import HISTORY, create_record

DEMO_PASSWORD = "quotaflow-demo"

# region -> teams -> (manager, reps); names as a Chinese manufacturer's sales org would have them
ORG: dict[str, dict[str, tuple[str, list[str]]]] = {
    "east": {
        "east_key_accounts": (
            "Wang Fang",
            ["Li Wei", "Zhang Min", "Liu Yang", "Chen Jing", "Yang Lei"],
        ),
        "east_industrial": ("Zhao Qiang", ["Huang Li", "Zhou Tao", "Wu Xia", "Xu Gang"]),
    },
    "south": {
        "south_oem": ("Sun Hui", ["Ma Jun", "Hu Yan", "Guo Peng", "He Na", "Lin Feng"]),
    },
    "north": {
        "north_distribution": ("Gao Ming", ["Luo Bin", "Zheng Ying", "Liang Chao", "Song Jia"]),
    },
}
ACRONYMS = {"oem": "OEM"}  # written as people write them, not title-cased


def _team_name(key: str) -> str:
    """'south_oem' -> 'South OEM'."""
    return " ".join(ACRONYMS.get(w, w.capitalize()) for w in key.split("_"))


CUSTOMERS = [
    "Haier Smart Home",
    "Sany Heavy",
    "BYD Auto Parts",
    "Midea HVAC",
    "Gree Electric",
    "Weichai Power",
    "XCMG Machinery",
    "Zoomlion",
    "CRRC Qingdao",
    "Foxconn Precision",
    "Luxshare",
    "CATL Ningde",
    "Hikvision",
    "Inovance",
    "Sungrow Power",
    "Jiangling Motors",
    "Yutong Bus",
    "Shangfeng Pumps",
    "Delixi Electric",
    "Chint Electric",
]


@dataclass(frozen=True, slots=True)
class DemoLogin:
    """A demo account printed for the person who ran `quotaflow demo`."""

    username: str
    role: str
    team: str


@dataclass(frozen=True, slots=True)
class DemoResult:
    logins: list[DemoLogin]
    deals: int
    visits: int
    payments: int


def username_of(name: str) -> str:
    """'Li Wei' -> 'li.wei'."""
    return name.lower().replace(" ", ".")


def build_demo_org(
    session: Session, start: date
) -> tuple[list[DemoLogin], list[tuple[User, Team]]]:
    """Company → regions → teams, managers, reps, an admin; returns logins and (rep, team)."""
    company = ensure_team(session, key="company", name="ACME Industrial (demo)")
    admin = add_user(
        session, username="admin", display_name="Admin", password=DEMO_PASSWORD, is_admin=True
    )
    head = add_user(
        session,
        username="head.of.sales",
        display_name="Qian Hong",
        password=DEMO_PASSWORD,
        locale="zh",
    )
    add_membership(session, user=admin, team=company, role="sales_admin", valid_from=start)
    add_membership(session, user=head, team=company, role="sales_manager", valid_from=start)
    logins = [
        DemoLogin("admin", "admin", company.name),
        DemoLogin("head.of.sales", "sales_manager", company.name),
    ]
    reps: list[tuple[User, Team]] = []
    for region_key, teams in ORG.items():
        region = ensure_team(
            session, key=region_key, name=f"{region_key.title()} region", parent=company
        )
        for team_key, (manager_name, rep_names) in teams.items():
            team = ensure_team(session, key=team_key, name=_team_name(team_key), parent=region)
            manager = add_user(
                session,
                username=username_of(manager_name),
                display_name=manager_name,
                password=DEMO_PASSWORD,
            )
            add_membership(session, user=manager, team=team, role="sales_manager", valid_from=start)
            logins.append(DemoLogin(manager.username, "sales_manager", team.name))
            for rep_name in rep_names:
                rep = add_user(
                    session,
                    username=username_of(rep_name),
                    display_name=rep_name,
                    password=DEMO_PASSWORD,
                )
                add_membership(
                    session, user=rep, team=team, role="account_manager", valid_from=start
                )
                reps.append((rep, team))
                logins.append(DemoLogin(rep.username, "account_manager", team.name))
    return logins, reps


def month_starts(today: date, months: int = 12) -> list[date]:
    """First days of the `months` months ending with today's month, oldest first."""
    first = today.replace(day=1)
    out = []
    for back in range(months - 1, -1, -1):
        y, m = divmod(first.year * 12 + first.month - 1 - back, 12)
        out.append(date(y, m + 1, 1))
    return out


def at_noon(day: date) -> datetime:
    return datetime.combine(day, time(12, 0), tzinfo=UTC)


def random_day(rng: random.Random, month: date, today: date) -> date:
    """A working day in `month`, not after today."""
    nxt = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    last = min(nxt - timedelta(days=1), today)
    day = month + timedelta(days=rng.randint(0, max((last - month).days, 0)))
    while day.weekday() >= 5 and day > month:
        day -= timedelta(days=1)
    return day


ValuesFor = Callable[[random.Random, str], dict[str, Any]]

DEAL_STAGES_OPEN = ["initial_contact", "needs_confirmed", "quotation", "negotiation"]
INDUSTRIES = ["automotive", "electronics", "machinery", "energy", "home_appliances"]
PRODUCT_LINES = ["servo_motors", "plc_controllers", "industrial_sensors", "hydraulics"]
LOST_REASONS = ["price", "competitor", "timing", "other"]
VISIT_TYPES = ["onsite", "phone", "video", "exhibition"]
VISIT_OUTCOMES = ["positive", "neutral", "negative"]


@dataclass(frozen=True, slots=True)
class DemoDeal:
    values: dict[str, Any]
    stage: str
    amount: Decimal | None
    created: date
    closed: date | None


def demo_deal(rng: random.Random, month: date, today: date) -> DemoDeal:
    """One believable deal opened in `month`: older deals are mostly closed, recent ones open."""
    created = random_day(rng, month, today)
    potential = Decimal(round(rng.lognormvariate(12.6, 0.7), -3))
    amount = (potential * Decimal(str(round(rng.uniform(0.3, 0.9), 2)))).quantize(Decimal("100"))
    discount = rng.choices([0, 0.05, 0.08, 0.1, 0.12, 0.18, 0.25], [30, 20, 15, 15, 10, 7, 3])[0]
    values: dict[str, Any] = {
        "customer": rng.choice(CUSTOMERS),
        "industry": rng.choice(INDUSTRIES),
        "product_line": rng.choice(PRODUCT_LINES),
        "potential": potential,
        "discount": discount,
        "expected_close": (created + timedelta(days=rng.randint(30, 120))).isoformat(),
    }
    if discount > 0.15:
        values["approval_note"] = "Strategic account, volume commitment for next year"
    age = (today - created).days
    closing_chance = min(0.92, age / 110)
    if rng.random() < closing_chance:
        closed = min(created + timedelta(days=rng.randint(15, 95)), today)
        won = rng.random() < 0.42
        values["amount"] = amount
        if not won:
            values["lost_reason"] = rng.choices(LOST_REASONS, [40, 30, 20, 10])[0]
        return DemoDeal(values, "won" if won else "lost", amount, created, closed)
    stage = rng.choices(DEAL_STAGES_OPEN, [35, 30, 20, 15])[0]
    if stage in ("quotation", "negotiation"):
        values["amount"] = amount
    return DemoDeal(values, stage, values.get("amount"), created, None)


def demo_visit(rng: random.Random, month: date, today: date) -> dict[str, Any]:
    """One customer visit in `month`."""
    return {
        "customer": rng.choice(CUSTOMERS),
        "visit_date": random_day(rng, month, today).isoformat(),
        "visit_type": rng.choices(VISIT_TYPES, [50, 30, 15, 5])[0],
        "outcome": rng.choices(VISIT_OUTCOMES, [45, 40, 15])[0],
        "notes": rng.choice(
            [
                "Discussed Q3 volumes",
                "Technical clarification on specs",
                "Met procurement",
                "Plant tour",
                "Followed up on quotation",
            ]
        ),
    }


def load_demo_data(
    session: Session,
    *,
    pack_id: str,
    pack_version_id: int,
    seed: int,
    today: date,
    progress: Callable[[int], None] = lambda _n: None,
) -> DemoResult:
    """Org, logins, deals, visits, payments from the start of last year to `today` (so that
    targets split by last year's results have a whole year to go by); same seed, same data."""
    rng = random.Random(seed)
    months = month_starts(today, 12 + today.month)
    logins, reps = build_demo_org(session, months[0])
    deals = visits = payments = 0
    for rep, team in reps:
        skill = rng.uniform(0.7, 1.3)  # some reps sell more than others
        for month in months:
            for _ in range(round(rng.randint(5, 9) * skill)):
                deal = demo_deal(rng, month, today)
                record = create_record(
                    session,
                    pack_id=pack_id,
                    pack_version_id=pack_version_id,
                    form_id="deal",
                    owner_id=rep.id,
                    team_id=team.id,
                    values=deal.values,
                    actor_id=rep.id,
                    stage=deal.stage,
                    amount=deal.amount,
                    record_date=deal.created,
                    created_at=at_noon(deal.created),
                    closed_at=at_noon(deal.closed) if deal.closed else None,
                )
                _demo_moves(session, rng, record, deal, today)
                deals += 1
                payments += _demo_payment(
                    session,
                    rng,
                    deal,
                    today,
                    pack_id=pack_id,
                    pack_version_id=pack_version_id,
                    rep=rep,
                    team=team,
                )
            for _ in range(round(rng.randint(12, 22) * skill)):
                visit = demo_visit(rng, month, today)
                create_record(
                    session,
                    pack_id=pack_id,
                    pack_version_id=pack_version_id,
                    form_id="visit",
                    owner_id=rep.id,
                    team_id=team.id,
                    values=visit,
                    actor_id=rep.id,
                    record_date=date.fromisoformat(visit["visit_date"]),
                    created_at=at_noon(date.fromisoformat(visit["visit_date"])),
                )
                visits += 1
        progress(1)
    return DemoResult(logins, deals, visits, payments)


def _demo_payment(
    session: Session,
    rng: random.Random,
    deal: DemoDeal,
    today: date,
    *,
    pack_id: str,
    pack_version_id: int,
    rep: User,
    team: Team,
) -> int:
    """Most won deals are paid 10-60 days after closing; returns how many payments were made."""
    if deal.stage != "won" or deal.closed is None or deal.amount is None or rng.random() > 0.9:
        return 0
    paid_on = deal.closed + timedelta(days=rng.randint(10, 60))
    if paid_on > today:
        return 0
    values = {
        "customer": deal.values["customer"],
        "amount": deal.amount,
        "paid_on": paid_on.isoformat(),
    }
    create_record(
        session,
        pack_id=pack_id,
        pack_version_id=pack_version_id,
        form_id="payment",
        owner_id=rep.id,
        team_id=team.id,
        values=values,
        actor_id=rep.id,
        amount=deal.amount,
        record_date=paid_on,
        created_at=at_noon(paid_on),
    )
    return 1


def _demo_moves(
    session: Session, rng: random.Random, record: Record, deal: DemoDeal, today: date
) -> None:
    """Stage history for a demo deal: through the open stages, then to its final stage."""
    final = deal.stage
    if final == "won":
        path = [s for s in DEAL_STAGES_OPEN if s == "initial_contact" or rng.random() < 0.85]
    elif final == "lost":
        path = DEAL_STAGES_OPEN[: rng.randint(1, len(DEAL_STAGES_OPEN))]
    else:
        path = DEAL_STAGES_OPEN[: DEAL_STAGES_OPEN.index(final) + 1]
    if final in ("won", "lost"):
        path.append(final)
    start = at_noon(deal.created)
    end = at_noon(deal.closed) if deal.closed else at_noon(today)
    span = max((end - start).total_seconds(), 0.0)
    cuts = sorted(rng.uniform(0, span) for _ in path[1:-1]) + ([span] if deal.closed else [])
    if not deal.closed and len(path) > 1:
        cuts = sorted(rng.uniform(0, span * 0.8) for _ in path[1:])
    times = [start] + [start + timedelta(seconds=c) for c in cuts]
    previous = None
    history = []  # each move in the deal's timeline too, as a move in the app writes it
    for stage, moved_at in zip(path, times, strict=False):
        session.add(
            StageMove(
                record_id=record.id,
                pipeline_id="b2b",
                from_stage=previous,
                to_stage=stage,
                moved_by=record.owner_id,
                moved_at=moved_at,
            )
        )
        if previous is not None:
            history.append(
                {"record_id": record.id, "version_no": record.version_no, "action": "stage",
                 "changed_by": record.owner_id, "changed_at": moved_at,
                 "changes": {"stage": [previous, stage]}}
            )  # fmt: skip
        previous = stage
    if history:
        append_rows(session, HISTORY, history)
    last = times[min(len(path), len(times)) - 1]
    if deal.closed is None:  # open deals were last touched recently, some of them too long ago
        last = max(last, end - timedelta(days=rng.uniform(0, 20)))
    record.updated_at = last


def rep_count() -> int:
    """How many reps the demo creates (for progress bars)."""
    return sum(len(reps) for teams in ORG.values() for _mgr, reps in teams.values())
