"""The one expression language of Quotaflow (formulas, conditions, filters, scoring rules).

PUBLIC API (packs, forms, kpis, scorecards... import only these names):
    ValueType, ExpressionError, CycleError, Expression, compile_expression, order_by_dependencies

TEMPORARY STUB: syntax-checks with `ast` only; the real engine replaces the implementation
behind the same names and signatures.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from quotaflow.errors import QuotaflowError


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


class ExpressionError(QuotaflowError):
    """The engine's only error type: a message, and where in the text it applies."""

    def __init__(self, message: str, text: str = "", line: int | None = None,
                 column: int | None = None) -> None:
        super().__init__(message)
        self.message, self.text, self.line, self.column = message, text, line, column

    def caret(self) -> str:
        """The offending source line and a ^ under the column ('' when unknown)."""
        if self.line is None or self.column is None:
            return ""
        src = self.text.splitlines()[self.line - 1] if self.text else ""
        return f"{src}\n{' ' * (self.column - 1)}^"

    def describe(self) -> str:
        """Message plus caret, ready to print."""
        caret = self.caret()
        return f"{self.message}\n{caret}" if caret else self.message


class CycleError(ExpressionError):
    """Definitions that depend on each other in a loop; `.cycle` names them in order."""

    def __init__(self, cycle: list[str]) -> None:
        super().__init__("circular dependency: " + " -> ".join(cycle))
        self.cycle = cycle


@dataclass(frozen=True)
class Expression:
    """A checked, compiled expression; evaluate it as often as needed, it never re-parses."""

    text: str
    names: frozenset[str]
    functions: frozenset[str]
    result_type: ValueType

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """Value for these name bindings (blank-aware; never raises but ExpressionError)."""
        raise NotImplementedError

    def sql_unsupported_reason(self) -> str | None:
        """None when `to_sql` can translate this expression, else why not."""
        return None

    def to_sql(self, resolve: Callable[[str], Any]) -> Any:
        """A SQLAlchemy boolean/column expression; `resolve` maps a name to a column element."""
        raise NotImplementedError


def compile_expression(text: str, names: Mapping[str, ValueType], *,
                       expect: ValueType | None = None, blank_as_zero: bool = False) -> Expression:
    """Parse and check `text` once for a context of `names` (name -> type)."""
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"syntax error: {exc.msg}", text, exc.lineno, exc.offset) from None
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    funcs = {n.func.id for n in ast.walk(tree)
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    unknown = sorted(used - funcs - set(names))
    if unknown:
        raise ExpressionError(f"unknown name '{unknown[0]}'", text)
    return Expression(text, frozenset(used - funcs), frozenset(funcs), expect or ValueType.ANY)


def order_by_dependencies(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Keys ordered so each comes after what it depends on; raise CycleError on a loop."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise CycleError(path[path.index(node):] + [node])
        state[node] = 1
        for dep in deps.get(node, ()):
            if dep in deps:
                visit(dep, path + [node])
        state[node] = 2
        order.append(node)

    for key in deps:
        visit(key, [])
    return order
