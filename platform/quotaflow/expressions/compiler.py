"""The fast path: translate a checked AST into one Python function.

The checker has already proved the tree uses only whitelisted nodes, known names and
registered functions, so the generated source contains nothing the admin wrote except
literals (emitted with repr) and names (read from the values mapping by key). It runs
with empty builtins; helpers come from `runtime` and the function registry.

Arithmetic and comparisons on plain int/float operands are inlined, with the same range
check the runtime helpers apply; anything else (blank, Decimal, dates, text, bool) takes
the helper, so both paths share one set of semantics.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from datetime import date
from typing import Any

from quotaflow.expressions import runtime as rt
from quotaflow.expressions.checker import BINOPS, CMPOPS, Checked
from quotaflow.expressions.errors import ExpressionError
from quotaflow.expressions.types import NUMERIC

_INLINE_ARITH = {"+", "-", "*"}
_CMP_HELPERS = {"==": "_eq", "!=": "_ne", "<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_BIN_HELPERS = {
    "+": "_add",
    "-": "_sub",
    "*": "_mul",
    "/": "_div",
    "//": "_floordiv",
    "%": "_mod",
    "**": "_pow",
}
_LIMIT = repr(rt.MAX_NUMBER)


def _base_globals() -> dict[str, Any]:
    return {
        "__builtins__": {},
        "_F": rt.NUMBER_TYPES,
        "_S": str,
        "_big": rt.too_large,
        "_add": rt.add,
        "_sub": rt.sub,
        "_mul": rt.mul,
        "_div": rt.div,
        "_floordiv": rt.floordiv,
        "_mod": rt.mod,
        "_pow": rt.power,
        "_neg": rt.neg,
        "_pos": rt.pos,
        "_eq": rt.eq,
        "_ne": rt.ne,
        "_lt": rt.lt,
        "_le": rt.le,
        "_gt": rt.gt,
        "_ge": rt.ge,
        "_in": rt.is_in,
        "_notin": rt.not_in,
        "_index": rt.index,
    }


class _Generator:
    def __init__(self, checked: Checked, blank_as_zero: bool) -> None:
        self.checked = checked
        self.blank_as_zero = blank_as_zero
        self.globals = _base_globals()
        self.slots: dict[str, str] = {}
        self.counter = 0

    def temp(self, prefix: str) -> str:
        self.counter += 1
        return f"_{prefix}{self.counter}"

    # an operand usable twice without re-evaluation: a local or a literal
    @staticmethod
    def is_atom(code: str) -> bool:
        return code.isidentifier() or _is_literal(code)

    def bind(self, code: str, prefix: str) -> tuple[str, str]:
        """(code that evaluates and stores, name to reuse it) for a compound operand."""
        if self.is_atom(code):
            return code, code
        name = self.temp(prefix)
        return f"({name} := {code})", name

    def number_test(self, first: str, code: str) -> str:
        """A test that `code` (already stored, or a literal) is a plain int/float."""
        if _is_number_literal(code):
            return ""
        return f"({first}.__class__ in _F)"

    def both_numbers(self, a_first: str, a: str, b_first: str, b: str) -> str:
        tests = [t for t in (self.number_test(a_first, a), self.number_test(b_first, b)) if t]
        return " & ".join(tests) if tests else "True"

    def function(self) -> Callable[..., Any]:
        body = self.expr(self.checked.tree)
        lines = [
            "def _expression(v, today=None):",
            "    if today is not None:",
            "        return _with_today(_expression, v, today)",
            "    try:",
        ]
        if self.slots:
            lines.append("        g = v.get")
        for name, slot in self.slots.items():
            lines.append(f"        {slot} = g({name!r})")
            if self.blank_as_zero and self.checked.name_types.get(name) in NUMERIC:
                lines.append(f"        if {slot} is None: {slot} = 0")
        lines += [
            f"        return {body}",
            "    except _Exception as exc:",
            "        raise _failed(exc, _TEXT) from None",
        ]
        source = "\n".join(lines)
        namespace = self.globals
        namespace.update(
            _with_today=_with_today, _failed=_failed, _TEXT=self.checked.text, _Exception=Exception
        )
        exec(compile(source, "<expression>", "exec"), namespace)  # noqa: S102 - checked tree
        fn: Callable[..., Any] = namespace["_expression"]
        fn.__qf_source__ = source  # type: ignore[attr-defined]
        return fn

    # --- nodes ------------------------------------------------------------------------------------

    def expr(self, node: ast.AST) -> str:  # noqa: C901 - one dispatch
        if isinstance(node, ast.Constant):
            return _literal(node.value)
        if isinstance(node, ast.Name):
            if node.id not in self.slots:
                self.slots[node.id] = f"_v{len(self.slots)}"
            return self.slots[node.id]
        if isinstance(node, ast.BinOp):
            return self.binop(BINOPS[type(node.op)], self.expr(node.left), self.expr(node.right))
        if isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                return f"(not {self.expr(node.operand)})"
            if isinstance(node.op, ast.USub):
                operand = node.operand
                if isinstance(operand, ast.Constant) and type(operand.value) in (int, float):
                    return _literal(-operand.value)  # type: ignore[operator]
                first, a = self.bind(self.expr(operand), "a")
                return f"(-{a} if {first}.__class__ in _F else _neg({a}))"
            return f"_pos({self.expr(node.operand)})"
        if isinstance(node, ast.BoolOp):
            joiner = " and " if isinstance(node.op, ast.And) else " or "
            parts = joiner.join(f"({self.expr(v)})" for v in node.values)
            return f"(True if {parts} else False)"
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.IfExp):
            test, body, other = self.expr(node.test), self.expr(node.body), self.expr(node.orelse)
            return f"(({body}) if ({test}) else ({other}))"
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.List):
            return "[" + ", ".join(self.expr(e) for e in node.elts) + "]"
        if isinstance(node, ast.Subscript):
            assert isinstance(node.value, ast.List)
            items = self.tuple_of(node.value)
            return f"_index({items}, {self.expr(node.slice)})"
        raise AssertionError(f"unchecked node {type(node).__name__}")  # pragma: no cover

    def tuple_of(self, node: ast.List) -> str:
        items = [self.expr(e) for e in node.elts]
        return "(" + "".join(f"{i}, " for i in items) + ")"

    def binop(self, symbol: str, left: str, right: str) -> str:
        helper = _BIN_HELPERS[symbol]
        if symbol not in _INLINE_ARITH and symbol != "/":
            return f"{helper}({left}, {right})"
        a_first, a = self.bind(left, "a")
        b_first, b = self.bind(right, "b")
        test = self.both_numbers(a_first, a, b_first, b)
        if test == "True":  # two literals: still go through the helper (rare)
            return f"{helper}({left}, {right})"
        r = self.temp("r")
        checked = f"({r} if -{_LIMIT} <= ({r} := {a} {symbol} {b}) <= {_LIMIT} else _big({r}))"
        if symbol == "/":
            checked = f"({checked} if {b} else None)"
        # the test stores the operands (walrus) before either branch reads them
        test = self._storing_test(a_first, a, b_first, b)
        return f"({checked} if {test} else {helper}({a}, {b}))"

    def _storing_test(self, a_first: str, a: str, b_first: str, b: str) -> str:
        """Test that both operands are plain int/float, storing compound ones first.

        A compound operand is stored with ':=' inside the test; when both are compound,
        '&' (not 'and') makes sure both are stored whatever the first test gives.
        """
        compound = [(f, c) for f, c in ((a_first, a), (b_first, b)) if f != c]
        simple = [
            c for f, c in ((a_first, a), (b_first, b)) if f == c and not _is_number_literal(c)
        ]
        tests = [f"({f}.__class__ in _F)" for f, _ in compound]
        if len(tests) == 2:
            return f"({tests[0]} & {tests[1]})"
        tests += [f"{c}.__class__ in _F" for c in simple]
        return "(" + " and ".join(tests) + ")"

    def compare_pair(
        self, symbol: str, left: str, right: str, l_node: ast.AST, r_node: ast.AST
    ) -> tuple[str, str]:
        """(code of one comparison, reusable code of its right operand)."""
        if symbol in ("is", "is not") or (
            symbol in ("==", "!=") and (_is_none(l_node) or _is_none(r_node))
        ):
            positive = symbol in ("is", "==")
            other = left if _is_none(r_node) else right
            op = "is" if positive else "is not"
            r_first, r = self.bind(right, "b") if not _is_none(r_node) else (right, right)
            if _is_none(r_node):
                return f"({other} {op} None)", right
            return f"({r_first} {op} None)", r
        if symbol in ("in", "not in"):
            assert isinstance(r_node, ast.List)
            helper = "_in" if symbol == "in" else "_notin"
            return f"{helper}({left}, {self.tuple_of(r_node)})", right
        helper = _CMP_HELPERS[symbol]
        a_first, a = self.bind(left, "a")
        b_first, b = self.bind(right, "b")
        if _is_number_literal(a) and _is_number_literal(b):
            return f"{helper}({a}, {b})", b
        if _is_text_literal(b) and not _is_text_literal(a):  # stage == 'won': text fast path
            return (
                f"(({a_first} {symbol} {b}) if {a}.__class__ is _S else {helper}({a}, {b}))"
                if a_first == a
                else f"(({a} {symbol} {b}) if ({a_first}).__class__ is _S else {helper}({a}, {b}))",
                b,
            )
        test = self._storing_test(a_first, a, b_first, b)
        return f"(({a} {symbol} {b}) if {test} else {helper}({a}, {b}))", b

    def compare(self, node: ast.Compare) -> str:
        parts = []
        left = self.expr(node.left)
        l_node: ast.AST = node.left
        for op, r_node in zip(node.ops, node.comparators, strict=True):
            code, left = self.compare_pair(
                CMPOPS[type(op)], left, self.expr(r_node), l_node, r_node
            )
            parts.append(code)
            l_node = r_node
        return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"

    def call(self, node: ast.Call) -> str:
        assert isinstance(node.func, ast.Name)
        name = node.func.id
        spec = self.checked.specs[name]
        args = node.args
        builtin = spec.impl is _builtin_impl(name)
        if builtin and name == "IF":
            test, body, other = (self.expr(a) for a in args)
            return f"(({body}) if ({test}) else ({other}))"
        if builtin and name in ("AND", "OR"):
            joiner = " and " if name == "AND" else " or "
            return f"(True if {joiner.join(f'({self.expr(a)})' for a in args)} else False)"
        if builtin and name == "NOT":
            return f"(not {self.expr(args[0])})"
        if (
            builtin
            and name in ("MIN", "MAX")
            and len(args) == 2
            and not any(isinstance(a, ast.List) for a in args)
        ):
            a_first, a = self.bind(self.expr(args[0]), "a")
            b_first, b = self.bind(self.expr(args[1]), "b")
            self.globals[f"_fn_{name}"] = spec.impl
            if _is_number_literal(a) and _is_number_literal(b):
                return f"_fn_{name}({a}, {b})"
            op = "<" if name == "MIN" else ">"
            test = self._storing_test(a_first, a, b_first, b)
            return f"(({b} if {b} {op} {a} else {a}) if {test} else _fn_{name}({a}, {b}))"
        slot = f"_fn_{name}"
        self.globals[slot] = spec.impl
        if spec.lazy:
            thunks = ", ".join(f"lambda: ({self.expr(a)})" for a in args)
            return f"{slot}({thunks})"
        return f"{slot}({', '.join(self.expr(a) for a in args)})"


def _with_today(fn: Callable[..., Any], values: Mapping[str, Any], today: date) -> Any:
    token = rt.TODAY.set(today)
    try:
        return fn(values)
    finally:
        rt.TODAY.reset(token)


def _failed(exc: Exception, text: str) -> ExpressionError:
    """The ExpressionError to raise for any failure while evaluating `text`."""
    if isinstance(exc, ExpressionError):
        return ExpressionError(exc.message, text)
    if isinstance(exc, RecursionError | MemoryError):
        return ExpressionError("the expression could not be calculated", text)
    return ExpressionError(
        f"the expression could not be calculated ({type(exc).__name__}: {exc})", text
    )


def _builtin_impl(name: str) -> Any:
    from quotaflow.expressions.functions import FUNCTIONS

    spec = FUNCTIONS.get(name)
    return spec.impl if spec else None


def _literal(value: Any) -> str:
    code = repr(value)
    return f"({code})" if code.startswith("-") else code


def _is_literal(code: str) -> bool:
    return (
        _is_number_literal(code)
        or code in ("None", "True", "False")
        or (len(code) >= 2 and code[0] in "'\"" and code[-1] == code[0])
    )


def _is_text_literal(code: str) -> bool:
    return len(code) >= 2 and code[0] in "'\"" and code[-1] == code[0]


def _is_number_literal(code: str) -> bool:
    stripped = code.strip("()")
    if stripped.startswith("-"):
        stripped = stripped[1:]
    return (
        bool(stripped)
        and (stripped[0].isdigit())
        and stripped.replace(".", "", 1)
        .replace("e", "", 1)
        .replace("-", "", 1)
        .replace("+", "", 1)
        .isdigit()
    )


def _is_none(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and node.value is None


def compile_checked(checked: Checked, blank_as_zero: bool) -> Callable[..., Any]:
    """The Python function evaluating `checked` against a values mapping."""
    return _Generator(checked, blank_as_zero).function()
