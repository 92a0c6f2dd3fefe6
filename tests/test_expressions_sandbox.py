"""The sandbox: hostile expressions are refused at compile time or stopped fast, and any
input at all gives an ExpressionError, never another exception and never a hang."""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotaflow.expressions import ExpressionError, ValueType, compile_expression

V = ValueType
CTX = {"a": V.NUMBER, "b": V.NUMBER, "s": V.TEXT, "x": V.ANY, "amount": V.MONEY}
VALUES: dict[str, Any] = {
    "a": 3999999,
    "b": 10**299,
    "s": "a" * 5000,
    "x": "ab",
    "amount": Decimal("1e299"),
}

# Each entry is refused when compiled, or stopped with ExpressionError when evaluated.
HOSTILE = [
    # attribute and dunder walks (the shape of simpleeval's published escapes, CVE-2026-32640)
    "().__class__.__bases__[0].__subclasses__()",
    "''.__class__.__mro__[1].__subclasses__()",
    "a.__class__",
    "x.__init__.__globals__",
    "(1).__class__.__base__.__subclasses__()",
    "[].__class__.__class__.__subclasses__([].__class__.__class__)",
    "MIN.__globals__['__builtins__']",
    "ROUND.__code__.co_consts",
    "IF.__closure__",
    "s.upper()",
    "type(a)",
    "__builtins__",
    "__import__('os').system('touch /tmp/qf_pwned')",
    "__import__",
    "__loader__.load_module('os')",
    "__spec__",
    "getattr(a, '__class__')",
    "eval('1')",
    "exec('import os')",
    "compile('1', '', 'eval')",
    "open('/etc/passwd')",
    "globals()",
    "locals()",
    "vars()",
    "help()",
    "breakpoint()",
    "input()",
    "dir()",
    # format-string tricks
    "'{0.__class__}'.format(1)",
    "'{0.__class__.__base__.__subclasses__}'.format(a)",
    "'%s' % a",
    "'%999999999d' % 1",
    "f'{1:999999999}'",
    "f'{a!r}'",
    "f'{().__class__}'",
    "format(1, '999999999')",
    # huge powers and results
    "3999999 ** 3999999",
    "a ** a",
    "9 ** 9 ** 9",
    "2 ** 100000",
    "10 ** 301",
    "b * b",
    "amount * amount * amount",
    "1e308 * 10",
    "1e400",
    "-1e309",
    "10 ** -a",
    "a << 100000",
    "1 << 10 ** 9",
    # repetitions and big strings/lists
    "'a' * 10 ** 9",
    "s * 1000000",
    "[1] * 10 ** 9",
    "s + s + s",
    "[a] * a",
    # deep nesting and parser exhaustion
    "(" * 1_000_000,
    "-" * 100_000 + "1",
    "-" * 1999 + "1",
    "not " * 400 + "a",
    "[" * 150 + "]" * 150,
    "(" * 300 + "1" + ")" * 300,
    "+".join(["a"] * 600),
    "IF(a, " * 60 + "1" + ", 2)" * 60,
    "1" * 5000,
    # unicode look-alikes (Python normalises identifiers with NFKC)
    "ｅval('1')",
    "ｏpen('/etc/passwd')",
    "\uff3f\uff3fimport\uff3f\uff3f('os')",
    "ａ + 1",
    "ª + 1",
    # NaN / inf
    "1e308 + 1e308",
    "0 * 1e309",
    "a / 0 * 1e400",
    # other constructs
    "lambda: 1",
    "(lambda: 1)()",
    "[x for x in [1, 2]]",
    "{x: 1 for x in [1]}",
    "(y := 1)",
    "[*[1, 2]]",
    "MIN(*[1, 2])",
    "ROUND(a, ndigits=2)",
    "{'a': 1}['a']",
    "{1, 2}",
    "(1, 2)",
    "[1, 2][0:1]",
    "b'abc'",
    "1j",
    "...",
    "a if a else __import__('os')",
    "import os",
    "a = 1",
    "a; b",
    "yield a",
    "await a",
    "\x00",
    "a\x00 + 1",
    "\ud800",
    "'\udfff'",
    "\x1b[31m",
]


def test_the_corpus_is_large_enough() -> None:
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:40]))
def test_hostile_expression_is_refused_or_stopped_fast(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(ExpressionError) as info:
        expr = compile_expression(text, CTX)
        expr.evaluate(VALUES)
    assert time.perf_counter() - start < 1.0
    assert info.value.message
    info.value.describe()  # printable, whatever the input
    assert not os.path.exists("/tmp/qf_pwned")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_random_text_gives_only_expression_errors(text: str) -> None:
    try:
        expr = compile_expression(text, CTX)
    except ExpressionError as exc:
        exc.describe()
        return
    try:
        expr.evaluate(VALUES)
        expr.evaluate({})
    except ExpressionError:
        pass


_ATOMS = [
    "a",
    "b",
    "s",
    "x",
    "amount",
    "1",
    "0",
    "-1",
    "2.5",
    "1e300",
    "'t'",
    "None",
    "True",
    "[1, 2]",
    "TODAY()",
    "DATE(2024, 2, 29)",
]
_GLUE = [
    " + ",
    " - ",
    " * ",
    " / ",
    " ** ",
    " // ",
    " % ",
    " < ",
    " == ",
    " and ",
    " or ",
    " in ",
    " if ",
    " else ",
    "(",
    ")",
    ", ",
    "[",
    "]",
    "ROUND(",
    "IF(",
    "MIN(",
    "SUM(",
    "TEXT(",
    "DAYS(",
    "not ",
    "-",
    ".",
    "__class__",
    "'",
    "\n",
    "#",
]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(_ATOMS + _GLUE), max_size=30),
    st.dictionaries(
        st.sampled_from(list(CTX)),
        st.one_of(
            st.none(),
            st.integers(),
            st.floats(),
            st.text(max_size=5),
            st.decimals(allow_nan=False, allow_infinity=False),
        ),
    ),
)
def test_random_token_soup_gives_only_expression_errors(
    tokens: list[str], values: dict[str, Any]
) -> None:
    text = "".join(tokens)
    try:
        compile_expression(text, CTX).evaluate(values)
    except ExpressionError:
        pass


def test_binary_junk_gives_expression_errors() -> None:
    for junk in (
        bytes(range(256)).decode("latin-1"),
        os.urandom(512).decode("utf-8", "replace"),
        "\ufeff1 + 1",
        "\u202e1 + 1",
        "1\u2028+ 1",
    ):
        try:
            compile_expression(junk, CTX)
        except ExpressionError:
            pass


@pytest.mark.parametrize("value", [None, 1, b"a + 1", ["a"], object()])
def test_non_text_expressions_are_refused(value: Any) -> None:
    with pytest.raises(ExpressionError, match="an expression must be text"):
        compile_expression(value, CTX)
