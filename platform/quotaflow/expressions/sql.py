"""Translate the KPI-filter subset of the language to SQLAlchemy.

The subset: comparisons (== != < <= > >=, chained), and/or/not, `in [...]`/`not in [...]`,
blank tests (`x == None`, `x is None`, ISBLANK), names, literals, yes/no names used as
conditions, and the functions YEAR, MONTH, QUARTER, DAYS, DATE, TODAY, ISBLANK, AND, OR,
NOT. Anything else (arithmetic, IF, text functions, ordering text) is refused with the
reason, so a KPI never silently falls back to scanning records in Python.

Semantics match Python evaluation exactly: SQL's NULL logic is three-valued, the
language's is two-valued (a comparison with blank is false, and `not` of it is true), so
every comparison on a nullable side is guarded with IS NOT NULL, and conditions never
yield NULL. Dialect differences (dates stored as text on SQLite, time zones on
PostgreSQL) live in small constructs compiled per dialect.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    false,
    func,
    literal_column,
    not_,
    or_,
    true,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from quotaflow.expressions import runtime as rt
from quotaflow.expressions.checker import CMPOPS, Checked
from quotaflow.expressions.errors import ExpressionError
from quotaflow.expressions.functions import FUNCTIONS
from quotaflow.expressions.types import DATELIKE, NUMERIC, ValueType

VT = ValueType
Resolver = Callable[[str], ColumnElement[Any]]

SQL_FUNCTIONS = frozenset(
    {"YEAR", "MONTH", "QUARTER", "DAYS", "DATE", "TODAY", "ISBLANK", "AND", "OR", "NOT"}
)


class SqlUnsupported(ExpressionError):
    """The expression is outside the subset that translates to SQL."""


# --- dialect-specific constructs ----------------------------------------------------------------


class DatePart(FunctionElement[int]):
    """YEAR/MONTH/QUARTER of a date or a UTC date-time."""

    type = Integer()
    inherit_cache = True
    name = "qf_date_part"

    def __init__(self, part: str, value: ColumnElement[Any], is_datetime: bool) -> None:
        self.part, self.is_datetime = part, is_datetime
        super().__init__(value)


class DayNumber(FunctionElement[int]):
    """A date (or a date-time's UTC date) as a day count, so two of them subtract to days."""

    type = Integer()
    inherit_cache = True
    name = "qf_day_number"

    def __init__(self, value: ColumnElement[Any], is_datetime: bool) -> None:
        self.is_datetime = is_datetime
        super().__init__(value)


class JsonDate(FunctionElement[date]):
    """An ISO date kept as text in the values JSON, as a date."""

    type = Date()
    inherit_cache = True
    name = "qf_json_date"


class JsonDateTime(FunctionElement[datetime]):
    """An ISO date-time kept as text in the values JSON, as a date-time."""

    type = DateTime(timezone=True)
    inherit_cache = True
    name = "qf_json_datetime"


class LocalDay(FunctionElement[date]):
    """The day in a named time zone of a stored UTC date-time (KPI roll-ups bucket by it)."""

    type = Date()
    inherit_cache = True
    name = "qf_local_day"


class MonthStart(FunctionElement[date]):
    """The first day of a date's month."""

    type = Date()
    inherit_cache = True
    name = "qf_month_start"


def _arg(compiler: SQLCompiler, element: FunctionElement[Any], **kw: Any) -> str:
    return compiler.process(list(element.clauses)[0], **kw)


@compiles(DatePart, "sqlite")
def _date_part_sqlite(element: DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    value = _arg(compiler, element, **kw)
    if element.part == "QUARTER":
        return f"((CAST(strftime('%m', {value}) AS INTEGER) + 2) / 3)"
    code = {"YEAR": "%Y", "MONTH": "%m"}[element.part]
    return f"CAST(strftime('{code}', {value}) AS INTEGER)"


@compiles(DatePart)
def _date_part_pg(element: DatePart, compiler: SQLCompiler, **kw: Any) -> str:
    value = _arg(compiler, element, **kw)
    if element.is_datetime:
        value = f"({value} AT TIME ZONE 'UTC')"
    return f"CAST(EXTRACT({element.part} FROM {value}) AS INTEGER)"


@compiles(DayNumber, "sqlite")
def _day_number_sqlite(element: DayNumber, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(julianday(date({_arg(compiler, element, **kw)})) AS INTEGER)"


@compiles(DayNumber)
def _day_number_pg(element: DayNumber, compiler: SQLCompiler, **kw: Any) -> str:
    value = _arg(compiler, element, **kw)
    if element.is_datetime:
        value = f"({value} AT TIME ZONE 'UTC')"
    return f"(CAST({value} AS DATE) - DATE '2000-01-01')"


@compiles(JsonDate, "sqlite")
def _json_date_sqlite(element: JsonDate, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({_arg(compiler, element, **kw)})"


@compiles(JsonDate)
def _json_date_pg(element: JsonDate, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_arg(compiler, element, **kw)} AS DATE)"


@compiles(JsonDateTime, "sqlite")
def _json_datetime_sqlite(element: JsonDateTime, compiler: SQLCompiler, **kw: Any) -> str:
    # the text form SQLAlchemy stores DateTime in on SQLite ('YYYY-MM-DD HH:MM:SS.ffffff', UTC)
    return f"(strftime('%Y-%m-%d %H:%M:%f', {_arg(compiler, element, **kw)}) || '000')"


@compiles(JsonDateTime)
def _json_datetime_pg(element: JsonDateTime, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({_arg(compiler, element, **kw)} AS TIMESTAMP WITH TIME ZONE)"


# --- the resolver for the records table --------------------------------------------------------

RECORD_COLUMNS = {
    "stage": VT.TEXT,
    "amount": VT.MONEY,
    "record_date": VT.DATE,
    "closed_at": VT.DATETIME,
    "created_at": VT.DATETIME,
    "updated_at": VT.DATETIME,
}


def record_column_resolver(form_fields: Mapping[str, ValueType]) -> Resolver:
    """Map names to `records` columns: the indexed columns first, else the values JSON.

    stage -> records.stage; amount -> amount_cents / 100; record_date, closed_at,
    created_at, updated_at -> their columns; any other name -> the JSON value, cast by
    the field's declared type (numbers as float, text, yes/no, ISO dates and date-times).
    """
    from quotaflow.records.models import Record

    def resolve(name: str) -> ColumnElement[Any]:
        if name == "stage":
            return Record.stage  # type: ignore[return-value]
        if name == "amount":
            return Record.amount_cents / 100  # true division: NUMERIC / REAL
        if name in ("record_date", "closed_at", "created_at", "updated_at"):
            return getattr(Record, name)
        value = Record.values[name]
        vt = form_fields.get(name, VT.ANY)
        if vt in NUMERIC:
            return value.as_float()
        if vt == VT.BOOL:
            return value.as_boolean()
        if vt == VT.DATE:
            return JsonDate(value.as_string())
        if vt == VT.DATETIME:
            return JsonDateTime(value.as_string())
        if vt == VT.TEXT:
            return value.as_string()
        raise SqlUnsupported(
            f"'{name}' has no declared type, so it can't be compared in the database"
        )

    return resolve


def types_for_records(form_fields: Mapping[str, ValueType]) -> dict[str, ValueType]:
    """The name -> type context of a KPI filter over a form's records."""
    return {**form_fields, **RECORD_COLUMNS}


# --- translation ---------------------------------------------------------------------------------

_SQL_TYPES: dict[ValueType, Any] = {
    VT.NUMBER: Float(),
    VT.MONEY: Float(),
    VT.PERCENT: Float(),
    VT.TEXT: String(),
    VT.BOOL: Boolean(),
    VT.DATE: Date(),
    VT.DATETIME: DateTime(timezone=True),
}


class _Value:
    """A translated value: SQL, its type, whether it may be NULL, its Python literal."""

    def __init__(
        self,
        sql: ColumnElement[Any],
        vt: ValueType,
        nullable: bool,
        literal: Any = None,
        is_literal: bool = False,
    ) -> None:
        self.sql, self.vt, self.nullable = sql, vt, nullable
        self.literal, self.is_literal = literal, is_literal


class _Translator:
    def __init__(self, checked: Checked, resolve: Resolver, today: date | None) -> None:
        self.checked = checked
        self.resolve = resolve
        self.today = today
        self.params = 0

    def refuse(self, reason: str) -> SqlUnsupported:
        return SqlUnsupported(reason, self.checked.text)

    def bind(self, value: Any, vt: ValueType) -> ColumnElement[Any]:
        self.params += 1
        return bindparam(
            f"qf_{self.params}", value, type_=_SQL_TYPES.get(vt, String()), unique=True
        )

    # conditions: always TRUE or FALSE, never NULL
    def condition(self, node: ast.AST) -> ColumnElement[bool]:
        if isinstance(node, ast.BoolOp):
            parts = [self.condition(v) for v in node.values]
            return and_(*parts) if isinstance(node.op, ast.And) else or_(*parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not_(self.condition(node.operand))
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            name = node.func.id
            if name in ("AND", "OR"):
                parts = [self.condition(a) for a in node.args]
                return and_(*parts) if name == "AND" else or_(*parts)
            if name == "NOT":
                return not_(self.condition(node.args[0]))
            if name == "ISBLANK":
                return self.value(node.args[0]).sql.is_(None)
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return true() if node.value else false()
        value = self.value(node)
        if value.vt == VT.BOOL:
            return func.coalesce(value.sql, false()) if value.nullable else value.sql
        raise self.refuse(
            "a KPI filter must be a condition made of comparisons (like amount > 1000); "
            f"{_describe(node)} is not one"
        )

    def value(self, node: ast.AST) -> _Value:
        vt = self.checked.type_of(node)
        if isinstance(node, ast.Name):
            return _Value(self.resolve(node.id), self.checked.name_types.get(node.id, vt), True)
        if isinstance(node, ast.Constant):
            if node.value is None:
                raise self.refuse("None can only be used to test for blank (x == None)")
            return _Value(self.bind(node.value, vt), vt, False, node.value, True)
        if (
            isinstance(node, ast.UnaryOp)
            and isinstance(node.op, ast.USub)
            and isinstance(node.operand, ast.Constant)
            and type(node.operand.value) in (int, float)
        ):
            number = -node.operand.value  # type: ignore[operator]
            return _Value(self.bind(number, VT.NUMBER), VT.NUMBER, False, number, True)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            raise self.refuse(
                "arithmetic is not supported in KPI filters; compare stored fields with values"
            )
        if isinstance(node, ast.Compare | ast.BoolOp) or (
            isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)
        ):
            return _Value(self.condition(node), VT.BOOL, False)
        raise self.refuse(f"{_describe(node)} is not supported in KPI filters")

    def call(self, node: ast.Call) -> _Value:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        if name not in SQL_FUNCTIONS or self.checked.specs[name] is not FUNCTIONS.get(name):
            raise self.refuse(f"{name} is not supported in KPI filters")
        if name == "TODAY":
            day = self.today or rt.today()
            return _Value(self.bind(day, VT.DATE), VT.DATE, False, day, True)
        if name == "DATE":
            parts = [self.value(a) for a in node.args]
            if not all(p.is_literal for p in parts):
                raise self.refuse("DATE(...) in a KPI filter needs plain numbers")
            day = FUNCTIONS["DATE"].impl(*(p.literal for p in parts))
            return _Value(self.bind(day, VT.DATE), VT.DATE, False, day, True)
        if name in ("YEAR", "MONTH", "QUARTER"):
            arg = self.date_value(node.args[0], name)
            part = DatePart(name, arg.sql, arg.vt == VT.DATETIME)
            return _Value(part, VT.NUMBER, arg.nullable)
        if name == "DAYS":
            end, start = (self.date_value(a, name) for a in node.args)
            sql = DayNumber(end.sql, end.vt == VT.DATETIME) - DayNumber(
                start.sql, start.vt == VT.DATETIME
            )
            return _Value(sql, VT.NUMBER, end.nullable or start.nullable)
        return _Value(self.condition(node), VT.BOOL, False)

    def date_value(self, node: ast.AST, fn: str) -> _Value:
        value = self.value(node)
        if value.vt not in DATELIKE:
            raise self.refuse(f"{fn} in a KPI filter needs a date field")
        return value

    def compare(self, node: ast.Compare) -> ColumnElement[bool]:
        parts: list[ColumnElement[bool]] = []
        left_node: ast.AST = node.left
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            parts.append(self.compare_pair(CMPOPS[type(op)], left_node, right_node))
            left_node = right_node
        return parts[0] if len(parts) == 1 else and_(*parts)

    def compare_pair(self, symbol: str, l_node: ast.AST, r_node: ast.AST) -> ColumnElement[bool]:
        l_none = isinstance(l_node, ast.Constant) and l_node.value is None
        r_none = isinstance(r_node, ast.Constant) and r_node.value is None
        if symbol in ("is", "is not") or (symbol in ("==", "!=") and (l_none or r_none)):
            positive = symbol in ("is", "==")
            if l_none and r_none:
                return true() if positive else false()
            other = self.value(l_node if r_none else r_node)
            return other.sql.is_(None) if positive else other.sql.is_not(None)
        left = self.value(l_node)
        if symbol in ("in", "not in"):
            assert isinstance(r_node, ast.List)
            items = [self.value(item) for item in r_node.elts]
            if not all(i.is_literal for i in items):
                raise self.refuse("the list after 'in' must hold plain values in a KPI filter")
            if left.vt == VT.DATETIME:
                items = [self.widen(i) for i in items]
            if not items:
                return false()
            # each item bound with its own type (PostgreSQL would cast all to the first's)
            binds = [i.sql for i in items]
            test = left.sql.in_(binds) if symbol == "in" else left.sql.not_in(binds)
            return and_(left.sql.is_not(None), test) if left.nullable else test
        right = self.value(r_node)
        if symbol not in ("==", "!=") and VT.TEXT in (left.vt, right.vt):
            raise self.refuse(
                "ordering text (<, >) is not supported in KPI filters; use == or in [...]"
            )
        if left.vt == VT.DATETIME and right.is_literal:
            right = self.widen(right)
        if right.vt == VT.DATETIME and left.is_literal:
            left = self.widen(left)
        if {left.vt, right.vt} == {VT.DATE, VT.DATETIME}:
            raise self.refuse("comparing a date field with a date-time field is not supported")
        ops: dict[str, Callable[[Any, Any], ColumnElement[bool]]] = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        guards = [v.sql.is_not(None) for v in (left, right) if v.nullable]
        return and_(*guards, ops[symbol](left.sql, right.sql))

    def widen(self, value: _Value) -> _Value:
        """A date literal compared with a date-time: midnight UTC of that day."""
        day = value.literal
        if isinstance(day, date) and not isinstance(day, datetime):
            moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return _Value(self.bind(moment, VT.DATETIME), VT.DATETIME, False, moment, True)
        return value


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return f"'{node.id}'"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return f"{node.func.id}(...)"
    if isinstance(node, ast.IfExp):
        return "'... if ... else ...'"
    return "this part"


def translate(checked: Checked, resolve: Resolver, *, today: date | None = None) -> Any:
    """SQL for `checked`: a condition when it gives yes/no, else a value."""
    translator = _Translator(checked, resolve, today)
    if checked.result_type == VT.BOOL:
        return translator.condition(checked.tree)
    return translator.value(checked.tree).sql


def unsupported_reason(checked: Checked) -> str | None:
    """Why `checked` can't be translated, or None when it can."""

    def dummy(name: str) -> ColumnElement[Any]:
        vt = checked.name_types.get(name, VT.ANY)
        return literal_column(name, _SQL_TYPES.get(vt, String()))

    try:
        translate(checked, dummy, today=date(2000, 1, 1))
    except SqlUnsupported as exc:
        return exc.message
    return None


@compiles(LocalDay, "sqlite")
def _local_day_sqlite(element: LocalDay, compiler: SQLCompiler, **kw: Any) -> str:
    # qf_local_day is a Python function registered on every SQLite connection (db.py):
    # SQLite knows no time zones, and a fixed offset would be wrong across DST changes
    value, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"qf_local_day({value}, {zone})"


@compiles(LocalDay)
def _local_day_pg(element: LocalDay, compiler: SQLCompiler, **kw: Any) -> str:
    value, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(timezone({zone}, {value}) AS DATE)"


@compiles(MonthStart, "sqlite")
def _month_start_sqlite(element: MonthStart, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({_arg(compiler, element, **kw)}, 'start of month')"


@compiles(MonthStart)
def _month_start_pg(element: MonthStart, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST(date_trunc('month', {_arg(compiler, element, **kw)}) AS DATE)"


@lru_cache(maxsize=65536)
def local_day_text(value: str | None, zone: str) -> str | None:
    """SQLite's qf_local_day: 'YYYY-MM-DD HH:MM...' (UTC, as stored) -> the local ISO day."""
    if value is None:
        return None
    try:
        instant = datetime.fromisoformat(value[:16]).replace(tzinfo=UTC)
        return instant.astimezone(ZoneInfo(zone)).date().isoformat()
    except (ValueError, KeyError):
        return None
