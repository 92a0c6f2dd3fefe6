"""Value types known at compile time, and how they combine."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class ValueType(StrEnum):
    """What a name or a result holds; used for compile-time type checks."""

    NUMBER = "number"
    MONEY = "money"
    PERCENT = "percent"
    TEXT = "text"
    BOOL = "bool"
    DATE = "date"
    DATETIME = "datetime"
    LIST = "list"
    ANY = "any"


NUMERIC = frozenset({ValueType.NUMBER, ValueType.MONEY, ValueType.PERCENT})
# yes/no values count as 0/1 in arithmetic, as in spreadsheets
ARITHMETIC = NUMERIC | {ValueType.BOOL}
DATELIKE = frozenset({ValueType.DATE, ValueType.DATETIME})
ORDERABLE = ARITHMETIC | DATELIKE | {ValueType.TEXT}
EVERYTHING = frozenset(ValueType)

_LABELS = {
    ValueType.NUMBER: "a number",
    ValueType.MONEY: "an amount of money",
    ValueType.PERCENT: "a percentage",
    ValueType.TEXT: "text",
    ValueType.BOOL: "a yes/no value",
    ValueType.DATE: "a date",
    ValueType.DATETIME: "a date and time",
    ValueType.LIST: "a list",
    ValueType.ANY: "any value",
}


def label(vt: ValueType) -> str:
    """How a type is named in messages for non-programmers ('a number', 'text'...)."""
    return _LABELS[vt]


def kind(vt: ValueType) -> str:
    """The family a type belongs to: number (incl. money/percent/bool), date, or itself."""
    if vt in ARITHMETIC:
        return "number"
    if vt in DATELIKE:
        return "date"
    return vt.value


def compatible(actual: ValueType, expected: ValueType) -> bool:
    """May a result of type `actual` be used where `expected` is required?

    ANY matches everything; number, money and percent are mutually compatible; a date
    may stand for a date-time and back. A yes/no value is only accepted where a
    yes/no value is expected (a condition that gives a number is a mistake).
    """
    if actual == expected or ValueType.ANY in (actual, expected):
        return True
    if actual in NUMERIC and expected in NUMERIC:
        return True
    return actual in DATELIKE and expected in DATELIKE


def arithmetic_result(op: str, left: ValueType, right: ValueType) -> ValueType:
    """Result type of a numeric operation (both operands numeric or ANY)."""
    types = {left, right}
    if ValueType.MONEY in types:
        if op == "/" and left == right == ValueType.MONEY:
            return ValueType.NUMBER
        if op == "/" and right == ValueType.MONEY:
            return ValueType.NUMBER
        return ValueType.MONEY
    if ValueType.PERCENT in types and ValueType.ANY not in types:
        if (
            op == "*"
            or (op in "+-" and types == {ValueType.PERCENT})
            or (op == "/" and left == ValueType.PERCENT)
        ):
            return ValueType.PERCENT
    return ValueType.NUMBER


def unify(a: ValueType, b: ValueType) -> ValueType:
    """The type of a value that is either an `a` or a `b` (IF branches, COALESCE...)."""
    if a == b:
        return a
    if ValueType.ANY in (a, b):
        return ValueType.ANY
    if a in NUMERIC and b in NUMERIC:
        return ValueType.MONEY if ValueType.MONEY in (a, b) else ValueType.NUMBER
    if a in DATELIKE and b in DATELIKE:
        return ValueType.DATETIME
    return ValueType.ANY


def type_of_value(value: Any) -> ValueType:
    """The type of a plain Python value (for the CLI's --vars and for tests)."""
    if isinstance(value, bool):
        return ValueType.BOOL
    if isinstance(value, Decimal):
        return ValueType.MONEY
    if isinstance(value, int | float):
        return ValueType.NUMBER
    if isinstance(value, str):
        return ValueType.TEXT
    if isinstance(value, datetime):
        return ValueType.DATETIME
    if isinstance(value, date):
        return ValueType.DATE
    if isinstance(value, list | tuple):
        return ValueType.LIST
    return ValueType.ANY
