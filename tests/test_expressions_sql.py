"""KPI filters translated to SQL select exactly the records Python evaluation selects,
on SQLite and PostgreSQL, on random data."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow.expressions import ExpressionError, ValueType, compile_expression
from quotaflow.expressions.sql import record_column_resolver, types_for_records
from quotaflow.org.models import User
from quotaflow.packs.models import Pack, PackVersion
from quotaflow.records.models import Record

V = ValueType
FORM_FIELDS = {
    "visits": V.NUMBER,
    "region": V.TEXT,
    "won": V.BOOL,
    "due": V.DATE,
    "share": V.PERCENT,
    "seen_at": V.DATETIME,
}
CTX = types_for_records(FORM_FIELDS)
TODAY = date(2025, 3, 14)
STAGES = ["open", "won", "lost", "Won"]
REGIONS = ["N", "S", "E", "north", "n"]


def _maybe(rng: random.Random, value: Any) -> Any:
    return None if rng.random() < 0.2 else value


def _day(rng: random.Random) -> date:
    return date(2023, 1, 1) + timedelta(days=rng.randrange(3 * 365))


def _moment(rng: random.Random) -> datetime:
    day = _day(rng)
    if rng.random() < 0.3:  # exact midnights: the edge of date vs date-time comparisons
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    return datetime(
        day.year,
        day.month,
        day.day,
        rng.randrange(24),
        rng.randrange(60),
        rng.randrange(60),
        tzinfo=UTC,
    )


def _random_record(rng: random.Random) -> dict[str, Any]:
    cents = rng.choice([rng.randrange(-50_000, 500_000), 100_000, 0, 12_345, 99_999])
    return {
        "stage": _maybe(rng, rng.choice(STAGES)),
        "amount": _maybe(rng, Decimal(cents) / 100),
        "record_date": _maybe(rng, _day(rng)),
        "closed_at": _maybe(rng, _moment(rng)),
        "created_at": _moment(rng),
        "visits": _maybe(rng, rng.choice([rng.randrange(0, 20), 2.5, 0, 10])),
        "region": _maybe(rng, rng.choice(REGIONS)),
        "won": _maybe(rng, rng.random() < 0.5),
        "due": _maybe(rng, _day(rng)),
        "share": _maybe(rng, rng.choice([0.1, 0.15, 0.5, 1.0, 0.0])),
        "seen_at": _maybe(rng, _moment(rng).replace(microsecond=0)),
    }


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date) else value


NUMBER_TESTS = [
    ("visits", ["0", "2.5", "10", "3"]),
    ("amount", ["1000", "0", "123.45", "999.99", "-10"]),
    ("share", ["0.15", "0.5", "0"]),
    ("YEAR(record_date)", ["2024", "2023"]),
    ("MONTH(closed_at)", ["6", "12", "1"]),
    ("QUARTER(due)", ["1", "4"]),
    ("QUARTER(created_at)", ["2", "3"]),
    ("YEAR(seen_at)", ["2024"]),
    ("DAYS(TODAY(), record_date)", ["30", "400", "0"]),
    ("DAYS(closed_at, record_date)", ["0", "-5", "100"]),
    ("DAYS(due, created_at)", ["0", "10"]),
]
DATE_TESTS = [
    ("record_date", ["DATE(2024, 6, 1)", "DATE(2023, 1, 1)", "TODAY()"]),
    ("closed_at", ["DATE(2024, 6, 1)", "DATE(2025, 1, 1)"]),
    ("due", ["DATE(2024, 2, 29)"]),
    ("seen_at", ["DATE(2024, 6, 1)"]),
    ("created_at", ["DATE(2024, 1, 1)"]),
]
OPS = ["==", "!=", "<", "<=", ">", ">="]
BLANKABLE = [
    "stage",
    "amount",
    "record_date",
    "closed_at",
    "visits",
    "region",
    "won",
    "due",
    "share",
    "seen_at",
]


def _atom(rng: random.Random) -> str:
    kind = rng.randrange(9)
    if kind == 0:
        field, literals = rng.choice(NUMBER_TESTS)
        return f"{field} {rng.choice(OPS)} {rng.choice(literals)}"
    if kind == 1:
        field, literals = rng.choice(DATE_TESTS)
        return f"{field} {rng.choice(OPS)} {rng.choice(literals)}"
    if kind == 2:
        field, choices = rng.choice([("stage", STAGES), ("region", REGIONS)])
        if rng.random() < 0.5:
            return f"{field} {rng.choice(['==', '!='])} '{rng.choice(choices)}'"
        items = ", ".join(f"'{c}'" for c in rng.sample(choices, rng.randrange(1, 3)))
        return f"{field} {rng.choice(['in', 'not in'])} [{items}]"
    if kind == 3:
        return rng.choice(["won", "won == True", "won != False", "won == False"])
    if kind == 4:
        field = rng.choice(BLANKABLE)
        return rng.choice(
            [
                f"ISBLANK({field})",
                f"{field} == None",
                f"{field} != None",
                f"{field} is None",
                f"{field} is not None",
                f"None == {field}",
            ]
        )
    if kind == 5:
        field, literals = rng.choice(NUMBER_TESTS)
        low, high = sorted(rng.sample(literals, 2)) if len(literals) > 1 else literals * 2
        return f"{low} < {field} <= {high}"
    if kind == 6:
        field, literals = rng.choice(NUMBER_TESTS[:3])
        return f"{field} in [{', '.join(rng.sample(literals, 2))}]"
    if kind == 7:
        return rng.choice(
            ["True", "False", "closed_at >= created_at", "record_date == due", "record_date < due"]
        )
    field, literals = rng.choice(NUMBER_TESTS)
    return f"{field} {rng.choice(OPS)} {rng.choice(literals)}"


def _random_filter(rng: random.Random, depth: int = 0) -> str:
    if depth >= 3 or rng.random() < 0.4:
        return _atom(rng)
    kind = rng.randrange(6)
    a, b = _random_filter(rng, depth + 1), _random_filter(rng, depth + 1)
    return [
        f"({a}) and ({b})",
        f"({a}) or ({b})",
        f"not ({a})",
        f"AND({a}, {b})",
        f"OR({a}, {b})",
        f"NOT({a})",
    ][kind]


@pytest.fixture
def seeded(
    sessions: sessionmaker[Session],
) -> tuple[sessionmaker[Session], dict[int, dict[str, Any]]]:
    rng = random.Random(20250314)
    plain: dict[int, dict[str, Any]] = {}
    with sessions() as session:
        pack = Pack(id="acme")
        version = PackVersion(
            pack_id="acme", version="1.0.0", content={}, content_hash="h", published_by="test"
        )
        user = User(username="rep", display_name="Rep")
        session.add_all([pack, version, user])
        session.flush()
        for _ in range(300):
            data = _random_record(rng)
            record = Record(
                pack_id="acme",
                pack_version_id=version.id,
                form_id="deal",
                owner_id=user.id,
                stage=data["stage"],
                record_date=data["record_date"],
                closed_at=data["closed_at"],
                created_at=data["created_at"],
                values={k: _json(data[k]) for k in FORM_FIELDS if data[k] is not None},
            )
            record.amount = data["amount"]
            session.add(record)
            session.flush()
            plain[record.id] = data
        session.commit()
    return sessions, plain


def _python_selects(text: str, plain: dict[int, dict[str, Any]]) -> set[int]:
    expr = compile_expression(text, CTX, expect=V.BOOL)
    return {rid for rid, values in plain.items() if expr.evaluate(values, today=TODAY)}


def _sql_selects(text: str, session: Session) -> set[int]:
    expr = compile_expression(text, CTX, expect=V.BOOL)
    assert expr.sql_unsupported_reason() is None, text
    clause = expr.to_sql(record_column_resolver(FORM_FIELDS), today=TODAY)
    return set(session.scalars(select(Record.id).where(clause)))


FIXED_FILTERS = [
    "stage == 'won' and amount > 1000",
    "amount == 123.45",
    "amount >= 1000",
    "YEAR(closed_at) == 2024 and QUARTER(closed_at) in [1, 2]",
    "DAYS(TODAY(), record_date) > 30",
    "not (amount > 1000)",
    "NOT(visits >= 3)",
    "ISBLANK(closed_at) or closed_at >= DATE(2024, 6, 1)",
    "region in ['N', 'S'] and not won",
    "visits == 2.5 or share == 0.15",
    "closed_at > DATE(2024, 6, 1)",
    "closed_at == DATE(2024, 6, 1)",
    "seen_at >= DATE(2024, 6, 1)",
    "due != None and due < TODAY()",
    "stage not in ['lost']",
]


def test_sql_filters_select_exactly_what_python_selects(seeded: Any) -> None:
    sessions, plain = seeded
    rng = random.Random(7)
    filters = FIXED_FILTERS + [_random_filter(rng) for _ in range(250)]
    nonempty = 0
    with sessions() as session:
        for text in filters:
            expected = _python_selects(text, plain)
            assert _sql_selects(text, session) == expected, text
            nonempty += 0 < len(expected) < len(plain)
    assert nonempty > len(filters) // 3  # the filters discriminate, not all-or-nothing


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("amount + 1 > 2", "arithmetic is not supported in KPI filters"),
        ("IF(won, 1, 0) == 1", "IF is not supported in KPI filters"),
        ("region > 'N'", "ordering text (<, >) is not supported in KPI filters"),
        ("CONTAINS(region, 'n')", "CONTAINS is not supported in KPI filters"),
        ("visits and won", "a KPI filter must be a condition"),
        ("record_date == closed_at", "comparing a date field with a date-time field"),
        ("DATE(visits, 1, 1) == record_date", "DATE(...) in a KPI filter needs plain numbers"),
    ],
)
def test_filters_outside_the_subset_are_refused_with_the_reason(text: str, reason: str) -> None:
    expr = compile_expression(text, CTX)
    found = expr.sql_unsupported_reason()
    assert found is not None and found.startswith(reason)
    with pytest.raises(ExpressionError):
        expr.to_sql(record_column_resolver(FORM_FIELDS))


def test_non_condition_expressions_translate_to_values() -> None:
    expr = compile_expression("YEAR(record_date)", CTX)
    assert expr.sql_unsupported_reason() is None
    assert "strftime" in str(
        expr.to_sql(record_column_resolver(FORM_FIELDS)).compile(
            dialect=__import__("sqlalchemy.dialects.sqlite", fromlist=["dialect"]).dialect()
        )
    )
