"""Parse and check an expression: the sandbox, names, functions, arity and types.

Everything here runs once, when an expression is compiled. Limits are enforced in this
order, so that no input can make the parser or the checker slow:
1. the text must be a str of at most MAX_LENGTH characters without control characters
   or lone surrogates (checked before parsing);
2. Python's parser (inside parentheses, so formulas may span lines); its own recursion
   and nesting failures become ExpressionError;
3. node count and depth, computed iteratively;
4. a whitelist of node types; names from the context only; functions from the registry.
"""

from __future__ import annotations

import ast
import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from quotaflow.expressions import runtime as rt
from quotaflow.expressions.errors import ExpressionError
from quotaflow.expressions.functions import FunctionSpec
from quotaflow.expressions.types import (
    ARITHMETIC,
    DATELIKE,
    ValueType,
    arithmetic_result,
    kind,
    label,
    unify,
)

MAX_LENGTH = 2000
MAX_NODES = 400
MAX_DEPTH = 40
MAX_LIST_LITERAL = 100
MAX_INT_DIGITS = 300

VT = ValueType
_BAD_CHARS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")

BINOPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}
_BAD_BINOPS: dict[type[ast.operator], str] = {
    ast.BitAnd: "&' (use 'and'",
    ast.BitOr: "|' (use 'or'",
    ast.BitXor: "^' (use '**' for powers",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.MatMult: "@",
}
CMPOPS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_FORBIDDEN: dict[type[ast.AST], str] = {
    ast.Attribute: "'.' (attribute access) is not allowed",
    ast.Lambda: "lambda (defining a function inside a formula) is not allowed",
    ast.ListComp: "comprehensions ('for ... in ...') are not allowed",
    ast.SetComp: "comprehensions ('for ... in ...') are not allowed",
    ast.DictComp: "comprehensions ('for ... in ...') are not allowed",
    ast.GeneratorExp: "comprehensions ('for ... in ...') are not allowed",
    ast.JoinedStr: "f-strings are not allowed; build text with TEXT(...) and +",
    ast.FormattedValue: "f-strings are not allowed; build text with TEXT(...) and +",
    ast.NamedExpr: "':=' (assignment) is not allowed",
    ast.Starred: "'*' unpacking is not allowed",
    ast.Dict: "'{...}' (dictionaries) are not allowed",
    ast.Set: "'{...}' (sets) are not allowed",
    ast.Tuple: "'(a, b)' (tuples) are not allowed; use a list [a, b]",
    ast.Slice: "slices ('[a:b]') are not allowed",
    ast.Await: "'await' is not allowed",
    ast.Yield: "'yield' is not allowed",
    ast.YieldFrom: "'yield' is not allowed",
}


@dataclass
class Checked:
    """The outcome of checking: the tree and what the compiler and SQL translator need."""

    text: str
    tree: ast.expr
    result_type: ValueType
    names: frozenset[str]
    functions: frozenset[str]
    types: dict[int, ValueType] = field(default_factory=dict)  # id(node) -> type
    specs: dict[str, FunctionSpec] = field(default_factory=dict)
    name_types: dict[str, ValueType] = field(default_factory=dict)

    def type_of(self, node: ast.AST) -> ValueType:
        return self.types.get(id(node), VT.ANY)


# --- positions ----------------------------------------------------------------------------------


def _char_column(text: str, line: int, byte_col: int) -> int:
    """1-based character column of a UTF-8 byte offset on a 1-based line of `text`."""
    lines = text.splitlines() or [""]
    src = lines[min(max(line, 1), len(lines)) - 1]
    return len(src.encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1


def error_at(message: str, text: str, node: ast.AST | None) -> ExpressionError:
    """An ExpressionError pointing at `node` (positions are those of the wrapped parse)."""
    if node is None or not hasattr(node, "lineno"):
        return ExpressionError(message, text, 1, 1)
    line = max(node.lineno - 1, 1)
    col = getattr(node, "col_offset", 0) if node.lineno > 1 else 0
    return ExpressionError(message, text, line, _char_column(text, line, col))


def _suggest(word: str, candidates: list[str]) -> str:
    upper = [c for c in candidates if c.upper() == word.upper()]
    close = upper or difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" — did you mean '{close[0]}'?" if close else ""


# --- parsing ------------------------------------------------------------------------------------


def parse(text: object) -> ast.expr:
    """The expression's AST, after the pre-parse limits; any failure is an ExpressionError."""
    if not isinstance(text, str):
        raise ExpressionError(f"an expression must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"the expression is too long ({len(text)} characters; at most {MAX_LENGTH})"
        )
    bad = _BAD_CHARS.search(text)
    if bad:
        before = text[: bad.start()]
        line = before.count("\n") + 1
        col = bad.start() - (before.rfind("\n") + 1) + 1
        raise ExpressionError(
            f"invalid character {bad.group()!r} in the expression", text, line, col
        )
    if not text.strip():
        raise ExpressionError("the expression is empty")
    try:
        tree = ast.parse("(\n" + text + "\n)", mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(text, exc) from None
    except (RecursionError, MemoryError):
        raise ExpressionError("the expression is nested too deeply", text) from None
    except (ValueError, UnicodeError, OverflowError, TypeError) as exc:
        raise ExpressionError(f"the expression can't be read: {exc}", text) from None
    body = tree.body
    if isinstance(body, ast.Tuple) and not body.elts:  # only blanks and comments
        raise ExpressionError("the expression is empty")
    if body.lineno < 2 and not isinstance(body, ast.Tuple):
        raise ExpressionError("unbalanced brackets: a ')' closes nothing", text, 1, 1)
    _check_size(text, body)
    return body


def _syntax_error(text: str, exc: SyntaxError) -> ExpressionError:
    msg = exc.msg or "invalid syntax"
    lines = text.splitlines() or [""]
    nlines = len(lines)
    line = (exc.lineno or 2) - 1
    if 1 <= line <= nlines:
        return ExpressionError(f"syntax error: {msg}", text, line, max(exc.offset or 1, 1))
    if line < 1:  # an opening bracket of the admin's is never closed: ask the bare text
        try:
            ast.parse(text, mode="eval")
        except SyntaxError as raw:
            if raw.lineno and 1 <= raw.lineno <= nlines and raw.offset:
                return ExpressionError(f"syntax error: {raw.msg}", text, raw.lineno, raw.offset)
        except Exception:  # noqa: BLE001, S110 - fall back to the message below
            pass
    if msg == "invalid syntax":
        msg = "the expression ends too early (something is missing at the end)"
    return ExpressionError(f"syntax error: {msg}", text, nlines, len(lines[-1]) + 1)


def _check_size(text: str, body: ast.expr) -> None:
    count = 0
    stack: list[tuple[ast.AST, int]] = [(body, 1)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(
                f"the expression is too large (more than {MAX_NODES} parts)", text
            )
        if depth > MAX_DEPTH:
            raise error_at(
                f"the expression is nested too deeply (more than {MAX_DEPTH} levels)", text, node
            )
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))


# --- checking -----------------------------------------------------------------------------------


class Checker:
    """Walks a parsed tree once: whitelist, names, functions, arity, types."""

    def __init__(
        self, text: str, names: Mapping[str, ValueType], functions: Mapping[str, FunctionSpec]
    ) -> None:
        self.text = text
        self.context = names
        self.functions = functions
        self.used_names: set[str] = set()
        self.used_functions: set[str] = set()
        self.types: dict[int, ValueType] = {}
        self.lines = text.splitlines() or [""]

    def fail(self, message: str, node: ast.AST | None) -> ExpressionError:
        return error_at(message, self.text, node)

    def check(self, node: ast.AST) -> ValueType:
        t = self._check(node)
        self.types[id(node)] = t
        return t

    def _source(self, node: ast.AST) -> str:
        line = node.lineno - 1  # type: ignore[attr-defined]
        src = self.lines[line - 1].encode("utf-8")
        return src[node.col_offset : node.end_col_offset].decode(  # type: ignore[attr-defined]
            "utf-8", "replace"
        )

    def _check(self, node: ast.AST) -> ValueType:  # noqa: C901 - one dispatch, kept flat
        for forbidden, message in _FORBIDDEN.items():
            if isinstance(node, forbidden):
                detail = f" (here '.{node.attr}')" if isinstance(node, ast.Attribute) else ""
                raise self.fail(message + detail, node)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.BinOp):
            return self._binop(node)
        if isinstance(node, ast.UnaryOp):
            return self._unary(node)
        if isinstance(node, ast.BoolOp):
            for value in node.values:
                self.check(value)
            return VT.BOOL
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.IfExp):
            self.check(node.test)
            return self._branches(node.body, node.orelse)
        if isinstance(node, ast.Call):
            return self._call(node)
        if isinstance(node, ast.List):
            return self._list(node)
        if isinstance(node, ast.Subscript):
            return self._subscript(node)
        raise self.fail(f"'{type(node).__name__}' is not allowed in an expression", node)

    def _constant(self, node: ast.Constant) -> ValueType:
        value = node.value
        if value is None:
            return VT.ANY
        if isinstance(value, bool):
            return VT.BOOL
        if isinstance(value, int):
            if len(str(abs(value))) > MAX_INT_DIGITS:
                raise self.fail("number too large (the limit is 1e300)", node)
            return VT.NUMBER
        if isinstance(value, float):
            if not -rt.MAX_NUMBER <= value <= rt.MAX_NUMBER:
                raise self.fail("number too large (the limit is 1e300)", node)
            return VT.NUMBER
        if isinstance(value, str):
            return VT.TEXT
        if isinstance(value, complex):
            raise self.fail("complex numbers (like 1j) are not allowed", node)
        if isinstance(value, bytes):
            raise self.fail("byte strings (b'...') are not allowed; use plain text", node)
        raise self.fail(f"'{value!r}' is not allowed in an expression", node)

    def _name(self, node: ast.Name) -> ValueType:
        name = node.id
        source = self._source(node)
        if source != name:
            raise self.fail(
                f"the name '{source}' uses look-alike (non-ASCII) characters; "
                f"type it in plain letters",
                node,
            )
        if name.startswith("__"):
            raise self.fail(f"'{name}' is not allowed (names never start with '__')", node)
        if name in self.context:
            self.used_names.add(name)
            return self.context[name]
        if name in self.functions:
            raise self.fail(f"{name} is a function; call it like {name}(...)", node)
        if name in ("true", "false", "null", "none", "TRUE", "FALSE", "NULL", "NONE"):
            right = {"t": "True", "f": "False", "n": "None"}[name[0].lower()]
            raise self.fail(f"unknown name '{name}' — did you mean '{right}'?", node)
        hint = _suggest(name, sorted(self.context))
        raise self.fail(f"unknown name '{name}'{hint}", node)

    def _binop(self, node: ast.BinOp) -> ValueType:
        op = type(node.op)
        if op in _BAD_BINOPS:
            raise self.fail(f"the operator '{_BAD_BINOPS[op]}' is not allowed", node)
        symbol = BINOPS[op]
        left, right = self.check(node.left), self.check(node.right)
        self._constant_operation(node, symbol)
        if VT.LIST in (left, right):
            raise self.fail(f"can't use '{symbol}' on a list", node)
        a, b = kind(left), kind(right)
        if symbol == "+":
            if "text" in (a, b) and {a, b} <= {"text", "any"}:
                return VT.TEXT
            if a == "date" and b in ("number", "any"):
                return left
            if b == "date" and a in ("number", "any"):
                return right
        if symbol == "-":
            if a == "date" and b == "date":
                return VT.NUMBER
            if a == "date" and b in ("number", "any"):
                return left
            if a == "any" and b == "date":
                return VT.ANY
        if symbol in "+-" and VT.ANY in (left, right) and "number" not in (a, b):
            return VT.ANY
        if a in ("number", "any") and b in ("number", "any"):
            if symbol in "+-" and VT.ANY in (left, right):
                return VT.ANY  # could still be text + text or a date shift
            return arithmetic_result(symbol, left, right)
        raise self.fail(f"can't use '{symbol}' on {label(left)} and {label(right)}", node)

    def _constant_operation(self, node: ast.BinOp, symbol: str) -> None:
        """Reject now what must fail later: 3999999 ** 3999999, 1e300 * 10, 2 ** 5000..."""
        operands: list[int | float | None] = []
        for side in (node.left, node.right):
            if isinstance(side, ast.UnaryOp) and isinstance(side.op, ast.USub):
                side = side.operand
                sign = -1
            else:
                sign = 1
            if not isinstance(side, ast.Constant) or type(side.value) not in (int, float):
                if symbol == "**" and side is node.right:
                    return
                operands.append(None)
                continue
            number: int | float = side.value  # type: ignore[assignment]
            operands.append(sign * number)
        a, b = operands
        if symbol == "**" and b is not None and abs(b) > rt.MAX_EXPONENT:
            raise self.fail(f"exponent too large (the limit is {rt.MAX_EXPONENT})", node)
        if a is None or b is None:
            return
        try:
            rt.BINARY[symbol](a, b)
        except ExpressionError as exc:
            raise self.fail(exc.message, node) from None

    def _unary(self, node: ast.UnaryOp) -> ValueType:
        operand = self.check(node.operand)
        if isinstance(node.op, ast.Not):
            return VT.BOOL
        if isinstance(node.op, ast.Invert):
            raise self.fail("the operator '~' is not allowed; use 'not'", node)
        symbol = "-" if isinstance(node.op, ast.USub) else "+"
        if operand in ARITHMETIC or operand == VT.ANY:
            return VT.NUMBER if operand in (VT.BOOL, VT.ANY) else operand
        raise self.fail(f"can't use '{symbol}' on {label(operand)}", node)

    def _comparable(self, node: ast.AST, symbol: str, a: ValueType, b: ValueType) -> None:
        ka, kb = kind(a), kind(b)
        if "any" in (ka, kb) or ka == kb:
            if symbol not in ("==", "!=") and "list" in (ka, kb):
                raise self.fail(f"can't use '{symbol}' on a list", node)
            return
        hint = ""
        if "date" in (ka, kb) and "text" in (ka, kb):
            hint = "; write dates as DATE(2025, 1, 31)"
        raise self.fail(f"can't compare {label(a)} with {label(b)}{hint}", node)

    def _compare(self, node: ast.Compare) -> ValueType:
        left_node = node.left
        left = self.check(left_node)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            symbol = CMPOPS[type(op)]
            if symbol in ("is", "is not"):
                if not (isinstance(right_node, ast.Constant) and right_node.value is None):
                    raise self.fail(
                        f"'{symbol}' can only test for blank ('x {symbol} None'); "
                        f"use == or != to compare values",
                        node,
                    )
                right = self.check(right_node)
            elif symbol in ("in", "not in"):
                if not isinstance(right_node, ast.List):
                    raise self.fail(
                        f"'{symbol}' needs a list written out, like x {symbol} ['a', 'b']", node
                    )
                right = self.check(right_node)
                for item in right_node.elts:
                    if isinstance(item, ast.Constant) and item.value is None:
                        raise self.fail(
                            "a list after 'in' can't hold None; test for blank with ISBLANK(x)",
                            item,
                        )
                    self._comparable(node, "==", left, self.types[id(item)])
            else:
                right = self.check(right_node)
                none_test = any(
                    isinstance(n, ast.Constant) and n.value is None for n in (left_node, right_node)
                )
                if not none_test:
                    self._comparable(node, symbol, left, right)
                elif symbol not in ("==", "!="):
                    raise self.fail(f"can't use '{symbol}' with None; blank has no order", node)
            left_node, left = right_node, right
        return VT.BOOL

    def _branches(self, a_node: ast.expr, b_node: ast.expr) -> ValueType:
        a, b = self.check(a_node), self.check(b_node)
        if isinstance(a_node, ast.Constant) and a_node.value is None:
            return b
        if isinstance(b_node, ast.Constant) and b_node.value is None:
            return a
        return unify(a, b)

    def _call(self, node: ast.Call) -> ValueType:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                raise self.fail(
                    f"'.' (attribute access) is not allowed (here '.{node.func.attr}(...)')", node
                )
            raise self.fail("only functions like ROUND(...) can be called", node)
        name = node.func.id
        source = self._source(node.func)
        if source != name:
            raise self.fail(
                f"the name '{source}' uses look-alike (non-ASCII) characters; "
                f"type it in plain letters",
                node.func,
            )
        spec = self.functions.get(name)
        if spec is None:
            if name.startswith("__"):
                raise self.fail(
                    f"unknown function '{name}' (names never start with '__')", node.func
                )
            hint = _suggest(name, sorted(self.functions))
            raise self.fail(f"unknown function '{name}'{hint}", node.func)
        if node.keywords:
            raise self.fail(f"{name} takes no named arguments (like name=...)", node.keywords[0])
        self.used_functions.add(name)
        got = len(node.args)
        low, high = spec.minimum, spec.maximum
        if got < low or (high is not None and got > high):
            raise self.fail(f"{name} {_arity(low, high)}, got {got}", node)
        arg_types: list[ValueType] = []
        for position, arg in enumerate(node.args):
            t = self.check(arg)
            arg_types.append(t)
            accepted = spec.accepted(position)
            if isinstance(arg, ast.List) and spec.lists:
                for item in arg.elts:
                    it = self.types[id(item)]
                    if it not in accepted and it != VT.ANY:
                        raise self.fail(f"{name}: the list may not hold {label(it)}", item)
                continue
            if t not in accepted and t != VT.ANY:
                wanted = _wanted(accepted)
                raise self.fail(
                    f"{name}: argument {position + 1} must be {wanted}, got {label(t)}", arg
                )
        return spec.result_type(arg_types)

    def _list(self, node: ast.List) -> ValueType:
        if len(node.elts) > MAX_LIST_LITERAL:
            raise self.fail(f"a list may hold at most {MAX_LIST_LITERAL} items", node)
        for item in node.elts:
            t = self.check(item)
            if t == VT.LIST:
                raise self.fail("lists can't contain lists", item)
        return VT.LIST

    def _subscript(self, node: ast.Subscript) -> ValueType:
        if not isinstance(node.value, ast.List):
            raise self.fail(
                "'[...]' can only pick an item from a list written out, like ['a', 'b'][i]",
                node,
            )
        self.check(node.value)
        index = self.check(node.slice)
        if index not in ARITHMETIC and index != VT.ANY:
            raise self.fail(f"a list position must be a number, not {label(index)}", node.slice)
        result: ValueType | None = None
        for item in node.value.elts:
            if isinstance(item, ast.Constant) and item.value is None:
                continue
            t = self.types[id(item)]
            result = t if result is None else unify(result, t)
        return result or VT.ANY


def _arity(low: int, high: int | None) -> str:
    def args(n: int) -> str:
        return f"{n} argument{'s' if n != 1 else ''}"

    if high is None:
        return f"takes at least {args(low)}"
    if low == high:
        return "takes no arguments" if low == 0 else f"takes {args(low)}"
    return f"takes {low} to {args(high)}"


def _wanted(accepted: frozenset[ValueType]) -> str:
    others = accepted - {VT.ANY, VT.LIST}
    if others and others <= ARITHMETIC:
        return "a number"
    if others and others <= DATELIKE:
        return "a date"
    if others == {VT.TEXT}:
        return "text or a list"
    return " or ".join(sorted({label(t) for t in others}))


def check(
    text: object, names: Mapping[str, ValueType], functions: Mapping[str, FunctionSpec]
) -> Checked:
    """Parse and check `text`; the Checked result feeds the compiler, reference and SQL."""
    tree = parse(text)
    assert isinstance(text, str)
    checker = Checker(text, names, functions)
    try:
        result = checker.check(tree)
    except RecursionError:  # depth is bounded above; this is a last line of defence
        raise ExpressionError("the expression is nested too deeply", text) from None
    return Checked(
        text=text,
        tree=tree,
        result_type=result,
        names=frozenset(checker.used_names),
        functions=frozenset(checker.used_functions),
        types=checker.types,
        specs={n: functions[n] for n in checker.used_functions},
        name_types={n: names[n] for n in checker.used_names},
    )
