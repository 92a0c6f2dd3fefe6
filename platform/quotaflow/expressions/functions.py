"""The UPPERCASE spreadsheet-style functions of the expression language.

Each function is a FunctionSpec: the implementation, how many arguments it takes, what
types it accepts and returns (for compile-time checks), a one-line doc and an example
(both used by the README (section Expressions) and `function_docs()`). Plugins add functions through
the `register_formula_functions` hook or the `extra_functions` argument of
compile_expression, with the same FunctionSpec.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from quotaflow.expressions import runtime as rt
from quotaflow.expressions.errors import ExpressionError
from quotaflow.expressions.types import (
    ARITHMETIC,
    DATELIKE,
    EVERYTHING,
    NUMERIC,
    ORDERABLE,
    ValueType,
    unify,
)

VT = ValueType
Kinds = frozenset[ValueType]
ResultRule = ValueType | Callable[[Sequence[ValueType]], ValueType]


@dataclass(frozen=True)
class FunctionSpec:
    """One function of the language.

    `args` lists the accepted types of each positional argument; when `varargs` is set,
    further arguments (up to `max_args`, None = unlimited) accept those types. `lazy`
    functions (IF, AND, OR) receive their arguments as zero-argument callables so that
    only what is needed is evaluated. `lists` lets literal lists be passed and flattened.
    """

    name: str
    impl: Callable[..., Any] = field(compare=False)
    args: tuple[Kinds, ...]
    result: ResultRule = field(compare=False)
    doc: str
    example: str
    example_result: str
    min_args: int | None = None
    max_args: int | None = -1
    varargs: Kinds | None = None
    lazy: bool = False
    lists: bool = False

    @property
    def minimum(self) -> int:
        return len(self.args) if self.min_args is None else self.min_args

    @property
    def maximum(self) -> int | None:
        if self.max_args == -1:
            return None if self.varargs is not None else len(self.args)
        return self.max_args

    @property
    def signature(self) -> str:
        """e.g. 'ROUND(number, digits=0)' — generated from the parameter names in `doc`."""
        return self.doc.split(" — ", 1)[0]

    @property
    def summary(self) -> str:
        return self.doc.split(" — ", 1)[-1]

    def accepted(self, position: int) -> Kinds:
        if position < len(self.args):
            return self.args[position]
        return self.varargs or EVERYTHING

    def result_type(self, arg_types: Sequence[ValueType]) -> ValueType:
        return self.result if isinstance(self.result, ValueType) else self.result(arg_types)


# --- helpers ------------------------------------------------------------------------------------


def _flatten(values: Sequence[Any]) -> Iterator[Any]:
    for value in values:
        if isinstance(value, list | tuple):
            yield from value
        else:
            yield value


def _whole(value: Any, what: str, low: int, high: int) -> int:
    if value.__class__ is bool or not rt.is_number(value) or value != int(value):
        raise ExpressionError(f"{what} must be a whole number, not {rt.describe_value(value)}")
    n = int(value)
    if not low <= n <= high:
        raise ExpressionError(f"{what} must be between {low} and {high}, got {n}")
    return n


def _need_number(fn: str, value: Any) -> None:
    if not rt.is_number(value):
        raise ExpressionError(f"{fn} needs a number, got {rt.describe_value(value)}")


def _as_date(fn: str, value: Any) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    if isinstance(value, date):
        return value
    raise ExpressionError(f"{fn} needs a date, got {rt.describe_value(value)}")


def _first(types: Sequence[ValueType]) -> ValueType:
    t = types[0] if types else VT.NUMBER
    return VT.NUMBER if t in (VT.ANY, VT.BOOL) else t


def _unified(types: Sequence[ValueType]) -> ValueType:
    result: ValueType | None = None
    for t in types:
        if t == VT.LIST:
            t = VT.ANY
        result = t if result is None else unify(result, t)
    return result or VT.ANY


def _numeric_unified(types: Sequence[ValueType]) -> ValueType:
    t = _unified(types)
    return t if t in NUMERIC else VT.NUMBER


def _if_result(types: Sequence[ValueType]) -> ValueType:
    return unify(types[1], types[2])


# --- implementations ------------------------------------------------------------------------------


def IF(cond: Callable[[], Any], then: Callable[[], Any], otherwise: Callable[[], Any]) -> Any:  # noqa: N802
    return then() if cond() else otherwise()


def AND(*conds: Callable[[], Any]) -> bool:  # noqa: N802
    return all(c() for c in conds)


def OR(*conds: Callable[[], Any]) -> bool:  # noqa: N802
    return any(c() for c in conds)


def NOT(value: Any) -> bool:  # noqa: N802
    return not value


def _round(mode: str) -> Callable[[Any, Any], Any]:
    def impl(value: Any, digits: Any = 0) -> Any:
        if value is None or digits is None:
            return None
        _need_number("ROUND", value)
        n = _whole(digits, "the number of digits", -15, 15)
        exact = rt.to_decimal(value)
        try:
            with decimal.localcontext(rt._DEC_CONTEXT):
                rounded = exact.quantize(Decimal(1).scaleb(-n), rounding=mode)
        except decimal.InvalidOperation:  # too many digits to keep: already that precise
            rounded = exact
        if isinstance(value, Decimal):
            return rounded
        if isinstance(value, float):
            return float(rounded)
        return int(rounded)

    return impl


def MIN(*values: Any) -> Any:  # noqa: N802
    best: Any = None
    for v in _flatten(values):
        if v is not None and (best is None or rt.lt(v, best)):
            best = v
    return best


def MAX(*values: Any) -> Any:  # noqa: N802
    best: Any = None
    for v in _flatten(values):
        if v is not None and (best is None or rt.gt(v, best)):
            best = v
    return best


def SUM(*values: Any) -> Any:  # noqa: N802
    total: Any = 0
    for v in _flatten(values):
        if v is not None:
            _need_number("SUM", v)
            total = rt.add(total, v)
    return total


def AVG(*values: Any) -> Any:  # noqa: N802
    total: Any = 0
    count = 0
    for v in _flatten(values):
        if v is not None:
            _need_number("AVG", v)
            total = rt.add(total, v)
            count += 1
    return rt.div(total, count) if count else None


def ABS(value: Any) -> Any:  # noqa: N802
    if value is None:
        return None
    _need_number("ABS", value)
    return abs(int(value) if value.__class__ is bool else value)


def COALESCE(*values: Any) -> Any:  # noqa: N802
    for v in values:
        if v is not None:
            return v
    return None


def ISBLANK(value: Any) -> bool:  # noqa: N802
    return value is None


def CLAMP(value: Any, low: Any, high: Any) -> Any:  # noqa: N802
    if value is None:
        return None
    if low is not None and rt.lt(value, low):
        value = low
    if high is not None and rt.gt(value, high):
        value = high
    return value


def DAYS(end: Any, start: Any) -> Any:  # noqa: N802
    if end is None or start is None:
        return None
    return (_as_date("DAYS", end) - _as_date("DAYS", start)).days


def TODAY() -> date:  # noqa: N802
    return rt.today()


def DATE(year: Any, month: Any, day: Any) -> Any:  # noqa: N802
    if year is None or month is None or day is None:
        return None
    y = _whole(year, "the year", 1, 9999)
    m = _whole(month, "the month", 1, 12)
    d = _whole(day, "the day", 1, 31)
    try:
        return date(y, m, d)
    except ValueError:
        raise ExpressionError(f"{y:04d}-{m:02d}-{d:02d} is not a valid date") from None


def YEAR(value: Any) -> Any:  # noqa: N802
    return None if value is None else _as_date("YEAR", value).year


def MONTH(value: Any) -> Any:  # noqa: N802
    return None if value is None else _as_date("MONTH", value).month


def QUARTER(value: Any) -> Any:  # noqa: N802
    return None if value is None else (_as_date("QUARTER", value).month + 2) // 3


def WEEKDAY(value: Any) -> Any:  # noqa: N802
    return None if value is None else _as_date("WEEKDAY", value).isoweekday()


def LEN(value: Any) -> Any:  # noqa: N802
    if value is None:
        return 0
    if not isinstance(value, str | list | tuple):
        raise ExpressionError(f"LEN needs text or a list, got {rt.describe_value(value)}")
    return len(value)


def CONTAINS(haystack: Any, needle: Any) -> bool:  # noqa: N802
    if haystack is None or needle is None:
        return False
    if isinstance(haystack, list | tuple):
        return rt.is_in(needle, haystack)
    if isinstance(haystack, str):
        if not isinstance(needle, str):
            raise ExpressionError(
                f"CONTAINS looks for text in text, got {rt.describe_value(needle)}"
            )
        return needle.casefold() in haystack.casefold()
    raise ExpressionError(f"CONTAINS needs text or a list, got {rt.describe_value(haystack)}")


def TEXT(value: Any, decimals: Any = None) -> str:  # noqa: N802
    if value is None:
        return ""
    if decimals is not None:
        _need_number("TEXT", value)
        n = _whole(decimals, "the number of decimals", 0, 10)
        rounded = _round(decimal.ROUND_HALF_UP)(rt.to_decimal(value), n)
        return f"{rounded:.{n}f}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return repr(value) if value != int(value) else str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ", ".join(TEXT(v) for v in value)
    return str(value)


# --- the registry ---------------------------------------------------------------------------------

ANY_K = EVERYTHING
NUM = ARITHMETIC | {VT.ANY}
DATES = DATELIKE | {VT.ANY}
ORD = ORDERABLE | {VT.ANY, VT.LIST}
NUMS = NUM | {VT.LIST}
TEXTY = frozenset({VT.TEXT, VT.LIST, VT.ANY})

_SPECS = [
    FunctionSpec(
        "IF",
        IF,
        (ANY_K, ANY_K, ANY_K),
        _if_result,
        "IF(condition, then, otherwise) — `then` when the condition holds, else "
        "`otherwise`; only the chosen one is calculated",
        "IF(amount > 1000, 'big', 'small')",
        "'big' when amount is 5000",
        lazy=True,
    ),
    FunctionSpec(
        "AND",
        AND,
        (ANY_K,),
        VT.BOOL,
        "AND(condition, ...) — yes when every condition holds (stops at the first that doesn't)",
        "AND(amount > 0, stage == 'won')",
        "True",
        varargs=ANY_K,
        lazy=True,
    ),
    FunctionSpec(
        "OR",
        OR,
        (ANY_K,),
        VT.BOOL,
        "OR(condition, ...) — yes when at least one condition holds",
        "OR(stage == 'won', stage == 'lost')",
        "True",
        varargs=ANY_K,
        lazy=True,
    ),
    FunctionSpec(
        "NOT",
        NOT,
        (ANY_K,),
        VT.BOOL,
        "NOT(condition) — yes when the condition does not hold (a blank counts as not holding)",
        "NOT(ISBLANK(amount))",
        "True",
    ),
    FunctionSpec(
        "ROUND",
        _round(decimal.ROUND_HALF_UP),
        (NUM, NUM),
        _first,
        "ROUND(number, digits=0) — rounds to `digits` decimals, halves away from zero "
        "as spreadsheets do",
        "ROUND(2.5, 0)",
        "3",
        min_args=1,
    ),
    FunctionSpec(
        "ROUNDUP",
        _round(decimal.ROUND_UP),
        (NUM, NUM),
        _first,
        "ROUNDUP(number, digits=0) — rounds away from zero",
        "ROUNDUP(2.01, 1)",
        "2.1",
        min_args=1,
    ),
    FunctionSpec(
        "ROUNDDOWN",
        _round(decimal.ROUND_DOWN),
        (NUM, NUM),
        _first,
        "ROUNDDOWN(number, digits=0) — rounds toward zero",
        "ROUNDDOWN(-2.99, 0)",
        "-2",
        min_args=1,
    ),
    FunctionSpec(
        "MIN",
        MIN,
        (ORD,),
        _unified,
        "MIN(value, ...) — the smallest value; blanks are skipped, lists are looked into",
        "MIN(actual / target, 1.2)",
        "1.2 when actual is 2 × target",
        varargs=ORD,
        lists=True,
    ),
    FunctionSpec(
        "MAX",
        MAX,
        (ORD,),
        _unified,
        "MAX(value, ...) — the largest value; blanks are skipped",
        "MAX(0, amount - 1000)",
        "0 when amount is 800",
        varargs=ORD,
        lists=True,
    ),
    FunctionSpec(
        "SUM",
        SUM,
        (NUMS,),
        _numeric_unified,
        "SUM(number, ...) — the total; blanks are skipped, 0 when all are blank",
        "SUM(q1, q2, q3, q4)",
        "the yearly total",
        varargs=NUMS,
        lists=True,
    ),
    FunctionSpec(
        "AVG",
        AVG,
        (NUMS,),
        _numeric_unified,
        "AVG(number, ...) — the average of the non-blank numbers (blank if none)",
        "AVG([3, 4, None])",
        "3.5",
        varargs=NUMS,
        lists=True,
    ),
    FunctionSpec(
        "ABS", ABS, (NUM,), _first, "ABS(number) — the value without its sign", "ABS(-5)", "5"
    ),
    FunctionSpec(
        "COALESCE",
        COALESCE,
        (ANY_K,),
        _unified,
        "COALESCE(value, ...) — the first value that is not blank",
        "COALESCE(discount, 0)",
        "0 when discount is blank",
        varargs=ANY_K,
    ),
    FunctionSpec(
        "ISBLANK",
        ISBLANK,
        (ANY_K,),
        VT.BOOL,
        "ISBLANK(value) — yes when the value is blank (same as value == None)",
        "ISBLANK(closed_at)",
        "True for an open deal",
    ),
    FunctionSpec(
        "CLAMP",
        CLAMP,
        (ORD, ORD, ORD),
        _first,
        "CLAMP(value, low, high) — the value, raised to `low` or lowered to `high` if outside",
        "CLAMP(attainment, 0, 1.5)",
        "1.5 when attainment is 2",
    ),
    FunctionSpec(
        "DAYS",
        DAYS,
        (DATES, DATES),
        VT.NUMBER,
        "DAYS(end, start) — whole calendar days from `start` to `end` (date-times "
        "count by their UTC day)",
        "DAYS(TODAY(), record_date)",
        "7 a week after the record's date",
    ),
    FunctionSpec(
        "TODAY",
        TODAY,
        (),
        VT.DATE,
        "TODAY() — today's date (UTC unless the caller fixes the day)",
        "TODAY()",
        "2025-03-14",
    ),
    FunctionSpec(
        "DATE",
        DATE,
        (NUM, NUM, NUM),
        VT.DATE,
        "DATE(year, month, day) — a date; an impossible date is an error",
        "DATE(2025, 3, 31)",
        "2025-03-31",
    ),
    FunctionSpec(
        "YEAR",
        YEAR,
        (DATES,),
        VT.NUMBER,
        "YEAR(date) — the year of a date",
        "YEAR(DATE(2025, 3, 31))",
        "2025",
    ),
    FunctionSpec(
        "MONTH",
        MONTH,
        (DATES,),
        VT.NUMBER,
        "MONTH(date) — the month, 1 to 12",
        "MONTH(DATE(2025, 3, 31))",
        "3",
    ),
    FunctionSpec(
        "QUARTER",
        QUARTER,
        (DATES,),
        VT.NUMBER,
        "QUARTER(date) — the calendar quarter, 1 to 4",
        "QUARTER(DATE(2025, 3, 31))",
        "1",
    ),
    FunctionSpec(
        "WEEKDAY",
        WEEKDAY,
        (DATES,),
        VT.NUMBER,
        "WEEKDAY(date) — day of the week, Monday = 1 … Sunday = 7 (ISO)",
        "WEEKDAY(DATE(2025, 3, 31))",
        "1",
    ),
    FunctionSpec(
        "LEN",
        LEN,
        (TEXTY,),
        VT.NUMBER,
        "LEN(text) — the number of characters (or items of a list); 0 for blank",
        "LEN('Acme')",
        "4",
    ),
    FunctionSpec(
        "CONTAINS",
        CONTAINS,
        (TEXTY, ANY_K),
        VT.BOOL,
        "CONTAINS(text_or_list, value) — yes when the text contains the value "
        "(ignoring case) or the list has it",
        "CONTAINS(notes, 'urgent')",
        "True for 'URGENT: call back'",
    ),
    FunctionSpec(
        "TEXT",
        TEXT,
        (ANY_K, NUM),
        VT.TEXT,
        "TEXT(value, decimals) — the value as text, numbers with a fixed number of "
        "decimals if given; blank gives ''",
        "TEXT(1234.5, 2)",
        "'1234.50'",
        min_args=1,
    ),
]

FUNCTIONS: dict[str, FunctionSpec] = {spec.name: spec for spec in _SPECS}


def function_docs(functions: dict[str, FunctionSpec] | None = None) -> list[dict[str, str]]:
    """name, signature, doc, example and example result of every function, sorted by name."""
    specs = FUNCTIONS if functions is None else functions
    return [
        {
            "name": s.name,
            "signature": s.signature,
            "doc": s.summary,
            "example": s.example,
            "example_result": s.example_result,
        }
        for s in sorted(specs.values(), key=lambda s: s.name)
    ]
