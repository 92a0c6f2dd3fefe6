"""The expression engine: API, semantics, every function, checks and messages, CLI, docs."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from quotaflow.cli import main
from quotaflow.expressions import (
    FUNCTIONS,
    TODAY,
    CycleError,
    Expression,
    ExpressionError,
    FunctionSpec,
    ValueType,
    compile_expression,
    function_docs,
    order_by_dependencies,
)

V = ValueType
REPO = Path(__file__).resolve().parent.parent
CTX: dict[str, ValueType] = {
    "a": V.NUMBER,
    "b": V.NUMBER,
    "c": V.NUMBER,
    "amount": V.MONEY,
    "rate": V.PERCENT,
    "stage": V.TEXT,
    "notes": V.TEXT,
    "won": V.BOOL,
    "d": V.DATE,
    "d2": V.DATE,
    "ts": V.DATETIME,
    "tags": V.LIST,
    "x": V.ANY,
    "y": V.ANY,
}


def ev(text: str, today: date | None = date(2025, 3, 14), **values: Any) -> Any:
    """Evaluate on both paths and check they agree."""
    expr = compile_expression(text, CTX)
    fast = expr.evaluate(values, today=today)
    assert expr.evaluate_reference(values, today=today) == fast
    return fast


def err(text: str, names: dict[str, ValueType] | None = None, **kw: Any) -> ExpressionError:
    with pytest.raises(ExpressionError) as info:
        compile_expression(text, CTX if names is None else names, **kw)
    return info.value


def run_err(text: str, **values: Any) -> str:
    expr = compile_expression(text, CTX)
    with pytest.raises(ExpressionError) as fast:
        expr.evaluate(values)
    with pytest.raises(ExpressionError) as ref:
        expr.evaluate_reference(values)
    assert fast.value.message == ref.value.message
    return fast.value.message


# --- the API ---------------------------------------------------------------------------------


def test_compiled_expression_knows_its_names_functions_and_type() -> None:
    expr = compile_expression("ROUND(amount * rate, 2) + COALESCE(a, 0)", CTX)
    assert isinstance(expr, Expression)
    assert expr.names == frozenset({"amount", "rate", "a"})
    assert expr.functions == frozenset({"ROUND", "COALESCE"})
    assert expr.result_type == V.MONEY
    assert expr.text == "ROUND(amount * rate, 2) + COALESCE(a, 0)"


def test_compiled_forms_are_cached_by_text_and_context() -> None:
    first = compile_expression("a + b", {"a": V.NUMBER, "b": V.NUMBER})
    assert compile_expression("a + b", {"b": V.NUMBER, "a": V.NUMBER}) is first
    assert compile_expression("a + b", {"a": V.NUMBER, "b": V.MONEY}) is not first
    assert (
        compile_expression("a + b", {"a": V.NUMBER, "b": V.NUMBER}, blank_as_zero=True) is not first
    )


def test_missing_names_are_blank_and_values_may_be_any_mapping() -> None:
    assert ev("a + 1") is None
    assert compile_expression("a + 1", CTX).evaluate({"a": 1, "unrelated": object()}) == 2


def test_expression_built_by_hand_compiles_on_first_use() -> None:
    expr = Expression("a * 2", frozenset({"a"}), frozenset(), V.ANY)
    assert expr.evaluate({"a": 21}) == 42


def test_today_is_injectable_by_argument_and_contextvar() -> None:
    expr = compile_expression("TODAY()", {})
    assert expr.evaluate({}, today=date(2024, 2, 29)) == date(2024, 2, 29)
    token = TODAY.set(date(2023, 1, 1))
    try:
        assert expr.evaluate({}) == date(2023, 1, 1)
    finally:
        TODAY.reset(token)
    assert expr.evaluate({}) == datetime.now(UTC).date()


# --- semantics -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a + b", {"a": 1, "b": None}, None),
        ("a * 2 - b", {"a": None, "b": 1}, None),
        ("-a", {}, None),
        ("a / b", {"a": 1, "b": 0}, None),
        ("a // b", {"a": 1, "b": 0}, None),
        ("a % b", {"a": 1, "b": 0}, None),
        ("a / b", {"a": Decimal("0.00"), "b": 0}, None),  # Decimal 0/0 is "undefined": still blank
        ("a // b", {"a": Decimal("0"), "b": Decimal("0")}, None),
        ("a % b", {"a": Decimal("0"), "b": 0}, None),
        ("a / b", {"a": 1, "b": 4}, 0.25),
        ("a ** 2", {"a": 3}, 9),
        ("0 ** -1 == None", {}, True),
        ("a > 1", {}, False),
        ("a < 1", {}, False),
        ("a == 1", {}, False),
        ("a != 1", {}, False),
        ("not (a > 1)", {}, True),
        ("a == None", {}, True),
        ("a is None", {"a": 0}, False),
        ("a != None", {"a": 0}, True),
        ("a is not None", {}, False),
        ("a in [1, 2]", {}, False),
        ("a not in [1, 2]", {}, False),
        ("a not in [1, 2]", {"a": 3}, True),
        ("a in [1, 2]", {"a": 2.0}, True),
        ("stage in ['won', 'lost']", {"stage": "won"}, True),
        ("1 < a < 3", {"a": 2}, True),
        ("1 < a < 3", {"a": 3}, False),
        ("a if won else b", {"a": 1, "b": 2, "won": False}, 2),
        ("a > 0 and b > 0", {"a": 1, "b": 1}, True),
        ("a or b", {"a": 0, "b": 5}, True),
        ("a and b", {"a": 3, "b": 5}, True),
        ("stage + '!'", {"stage": "won"}, "won!"),
        ("['a', 'b', 'c'][a]", {"a": 1}, "b"),
        ("['a', 'b'][a]", {"a": 5}, None),
        ("['a', 'b'][a]", {}, None),
        ("won + 1", {"won": True}, 2),
    ],
)
def test_operators_are_blank_aware(text: str, values: dict[str, Any], expected: Any) -> None:
    result = ev(text, **values)
    assert result == expected and type(result) is type(expected)


def test_money_is_exact_and_mixes_with_plain_numbers() -> None:
    assert ev("amount * 3", amount=Decimal("0.10")) == Decimal("0.30")
    assert ev("amount + 0.1 + 0.2", amount=Decimal("0")) == Decimal("0.3")
    assert ev("amount * rate", amount=Decimal("1000.00"), rate=0.15) == Decimal("150.0000")
    assert ev("amount / 3", amount=Decimal("10")) == Decimal("10") / 3
    assert ev("amount == 0.1", amount=Decimal("0.1")) is True
    assert ev("amount > 0.1", amount=Decimal("0.1")) is False
    assert isinstance(ev("amount - 1", amount=Decimal("1")), Decimal)


def test_percent_values_are_fractions() -> None:
    assert ev("amount * rate", amount=Decimal("200"), rate=Decimal("0.15")) == Decimal("30.00")
    assert compile_expression("rate * 2", CTX).result_type == V.PERCENT


def test_dates_subtract_to_days_and_shift_by_days() -> None:
    assert ev("d - d2", d=date(2024, 3, 1), d2=date(2024, 2, 1)) == 29
    assert ev("d + 1", d=date(2024, 2, 28)) == date(2024, 2, 29)
    assert ev("1 + d", d=date(2024, 12, 31)) == date(2025, 1, 1)
    assert ev("d - 7", d=date(2024, 3, 1)) == date(2024, 2, 23)
    assert ev("d > DATE(2024, 1, 1)", d=date(2024, 3, 1)) is True
    moment = datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert ev("ts > DATE(2024, 1, 1)", ts=moment) is True
    assert ev("ts - DATE(2024, 1, 1)", ts=moment) == 0.5
    assert run_err("d + 1.5", d=date(2024, 1, 1)) == (
        "only whole days can be added to or subtracted from a date"
    )
    assert run_err("d + a", d=date(9999, 12, 31), a=1) == "date out of range"


def test_blank_as_zero_makes_blank_numbers_count_as_zero() -> None:
    names = {"a": V.NUMBER, "b": V.MONEY, "t": V.TEXT}
    expr = compile_expression("a + b", names, blank_as_zero=True)
    assert expr.evaluate({}) == 0
    assert expr.evaluate({"b": Decimal("2.50")}) == Decimal("2.50")
    assert expr.evaluate_reference({"a": 1}) == 1
    assert compile_expression("t == None", names, blank_as_zero=True).evaluate({}) is True
    assert compile_expression("a + b", names).evaluate({"b": 1}) is None


def test_if_is_lazy_so_the_other_branch_never_fails() -> None:
    assert ev("IF(b == 0, 0, a / b)", a=1, b=0) == 0
    # the unchosen branch would raise (text minus a number), the chosen one is returned
    assert ev("IF(x == 1, 'ok', x - 1)", x=1) == "ok"
    assert ev("x == 1 or x - 1", x=1) is True
    assert ev("AND(x != 1, x - 1)", x=1) is False
    assert ev("OR(x == 1, x - 1)", x=1) is True


def test_numbers_beyond_the_limit_are_errors_never_inf_or_nan() -> None:
    assert run_err("a * 10", a=1e300) == "number too large (the limit is 1e300)"
    assert run_err("a * a", a=10**200) == "number too large (the limit is 1e300)"
    assert run_err("a + 1", a=float("inf")) == "number too large (the limit is 1e300)"
    assert run_err("a + 1", a=float("nan")) == "the result is not a number"
    assert ev("a > 1", a=float("nan")) is False
    assert run_err("a ** b", a=10, b=301) == "number too large (the limit is 1e300)"
    assert run_err("a ** b", a=-8, b=0.5) == (
        "a negative number can't be raised to a fractional power"
    )
    assert ev("a ** b", a=10, b=-400) == 0.0


def test_type_errors_at_run_time_are_readable() -> None:
    assert run_err("x - 1", x="abc") == "can't use '-' on text and a number"
    assert run_err("x < 1", x="abc") == "can't compare text with a number"
    assert ev("x == 1", x="abc") is False
    assert run_err("x * 2", x="ab") == "can't use '*' on text and a number"
    assert run_err("LEN(x)", x=5) == "LEN needs text or a list, got a number"


def test_text_results_are_bounded() -> None:
    with pytest.raises(ExpressionError, match="text too long"):
        compile_expression("x + x", CTX).evaluate({"x": "a" * 6000})


def test_unexpected_values_give_expression_errors() -> None:
    expr = compile_expression("x + 1", CTX)
    with pytest.raises(ExpressionError, match="unsupported value"):
        expr.evaluate({"x": object()})
    with pytest.raises(ExpressionError):
        expr.evaluate(None)  # type: ignore[arg-type]


# --- functions -------------------------------------------------------------------------------


FUNCTION_CASES: list[tuple[str, dict[str, Any], Any]] = [
    ("IF(a > 1, 'big', 'small')", {"a": 2}, "big"),
    ("IF(a > 1, 'big', 'small')", {}, "small"),
    ("AND(a > 0, b > 0)", {"a": 1, "b": 0}, False),
    ("AND(a > 0, b > 0, True)", {"a": 1, "b": 1}, True),
    ("OR(a > 0, b > 0)", {"a": 0, "b": 1}, True),
    ("OR(a > 0)", {}, False),
    ("NOT(a > 0)", {"a": 0}, True),
    ("NOT(ISBLANK(a))", {}, False),
    ("ROUND(2.5, 0)", {}, 3),
    ("ROUND(-2.5, 0)", {}, -3),
    ("ROUND(2.345, 2)", {}, 2.35),
    ("ROUND(1234, -2)", {}, 1200),
    ("ROUND(a)", {"a": Decimal("0.5")}, Decimal("1")),
    ("ROUND(a, 1)", {}, None),
    ("ROUNDUP(2.01, 1)", {}, 2.1),
    ("ROUNDUP(-2.01, 0)", {}, -3),
    ("ROUNDDOWN(2.99, 0)", {}, 2),
    ("ROUNDDOWN(-2.99, 1)", {}, -2.9),
    ("MIN(3, a, 1.5)", {"a": 2}, 1.5),
    ("MIN(a, b)", {"a": None, "b": 4}, 4),
    ("MIN([4, 2, 9])", {}, 2),
    ("MIN(d, d2)", {"d": date(2024, 1, 2), "d2": date(2024, 1, 1)}, date(2024, 1, 1)),
    ("MAX(3, a, 1.5)", {"a": 2}, 3),
    ("MAX(a, b)", {}, None),
    ("MAX(amount, 100)", {"amount": Decimal("150.5")}, Decimal("150.5")),
    ("SUM(1, 2, a)", {"a": None}, 3),
    ("SUM([1, 2], 3)", {}, 6),
    ("SUM(a, b)", {}, 0),
    ("SUM(amount, 0.1)", {"amount": Decimal("0.2")}, Decimal("0.3")),
    ("AVG(1, 2, a)", {"a": None}, 1.5),
    ("AVG([3, 4, None])", {}, 3.5),
    ("AVG(a, b)", {}, None),
    ("ABS(-5)", {}, 5),
    ("ABS(a)", {"a": Decimal("-1.5")}, Decimal("1.5")),
    ("ABS(a)", {}, None),
    ("COALESCE(a, b, 0)", {"b": 7}, 7),
    ("COALESCE(a, 0)", {}, 0),
    ("COALESCE(a, b)", {}, None),
    ("ISBLANK(a)", {}, True),
    ("ISBLANK(a)", {"a": 0}, False),
    ("ISBLANK(stage)", {"stage": ""}, False),
    ("CLAMP(a, 0, 1.5)", {"a": 2}, 1.5),
    ("CLAMP(a, 0, 1.5)", {"a": -1}, 0),
    ("CLAMP(a, 0, 1.5)", {"a": 1}, 1),
    ("CLAMP(a, 0, 1)", {}, None),
    ("DAYS(d, d2)", {"d": date(2024, 3, 1), "d2": date(2024, 2, 1)}, 29),
    ("DAYS(TODAY(), d)", {"d": date(2025, 3, 7)}, 7),
    ("DAYS(ts, d)", {"ts": datetime(2024, 1, 2, 23, tzinfo=UTC), "d": date(2024, 1, 1)}, 1),
    ("DAYS(d, d2)", {"d": None, "d2": date(2024, 1, 1)}, None),
    ("TODAY()", {}, date(2025, 3, 14)),
    ("DATE(2024, 2, 29)", {}, date(2024, 2, 29)),
    ("DATE(a, 1, 1)", {}, None),
    ("YEAR(d)", {"d": date(2024, 5, 6)}, 2024),
    ("YEAR(ts)", {"ts": datetime(2024, 12, 31, 23, 30, tzinfo=UTC)}, 2024),
    ("YEAR(d)", {}, None),
    ("MONTH(d)", {"d": date(2024, 5, 6)}, 5),
    ("QUARTER(d)", {"d": date(2024, 5, 6)}, 2),
    ("QUARTER(DATE(2024, 12, 1))", {}, 4),
    ("QUARTER(DATE(2024, 1, 31))", {}, 1),
    ("WEEKDAY(DATE(2025, 3, 31))", {}, 1),
    ("WEEKDAY(DATE(2025, 3, 30))", {}, 7),
    ("LEN('Acme')", {}, 4),
    ("LEN(stage)", {}, 0),
    ("LEN(tags)", {"tags": ["a", "b"]}, 2),
    ("CONTAINS(notes, 'urgent')", {"notes": "URGENT: call back"}, True),
    ("CONTAINS(notes, 'urgent')", {"notes": "later"}, False),
    ("CONTAINS(notes, 'urgent')", {}, False),
    ("CONTAINS(tags, 'gold')", {"tags": ["gold", "vip"]}, True),
    ("CONTAINS(tags, 'GOLD')", {"tags": ["gold"]}, False),
    ("TEXT(1234.5, 2)", {}, "1234.50"),
    ("TEXT(2.5, 0)", {}, "3"),
    ("TEXT(a)", {"a": Decimal("12.30")}, "12.30"),
    ("TEXT(a)", {"a": 3.0}, "3"),
    ("TEXT(a)", {}, ""),
    ("TEXT(won)", {"won": True}, "yes"),
    ("TEXT(d)", {"d": date(2024, 1, 2)}, "2024-01-02"),
    ("'Deal ' + TEXT(a)", {"a": 7}, "Deal 7"),
]


@pytest.mark.parametrize(("text", "values", "expected"), FUNCTION_CASES)
def test_functions(text: str, values: dict[str, Any], expected: Any) -> None:
    assert ev(text, **values) == expected


def test_every_function_has_tests_a_doc_and_an_example_that_compiles() -> None:
    tested = {m for text, _, _ in FUNCTION_CASES for m in re.findall(r"([A-Z]+)\(", text)}
    assert set(FUNCTIONS) <= tested
    for spec in FUNCTIONS.values():
        assert spec.doc and spec.signature.startswith(spec.name + "(")
        assert "\n" not in spec.doc
        compile_expression(
            spec.example,
            dict.fromkeys(
                [
                    "amount",
                    "stage",
                    "actual",
                    "target",
                    "q1",
                    "q2",
                    "q3",
                    "q4",
                    "discount",
                    "closed_at",
                    "attainment",
                    "record_date",
                    "notes",
                ],
                V.ANY,
            ),
        )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DATE(2024, 2, 30)", "2024-02-30 is not a valid date"),
        ("DATE(2024, 13, 1)", "the month must be between 1 and 12, got 13"),
        ("DATE(2024.5, 1, 1)", "the year must be a whole number, not a number"),
        ("ROUND(1, 99)", "the number of digits must be between -15 and 15, got 99"),
        ("TEXT(1, 50)", "the number of decimals must be between 0 and 10, got 50"),
        ("YEAR(x)", "YEAR needs a date, got text"),
        ("SUM(x, 1)", "SUM needs a number, got text"),
        ("ABS(x)", "ABS needs a number, got text"),
    ],
)
def test_function_errors_are_readable(text: str, message: str) -> None:
    assert run_err(text, x="text") == message


def test_extra_functions_can_be_added() -> None:
    double = FunctionSpec(
        "DOUBLE",
        lambda v: None if v is None else v * 2,
        (frozenset(V),),
        V.NUMBER,
        "DOUBLE(number) — twice the number",
        "DOUBLE(2)",
        "4",
    )
    expr = compile_expression("DOUBLE(a) + 1", CTX, extra_functions=[double])
    assert expr.evaluate({"a": 4}) == 9
    assert expr.evaluate_reference({"a": 4}) == 9
    with pytest.raises(ExpressionError, match="unknown function 'DOUBLE'"):
        compile_expression("DOUBLE(a)", CTX)


def test_function_docs_list_every_function() -> None:
    docs = function_docs()
    assert [d["name"] for d in docs] == sorted(FUNCTIONS)
    assert {"name", "signature", "doc", "example", "example_result"} <= set(docs[0])


def test_docs_describe_every_function() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    for spec in FUNCTIONS.values():
        assert f"`{spec.signature}`" in text, spec.name


# --- compile-time checks and messages --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ("amout + 1", "unknown name 'amout' — did you mean 'amount'?", 1),
        ("1 + amout", "unknown name 'amout' — did you mean 'amount'?", 5),
        ("round(a)", "unknown function 'round' — did you mean 'ROUND'?", 1),
        ("ROUDN(a)", "unknown function 'ROUDN' — did you mean 'ROUND'?", 1),
        ("IF(a, 1)", "IF takes 3 arguments, got 2", 1),
        ("a + IF(a, 1, 2, 3)", "IF takes 3 arguments, got 4", 5),
        ("TODAY(1)", "TODAY takes no arguments, got 1", 1),
        ("ROUND()", "ROUND takes 1 to 2 arguments, got 0", 1),
        ("MIN()", "MIN takes at least 1 argument, got 0", 1),
        ("ROUND(stage)", "ROUND: argument 1 must be a number, got text", 7),
        ("YEAR(a)", "YEAR: argument 1 must be a date, got a number", 6),
        ("stage - 1", "can't use '-' on text and a number", 1),
        ("stage == 5", "can't compare text with a number", 1),
        ("d > '2024-01-01'", "can't compare a date with text; write dates as DATE(2025, 1, 31)", 1),
        ("ROUND", "ROUND is a function; call it like ROUND(...)", 1),
        ("true", "unknown name 'true' — did you mean 'True'?", 1),
        ("a is 1", "'is' can only test for blank ('x is None'); use == or != to compare values", 1),
        ("a in b", "'in' needs a list written out, like x in ['a', 'b']", 1),
        ("a in [1, None]", "a list after 'in' can't hold None; test for blank with ISBLANK(x)", 10),
        ("a +", "syntax error: the expression ends too early (something is missing at the end)", 4),
        ("a + * b", "syntax error: invalid syntax", 5),
        ("ROUND(a, x=1)", "ROUND takes no named arguments (like name=...)", 10),
        ("", "the expression is empty", None),
        ("# a comment", "the expression is empty", None),
        ("1)+(2", "unbalanced brackets: a ')' closes nothing", 1),
    ],
)
def test_compile_errors_are_readable_and_positioned(
    text: str, message: str, column: int | None
) -> None:
    error = err(text)
    assert error.message == message
    assert error.column == column
    if column is not None:
        assert error.describe().endswith("\n" + " " * (column - 1) + "^")


def test_errors_on_later_lines_say_where() -> None:
    error = err("a +\n  amout")
    assert (error.line, error.column) == (2, 3)
    assert error.describe() == (
        "line 2, column 3: unknown name 'amout' — did you mean 'amount'?\n  amout\n  ^"
    )


def test_multi_line_formulas_and_comments_are_fine() -> None:
    expr = compile_expression("  a\n+ b  # bonus\n", CTX)
    assert expr.evaluate({"a": 1, "b": 2}) == 3


def test_columns_count_characters_not_bytes() -> None:
    error = err("'€€€' + amout")
    assert error.column == 9


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("a + 1", V.BOOL),
        ("stage", V.BOOL),
        ("stage", V.MONEY),
        ("stage + 'x'", V.NUMBER),
        ("a > 1", V.NUMBER),
        ("d", V.NUMBER),
        ("a", V.TEXT),
        ("tags", V.NUMBER),
    ],
)
def test_results_of_the_wrong_type_are_rejected(text: str, expect: ValueType) -> None:
    error = err(text, expect=expect)
    assert error.column == 1
    assert "but it gives" in error.message


def test_visible_if_that_is_not_a_condition_says_so() -> None:
    assert err("amount + 1", expect=V.BOOL).message == (
        "this must be a condition (yes/no, e.g. amount > 0), but it gives an amount of money"
    )


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("a + 1", V.MONEY),
        ("amount * 2", V.NUMBER),
        ("rate", V.NUMBER),
        ("a / b", V.PERCENT),
        ("x", V.BOOL),
        ("x + 1", V.MONEY),
        ("a > 1 and won", V.BOOL),
        ("d", V.DATETIME),
        ("IF(won, amount, None)", V.MONEY),
        ("TEXT(a)", V.TEXT),
        ("a", V.ANY),
    ],
)
def test_compatible_results_are_accepted(text: str, expect: ValueType) -> None:
    compile_expression(text, CTX, expect=expect)


def test_error_type_is_a_quotaflow_error_with_the_caret() -> None:
    from quotaflow.errors import QuotaflowError

    error = err("a + amout")
    assert isinstance(error, QuotaflowError)
    assert error.caret() == "a + amout\n    ^"
    assert ExpressionError("plain").describe() == "plain"


# --- dependencies ----------------------------------------------------------------------------


def test_dependency_order_puts_dependencies_first() -> None:
    order = order_by_dependencies({"total": ["net", "tax"], "tax": ["net"], "net": ["amount"]})
    assert order == ["net", "tax", "total"]


def test_dependency_cycles_are_named() -> None:
    with pytest.raises(CycleError) as info:
        order_by_dependencies({"a": ["b"], "b": ["c"], "c": ["a"], "d": []})
    assert info.value.cycle == ["a", "b", "c", "a"]
    assert info.value.message == "circular dependency: a -> b -> c -> a"
    with pytest.raises(CycleError):
        order_by_dependencies({"a": ["a"]})


def test_dependency_chains_of_any_length() -> None:
    deps = {f"f{i}": [f"f{i + 1}"] for i in range(5000)}
    order = order_by_dependencies(deps)
    assert order[0] == "f4999" and order[-1] == "f0"


# --- CLI ---------------------------------------------------------------------------------------


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["expr", *args])


def test_cli_eval_prints_blank_as_null() -> None:
    result = cli("eval", "COALESCE(a, 0) / b", "--vars", '{"a": null, "b": 0}')
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "null"


def test_cli_eval_prints_json() -> None:
    assert json.loads(cli("eval", "ROUND(a * 1.5)", "--vars", '{"a": 5}').output) == 8
    assert json.loads(cli("eval", "'x' + s", "--vars", '{"s": "y"}').output) == "xy"
    result = cli(
        "eval", "DAYS(TODAY(), d)", "--vars", '{"d": "2024-01-01"}', "--today", "2024-03-01"
    )
    assert json.loads(result.output) == 60
    assert json.loads(cli("eval", "DATE(2024, 1, 31) + 1").output) == "2024-02-01"
    assert json.loads(cli("eval", "a + 1", "--vars", '{"a": null}').output) is None
    assert cli("eval", "a + 1").exit_code == 1


def test_cli_check_rejects_import_with_a_clear_message() -> None:
    result = cli("check", "__import__('os')")
    assert result.exit_code == 1
    assert "unknown function '__import__' (names never start with '__')" in result.output
    assert "__import__('os')\n^" in result.output


def test_cli_errors_print_the_caret() -> None:
    result = cli("check", "a + amout", "--names", "a,amount:money")
    assert result.exit_code == 1
    assert "unknown name 'amout' — did you mean 'amount'?\na + amout\n    ^" in result.output
    result = cli("eval", "a / 'x'", "--vars", '{"a": 1}')
    assert result.exit_code == 1
    assert "can't use '/' on a number and text" in result.output


def test_cli_check_reports_names_type_and_sql() -> None:
    result = cli("check", "amount > 1 and stage == 'won'", "--names", "amount:money,stage:text")
    assert result.exit_code == 0
    assert json.loads(result.output) == {
        "ok": True,
        "type": "bool",
        "names": ["amount", "stage"],
        "functions": [],
        "sql": "translatable",
    }
    result = cli("check", "a + 1", "--names", "a:number", "--expect", "bool")
    assert result.exit_code == 1 and "must be a condition" in result.output


def test_cli_bad_options_exit_non_zero() -> None:
    assert cli("eval", "1", "--vars", "[1]").exit_code == 2
    assert cli("eval", "1", "--vars", "{bad").exit_code == 2
    assert cli("check", "a", "--names", "a:weird").exit_code == 2
