"""The compiled fast path and the simpleeval reference agree: same values, same errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from quotaflow.expressions import ExpressionError, ValueType, compile_expression

V = ValueType
CTX = {
    "a": V.NUMBER,
    "b": V.NUMBER,
    "m": V.MONEY,
    "p": V.PERCENT,
    "s": V.TEXT,
    "t": V.TEXT,
    "d": V.DATE,
    "e": V.DATETIME,
    "w": V.BOOL,
    "x": V.ANY,
    "y": V.ANY,
}

numbers = st.one_of(
    st.integers(-(10**6), 10**6),
    st.integers(),
    st.floats(allow_nan=False, width=64),
    st.decimals(
        allow_nan=False, allow_infinity=False, places=4, min_value=-(10**9), max_value=10**9
    ),
    st.sampled_from([0, 0.0, Decimal(0), 1e300, -1e300, 10**300]),
)
anything = st.one_of(
    st.none(),
    numbers,
    st.booleans(),
    st.text(max_size=4),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.lists(st.integers(-3, 3), max_size=3),
)
VALUE_STRATEGIES = {
    "a": st.one_of(st.none(), numbers),
    "b": st.one_of(st.none(), numbers),
    "m": st.one_of(
        st.none(),
        st.decimals(
            allow_nan=False, allow_infinity=False, places=2, min_value=-(10**6), max_value=10**6
        ),
    ),
    "p": st.one_of(st.none(), st.floats(-2, 2)),
    "s": st.one_of(st.none(), st.text(max_size=4)),
    "t": st.one_of(st.none(), st.text(max_size=4)),
    "d": st.one_of(st.none(), st.dates()),
    "e": st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    "w": st.one_of(st.none(), st.booleans()),
    "x": anything,
    "y": anything,
}

literals = st.one_of(
    st.integers(-1000, 1000).map(str),
    st.sampled_from(
        [
            "0",
            "1",
            "2",
            "0.5",
            "1e300",
            "2.5",
            "-1",
            "None",
            "True",
            "False",
            "'a'",
            "''",
            "[1, 2, 3]",
            "TODAY()",
            "DATE(2024, 2, 29)",
        ]
    ),
    st.floats(-1e6, 1e6).map(repr),
)
leaves = st.one_of(st.sampled_from(sorted(CTX)), literals)
BINARY = ["+", "-", "*", "/", "//", "%", "**", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
CALLS_1 = [
    "ROUND",
    "ROUNDUP",
    "ROUNDDOWN",
    "ABS",
    "ISBLANK",
    "NOT",
    "YEAR",
    "MONTH",
    "QUARTER",
    "WEEKDAY",
    "LEN",
    "TEXT",
]
CALLS_2 = ["ROUND", "MIN", "MAX", "SUM", "AVG", "COALESCE", "DAYS", "CONTAINS", "AND", "OR", "TEXT"]


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(BINARY), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["-", "not ", "+"]), children).map(lambda t: f"({t[0]}{t[1]})"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        st.tuples(children, children, children).map(lambda t: f"IF({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(st.sampled_from(CALLS_1), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(CALLS_2), children, children).map(
            lambda t: f"{t[0]}({t[1]}, {t[2]})"
        ),
        st.tuples(children, children, children).map(lambda t: f"CLAMP({t[0]}, {t[1]}, {t[2]})"),
        st.tuples(children, st.lists(literals, min_size=1, max_size=3)).map(
            lambda t: f"({t[0]} in [{', '.join(x for x in t[1] if x != 'None') or '1'}])"
        ),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} < {t[1]} <= {t[2]})"),
        children.map(lambda c: f"({c} == None)"),
    )


expressions = st.recursive(leaves, _extend, max_leaves=12)


def outcome(fn: Any) -> tuple[str, Any]:
    try:
        result = fn()
    except ExpressionError as exc:
        return ("error", exc.message)
    return ("value", (type(result).__name__, result))


@settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(expressions, st.fixed_dictionaries({}, optional=VALUE_STRATEGIES), st.booleans())
def test_fast_path_and_reference_agree(text: str, values: dict[str, Any], zero: bool) -> None:
    try:
        expr = compile_expression(text, CTX, blank_as_zero=zero)
    except ExpressionError:
        assume(False)
        return
    today = date(2025, 3, 14)
    fast = outcome(lambda: expr.evaluate(values, today=today))
    reference = outcome(lambda: expr.evaluate_reference(values, today=today))
    assert fast == reference, (text, values)


def test_agreement_on_a_known_tricky_set() -> None:
    cases = [
        ("MIN(a, b)", {"a": 1, "b": 1.0}),
        ("MAX(a, b)", {"a": 0.0, "b": -0.0}),
        ("a / b", {"a": Decimal(1), "b": 0.0}),
        ("a // b", {"a": -7, "b": 2}),
        ("a % b", {"a": Decimal("-7"), "b": 2}),
        ("(a < b < x)", {"a": 1, "b": 2, "x": "q"}),
        ("x + y", {"x": date(2024, 1, 1), "y": True}),
        ("x - y", {"x": datetime(2024, 1, 1, tzinfo=UTC), "y": date(2024, 1, 1)}),
        ("-x", {"x": True}),
        ("x ** y", {"x": Decimal("1.5"), "y": 2.5}),
        ("x ** y", {"x": 0, "y": -1}),
        ("[1, 2][x]", {"x": 1.5}),
    ]
    for text, values in cases:
        expr = compile_expression(text, CTX)
        assert outcome(lambda e=expr, v=values: e.evaluate(v)) == outcome(
            lambda e=expr, v=values: e.evaluate_reference(v)
        ), text
