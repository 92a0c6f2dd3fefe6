"""compile_expression, the Expression it returns, and dependency ordering."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from quotaflow.expressions.checker import Checked, check
from quotaflow.expressions.compiler import compile_checked
from quotaflow.expressions.errors import CycleError, ExpressionError
from quotaflow.expressions.functions import FUNCTIONS, FunctionSpec
from quotaflow.expressions.types import ValueType, compatible, label

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement

CACHE_SIZE = 4096


@dataclass(frozen=True)
class Expression:
    """A checked, compiled expression; evaluate it as often as needed, it never re-parses."""

    text: str
    names: frozenset[str]
    functions: frozenset[str]
    result_type: ValueType
    blank_as_zero: bool = field(default=False, compare=False)
    checked: Checked | None = field(default=None, repr=False, compare=False)
    _fn: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    def _ensure(self) -> tuple[Checked, Callable[..., Any]]:
        if self.checked is None or self._fn is None:  # built by hand: compile on first use
            other = compile_expression(
                self.text,
                dict.fromkeys(self.names, ValueType.ANY),
                blank_as_zero=self.blank_as_zero,
            )
            object.__setattr__(self, "checked", other.checked)
            object.__setattr__(self, "_fn", other._fn)
        assert self.checked is not None and self._fn is not None
        return self.checked, self._fn

    def __post_init__(self) -> None:
        if self._fn is not None:  # the compiled function answers evaluate() directly
            object.__setattr__(self, "evaluate", self._fn)

    def evaluate(self, values: Mapping[str, Any], *, today: date | None = None) -> Any:
        """Value for these name bindings (blank-aware; never raises but ExpressionError).

        A name missing from `values` is blank. `today` fixes what TODAY() returns
        (also settable for a whole block with `runtime.TODAY.set(...)`). On a compiled
        Expression this method is replaced by the generated function itself.
        """
        return self._ensure()[1](values, today=today)

    def evaluate_reference(self, values: Mapping[str, Any], *, today: date | None = None) -> Any:
        """The same value computed by the simpleeval reference evaluator (slow; for tests)."""
        from quotaflow.expressions.reference import reference_evaluate

        return reference_evaluate(self, values, today=today)

    def sql_unsupported_reason(self) -> str | None:
        """None when `to_sql` can translate this expression, else why not."""
        from quotaflow.expressions.sql import unsupported_reason

        return unsupported_reason(self._ensure()[0])

    def to_sql(
        self, resolve: Callable[[str], ColumnElement[Any]], *, today: date | None = None
    ) -> ColumnElement[Any]:
        """A SQLAlchemy boolean/column expression; `resolve` maps a name to a column element."""
        from quotaflow.expressions.sql import translate

        return translate(self._ensure()[0], resolve, today=today)


def _names_key(names: Mapping[str, ValueType]) -> tuple[tuple[str, ValueType], ...]:
    return tuple(sorted((str(k), ValueType(v)) for k, v in names.items()))


def compile_expression(
    text: str,
    names: Mapping[str, ValueType],
    *,
    expect: ValueType | None = None,
    blank_as_zero: bool = False,
    extra_functions: Iterable[FunctionSpec] | Mapping[str, FunctionSpec] = (),
) -> Expression:
    """Parse and check `text` once for a context of `names` (name -> type).

    `expect` is the type the place of use needs (BOOL for a condition, MONEY for a money
    field...); a result of an incompatible type is rejected. `blank_as_zero` makes blank
    numeric names count as 0 instead of making the result blank. `extra_functions` adds
    plugin functions. Compiled forms are cached by text and context.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    extra = tuple(
        extra_functions.values() if isinstance(extra_functions, Mapping) else extra_functions
    )
    return _compile_cached(
        text,
        _names_key(names),
        None if expect is None else ValueType(expect),
        bool(blank_as_zero),
        extra,
    )


@functools.lru_cache(maxsize=CACHE_SIZE)
def _compile_cached(
    text: str,
    names: tuple[tuple[str, ValueType], ...],
    expect: ValueType | None,
    blank_as_zero: bool,
    extra: tuple[FunctionSpec, ...],
) -> Expression:
    functions = dict(FUNCTIONS)
    functions.update({spec.name: spec for spec in extra})
    checked = check(text, dict(names), functions)
    result = checked.result_type
    if expect is not None and not compatible(result, expect):
        if expect == ValueType.BOOL:
            message = (
                f"this must be a condition (yes/no, e.g. amount > 0), but it gives {label(result)}"
            )
        elif expect == ValueType.TEXT:
            message = f"this must give text, but it gives {label(result)}; wrap it in TEXT(...)"
        else:
            message = f"this must give {label(expect)}, but it gives {label(result)}"
        raise ExpressionError(message, text, 1, 1)
    try:
        fn = compile_checked(checked, blank_as_zero)
    except (RecursionError, MemoryError, SyntaxError, ValueError) as exc:  # pragma: no cover
        raise ExpressionError(f"the expression could not be compiled ({exc})", text) from None
    return Expression(
        text=text,
        names=checked.names,
        functions=checked.functions,
        result_type=result if expect is None or result != ValueType.ANY else result,
        blank_as_zero=blank_as_zero,
        checked=checked,
        _fn=fn,
    )


def order_by_dependencies(deps: Mapping[str, Iterable[str]]) -> list[str]:
    """Keys ordered so each comes after what it depends on; raise CycleError on a loop.

    Dependencies that are not keys (plain fields) are ignored. The order is stable: keys
    keep their given order unless a dependency must come first. Iterative, so chains of
    any length work.
    """
    graph = {key: [d for d in deps[key] if d in deps] for key in deps}
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in graph:
        if state.get(root) == 2:
            continue
        path: list[str] = [root]
        iters = [iter(graph[root])]
        state[root] = 1
        while iters:
            nxt = next(iters[-1], None)
            if nxt is None:
                done = path.pop()
                iters.pop()
                state[done] = 2
                order.append(done)
            elif state.get(nxt) == 1:
                raise CycleError(path[path.index(nxt) :] + [nxt])
            elif state.get(nxt) != 2:
                state[nxt] = 1
                path.append(nxt)
                iters.append(iter(graph[nxt]))
    return order
