"""The reference evaluator: simpleeval walking the checked tree with the same semantics.

Slow (it walks the tree on every call) and only used by tests, to prove that the compiled
fast path computes the same values and raises the same errors. Operators and functions
are the `runtime` and registry functions; simpleeval provides the tree walk, laziness of
`and`/`or`/`x if c else y` and its own per-step checks on results.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from datetime import date
from typing import TYPE_CHECKING, Any

from simpleeval import EvalWithCompoundTypes

from quotaflow.expressions import runtime as rt
from quotaflow.expressions.checker import CMPOPS
from quotaflow.expressions.errors import ExpressionError
from quotaflow.expressions.types import NUMERIC

if TYPE_CHECKING:
    from quotaflow.expressions.engine import Expression

_OPERATORS: dict[type, Callable[..., Any]] = {
    ast.Add: rt.add,
    ast.Sub: rt.sub,
    ast.Mult: rt.mul,
    ast.Div: rt.div,
    ast.FloorDiv: rt.floordiv,
    ast.Mod: rt.mod,
    ast.Pow: rt.power,
    ast.USub: rt.neg,
    ast.UAdd: rt.pos,
    ast.Not: lambda x: not x,
}


class _Reference(EvalWithCompoundTypes):
    def __init__(self, expression: Expression, names: dict[str, Any]) -> None:
        assert expression.checked is not None
        self.specs = expression.checked.specs
        super().__init__(
            operators=dict(_OPERATORS),
            functions={n: s.impl for n, s in self.specs.items()},
            names=names,
        )
        self.nodes[ast.Constant] = lambda node: node.value

    def _eval_boolop(self, node: ast.BoolOp) -> bool:
        return bool(super()._eval_boolop(node))

    def _eval_compare(self, node: ast.Compare) -> bool:
        left_node: ast.AST = node.left
        left = self._eval(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            symbol = CMPOPS[type(op)]
            right = self._eval(right_node)
            none_left = isinstance(left_node, ast.Constant) and left_node.value is None
            none_right = isinstance(right_node, ast.Constant) and right_node.value is None
            if symbol in ("is", "is not") or (symbol in ("==", "!=") and (none_left or none_right)):
                other = left if none_right else right
                ok = (other is None) == (symbol in ("is", "=="))
            elif symbol == "in":
                ok = rt.is_in(left, right)
            elif symbol == "not in":
                ok = rt.not_in(left, right)
            else:
                ok = rt.COMPARE[symbol](left, right)
            if not ok:
                return False
            left_node, left = right_node, right
        return True

    def _eval_subscript(self, node: ast.Subscript) -> Any:
        return rt.index(self._eval(node.value), self._eval(node.slice))

    def _eval_call(self, node: ast.Call) -> Any:
        assert isinstance(node.func, ast.Name)
        spec = self.specs[node.func.id]
        if spec.lazy:
            thunks = [(lambda a=a: self._eval(a)) for a in node.args]
            return spec.impl(*thunks)
        return spec.impl(*(self._eval(a) for a in node.args))


def reference_evaluate(
    expression: Expression, values: Mapping[str, Any], *, today: date | None = None
) -> Any:
    """Evaluate with simpleeval; same results and same ExpressionError messages as evaluate."""
    checked = expression.checked
    assert checked is not None
    names: dict[str, Any] = {}
    for name in checked.names:
        value = values.get(name)
        if value is None and expression.blank_as_zero and checked.name_types[name] in NUMERIC:
            value = 0
        names[name] = value
    token = rt.TODAY.set(today) if today is not None else None
    evaluator = _Reference(expression, names)
    try:
        return evaluator.eval(expression.text, previously_parsed=checked.tree)
    except ExpressionError as exc:
        raise ExpressionError(exc.message, expression.text) from None
    finally:
        if token is not None:
            rt.TODAY.reset(token)
