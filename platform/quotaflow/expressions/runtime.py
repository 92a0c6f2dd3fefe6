"""Run-time semantics shared by the compiled fast path and the simpleeval reference.

Every operator of the language is one function here. Rules:
- blank is None: arithmetic on blank gives blank; a comparison with blank is false;
- division (and modulo) by zero gives blank;
- int and float mix as in Python; Decimal (money) mixes with both, a float being
  converted through its shortest text (Decimal(str(x))) so 0.1 stays 0.1;
- a number whose size exceeds MAX_NUMBER (1e300), or that is infinite or NaN, is an
  error ("number too large"): it can never be stored, shown or summed meaningfully;
- text results are at most MAX_TEXT characters, lists at most MAX_LIST items;
- dates subtract to whole days, a date plus a whole number of days is a date.
Anything else (text minus a number, ordering text against a date...) raises
ExpressionError with a message a non-programmer can read.
"""

from __future__ import annotations

import contextvars
import decimal
import math
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from quotaflow.expressions.errors import ExpressionError

MAX_NUMBER = 1e300
MAX_TEXT = 10_000
MAX_LIST = 1_000
MAX_EXPONENT = 1_000

NUMBER_TYPES = frozenset({int, float})  # the fast path's exact-type test
_FAST_TYPES = (int, float, Decimal, bool)

# "today" for TODAY(): injectable (tests, recomputing as of a day); None means the UTC date.
TODAY: contextvars.ContextVar[date | None] = contextvars.ContextVar("quotaflow_today", default=None)

_DEC_CONTEXT = decimal.Context(
    prec=28,
    Emax=999_999,
    Emin=-999_999,
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)


def today() -> date:
    """The date TODAY() returns: the injected one, else today's date in UTC."""
    injected = TODAY.get()
    return injected if injected is not None else datetime.now(UTC).date()


# --- describing values in messages ------------------------------------------------------------


def describe_value(value: Any) -> str:
    """'a number', 'text', 'a date'... for the type of a run-time value."""
    if value is None:
        return "blank"
    if isinstance(value, bool):
        return "a yes/no value"
    if isinstance(value, int | float | Decimal):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, list | tuple):
        return "a list"
    return f"an unsupported value ({type(value).__name__})"


def _type_error(symbol: str, a: Any, b: Any) -> ExpressionError:
    return ExpressionError(f"can't use '{symbol}' on {describe_value(a)} and {describe_value(b)}")


# --- numbers ------------------------------------------------------------------------------------


def is_number(value: Any) -> bool:
    """int, float, Decimal or bool (a yes/no counts as 0/1)."""
    return isinstance(value, _FAST_TYPES)


def to_decimal(value: Any) -> Decimal:
    """Exact Decimal of a number; floats go through their shortest text."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExpressionError("number too large (or not a number)")
        return Decimal(str(value))
    return Decimal(int(value))


def check_number(value: Any) -> Any:
    """`value` if it is a finite number within ±MAX_NUMBER, else ExpressionError."""
    try:
        ok = -MAX_NUMBER <= value <= MAX_NUMBER
    except (TypeError, ValueError, ArithmeticError):
        ok = False
    if not ok:
        if isinstance(value, Decimal | float) and value != value:
            raise ExpressionError("the result is not a number")
        raise ExpressionError("number too large (the limit is 1e300)")
    return value


def too_large(value: Any) -> Any:
    """Called by the fast path when an inline result failed the range test."""
    return check_number(value)


def _pair(a: Any, b: Any) -> tuple[Any, Any]:
    """Operands ready for Python arithmetic: bools as ints, Decimal wins over float."""
    if a.__class__ is bool:
        a = int(a)
    if b.__class__ is bool:
        b = int(b)
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return to_decimal(a), to_decimal(b)
    return a, b


def _numeric(symbol: str, a: Any, b: Any, fn: Callable[[Any, Any], Any]) -> Any:
    if a is None or b is None:
        return None
    if not (is_number(a) and is_number(b)):
        raise _type_error(symbol, a, b)
    x, y = _pair(a, b)
    try:
        if isinstance(x, Decimal):
            with decimal.localcontext(_DEC_CONTEXT):
                return check_number(fn(x, y))
        return check_number(fn(x, y))
    except ZeroDivisionError:
        return None
    except decimal.DivisionByZero:
        return None
    except decimal.InvalidOperation:
        if y == 0:  # Decimal 0 / 0 is "undefined", not "division by zero": still blank
            return None
        raise ExpressionError(f"can't calculate '{symbol}' with these numbers") from None
    except (OverflowError, decimal.Overflow):
        raise ExpressionError("number too large (the limit is 1e300)") from None
    except (ArithmeticError, ValueError, TypeError):
        raise ExpressionError(f"can't calculate '{symbol}' with these numbers") from None


def _days(n: Any, what: str) -> int:
    """A whole number of days for date arithmetic."""
    if n.__class__ is bool or not is_number(n):
        raise ExpressionError(f"can't add {describe_value(n)} to {what}")
    if isinstance(n, float) and not math.isfinite(n):
        raise ExpressionError("number too large (or not a number)")
    if n != int(n):
        raise ExpressionError("only whole days can be added to or subtracted from a date")
    if abs(n) > 3_000_000:
        raise ExpressionError("date out of range")
    return int(n)


def _shift(d: date, days: int) -> date:
    try:
        return d + timedelta(days=days)
    except OverflowError:
        raise ExpressionError("date out of range") from None


def _same_kind_dates(a: date, b: date) -> tuple[date, date]:
    """A date next to a date-time becomes midnight of that day (in the other's zone)."""
    a_dt, b_dt = isinstance(a, datetime), isinstance(b, datetime)
    if a_dt and not b_dt:
        assert isinstance(a, datetime)
        return a, datetime(b.year, b.month, b.day, tzinfo=a.tzinfo)
    if b_dt and not a_dt:
        assert isinstance(b, datetime)
        return datetime(a.year, a.month, a.day, tzinfo=b.tzinfo), b
    if a_dt and b_dt:
        assert isinstance(a, datetime) and isinstance(b, datetime)
        if (a.tzinfo is None) != (b.tzinfo is None):  # naive values are taken as UTC
            a, b = a.replace(tzinfo=a.tzinfo or UTC), b.replace(tzinfo=b.tzinfo or UTC)
    return a, b


def add(a: Any, b: Any) -> Any:
    """a + b: numbers, text + text, date + days."""
    if a is None or b is None:
        return None
    if isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_TEXT:
            raise ExpressionError(f"text too long (the limit is {MAX_TEXT} characters)")
        return a + b
    if isinstance(a, date) and not isinstance(b, date):
        return _shift(a, _days(b, "a date"))
    if isinstance(b, date) and not isinstance(a, date):
        return _shift(b, _days(a, "a date"))
    return _numeric("+", a, b, lambda x, y: x + y)


def sub(a: Any, b: Any) -> Any:
    """a - b: numbers, date - date (days), date - days."""
    if a is None or b is None:
        return None
    if isinstance(a, date):
        if isinstance(b, date):
            x, y = _same_kind_dates(a, b)
            delta = x - y
            if isinstance(x, datetime):
                return delta.total_seconds() / 86400
            return delta.days
        return _shift(a, -_days(b, "a date"))
    return _numeric("-", a, b, lambda x, y: x - y)


def mul(a: Any, b: Any) -> Any:
    """a * b (numbers only: text is never repeated)."""
    return _numeric("*", a, b, lambda x, y: x * y)


def div(a: Any, b: Any) -> Any:
    """a / b; dividing by zero gives blank."""
    return _numeric("/", a, b, lambda x, y: x / y)


def floordiv(a: Any, b: Any) -> Any:
    """a // b (rounded down); by zero gives blank."""
    return _numeric("//", a, b, lambda x, y: x // y)


def mod(a: Any, b: Any) -> Any:
    """a % b (remainder); by zero gives blank."""
    return _numeric("%", a, b, lambda x, y: x % y)


def power(a: Any, b: Any) -> Any:
    """a ** b, refused before computing when the result would be too large."""
    if a is None or b is None:
        return None
    if not (is_number(a) and is_number(b)):
        raise _type_error("**", a, b)
    x, y = _pair(a, b)
    if abs(y) > MAX_EXPONENT:
        raise ExpressionError(f"exponent too large (the limit is {MAX_EXPONENT})")
    if x == 0:
        return None if y < 0 else (x**y if not isinstance(x, Decimal) else Decimal(0 ** int(y > 0)))
    if x < 0 and y != int(y):
        raise ExpressionError("a negative number can't be raised to a fractional power")
    magnitude = float(y) * math.log10(abs(float(x))) if abs(x) != 1 else 0.0
    if magnitude > 300:
        raise ExpressionError("number too large (the limit is 1e300)")
    if magnitude < -300:  # e.g. 10 ** -400: underflows to zero
        return 0.0 if not isinstance(x, Decimal) else Decimal(0)
    return _numeric("**", x, y, lambda p, q: p**q)


def neg(a: Any) -> Any:
    """-a."""
    if a is None:
        return None
    if not is_number(a):
        raise ExpressionError(f"can't use '-' on {describe_value(a)}")
    return -int(a) if a.__class__ is bool else -a


def pos(a: Any) -> Any:
    """+a."""
    if a is None:
        return None
    if not is_number(a):
        raise ExpressionError(f"can't use '+' on {describe_value(a)}")
    return int(a) if a.__class__ is bool else a


# --- comparisons ------------------------------------------------------------------------------


def _comparable(symbol: str, a: Any, b: Any, ordering: bool) -> tuple[Any, Any] | None:
    """Operands ready to compare, or None when they can never be equal."""
    if is_number(a) and is_number(b):
        if isinstance(a, Decimal) != isinstance(b, Decimal):
            return _pair(a, b)
        return a, b
    if isinstance(a, str) and isinstance(b, str):
        return a, b
    if isinstance(a, date) and isinstance(b, date):
        return _same_kind_dates(a, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and not ordering:
        return list(a), list(b)
    if ordering:
        raise ExpressionError(f"can't compare {describe_value(a)} with {describe_value(b)}")
    return None


def eq(a: Any, b: Any) -> bool:
    """a == b; false when either is blank (use ISBLANK or == None to test for blank)."""
    if a is None or b is None:
        return False
    pair = _comparable("==", a, b, False)
    if pair is None:
        return False
    if isinstance(pair[0], list):
        return len(pair[0]) == len(pair[1]) and all(map(eq, pair[0], pair[1]))
    return bool(pair[0] == pair[1])


def ne(a: Any, b: Any) -> bool:
    """a != b; false when either is blank."""
    if a is None or b is None:
        return False
    return not eq(a, b)


def _order(symbol: str, a: Any, b: Any, fn: Callable[[Any, Any], bool]) -> bool:
    if a is None or b is None:
        return False
    pair = _comparable(symbol, a, b, True)
    assert pair is not None
    return bool(fn(pair[0], pair[1]))


def lt(a: Any, b: Any) -> bool:
    """a < b."""
    return _order("<", a, b, lambda x, y: x < y)


def le(a: Any, b: Any) -> bool:
    """a <= b."""
    return _order("<=", a, b, lambda x, y: x <= y)


def gt(a: Any, b: Any) -> bool:
    """a > b."""
    return _order(">", a, b, lambda x, y: x > y)


def ge(a: Any, b: Any) -> bool:
    """a >= b."""
    return _order(">=", a, b, lambda x, y: x >= y)


def is_in(a: Any, items: Iterable[Any]) -> bool:
    """a in [..]: false when a is blank."""
    if a is None:
        return False
    return any(eq(a, item) for item in items)


def not_in(a: Any, items: Iterable[Any]) -> bool:
    """a not in [..]: false when a is blank (like any comparison with blank)."""
    if a is None:
        return False
    return not is_in(a, items)


def index(items: list[Any] | tuple[Any, ...], i: Any) -> Any:
    """[..][i]: blank when i is blank or out of range."""
    if i is None:
        return None
    if i.__class__ is bool or not is_number(i) or i != int(i):
        raise ExpressionError(f"a list position must be a whole number, not {describe_value(i)}")
    n = int(i)
    return items[n] if -len(items) <= n < len(items) else None


def make_list(items: list[Any]) -> list[Any]:
    """A list value (size-checked)."""
    if len(items) > MAX_LIST:
        raise ExpressionError(f"list too long (the limit is {MAX_LIST} items)")
    return items


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": add,
    "-": sub,
    "*": mul,
    "/": div,
    "//": floordiv,
    "%": mod,
    "**": power,
}
COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": eq,
    "!=": ne,
    "<": lt,
    "<=": le,
    ">": gt,
    ">=": ge,
}
