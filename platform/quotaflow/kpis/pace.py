"""Attainment and pace: pure functions over an actual, a target, a period and today.

- attainment = actual / target (blank when there is no target or it is 0);
- expected to date = the share of the target the days so far should have brought: linear
  by days, or by the phasing (finished sub-periods in full, the current one by its days);
- projected = the run rate carried to the end of the period (actual / days so far x days);
- gap = target - actual (what is still to reach; negative when exceeded), and the gap to
  the expected-to-date figure (how far behind pace).

`today` counts as a day gone: on the first day of a quarter one day of it has elapsed.
Amounts are rounded to the cent, ratios to 4 decimals, half up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from quotaflow.kpis.periods import Period

Number = Decimal | int | float
CENT = Decimal("0.01")
RATIO = Decimal("0.0001")


def _dec(value: Number) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def attainment(actual: Number | None, target: Number | None) -> Decimal | None:
    """actual / target as a ratio (1.05 = 105 %); blank without a target."""
    if actual is None or target is None or _dec(target) == 0:
        return None
    return (_dec(actual) / _dec(target)).quantize(RATIO, rounding=ROUND_HALF_UP)


def elapsed_share(period: Period, today: date) -> Decimal:
    """The share of the period's days gone by, today included (0 before, 1 after)."""
    return Decimal(period.days_elapsed(today)) / Decimal(period.days)


def expected_to_date(
    target: Number,
    period: Period,
    today: date,
    phases: Sequence[Number] | None = None,
    sub_periods: Sequence[Period] | None = None,
) -> Decimal:
    """What should have been reached by today: linear, or by the phased amounts."""
    if not phases:
        return _cents(_dec(target) * elapsed_share(period, today))
    if sub_periods is None or len(sub_periods) != len(phases):
        raise ValueError("phases need their sub-periods, one each")
    total = Decimal(0)
    for amount, part in zip(phases, sub_periods, strict=True):
        total += _dec(amount) * elapsed_share(part, today)
    return _cents(total)


def projected(actual: Number, period: Period, today: date) -> Decimal | None:
    """The end-of-period figure at the current run rate; blank before the period starts."""
    days = period.days_elapsed(today)
    if days == 0:
        return None
    return _cents(_dec(actual) * Decimal(period.days) / Decimal(days))


@dataclass(frozen=True, slots=True)
class Pace:
    """Everything a progress bar shows for one scope."""

    actual: Decimal
    target: Decimal | None
    attainment: Decimal | None
    expected: Decimal | None
    expected_attainment: Decimal | None
    projected: Decimal | None
    projected_attainment: Decimal | None
    gap: Decimal | None  # target - actual
    behind: Decimal | None  # expected - actual (positive: behind pace)
    days_elapsed: int
    days: int


def pace(
    actual: Number | None,
    target: Number | None,
    period: Period,
    today: date,
    phases: Sequence[Number] | None = None,
    sub_periods: Sequence[Period] | None = None,
) -> Pace:
    """Attainment, expected-to-date, projection and gaps (a blank actual counts as 0)."""
    value = _dec(actual) if actual is not None else Decimal(0)
    goal = None if target is None else _dec(target)
    expected = None if goal is None else expected_to_date(goal, period, today, phases, sub_periods)
    forecast = projected(value, period, today)
    return Pace(
        actual=value,
        target=goal,
        attainment=attainment(value, goal),
        expected=expected,
        expected_attainment=None if expected is None else attainment(expected, goal),
        projected=forecast,
        projected_attainment=None if forecast is None else attainment(forecast, goal),
        gap=None if goal is None else goal - value,
        behind=None if expected is None else expected - value,
        days_elapsed=period.days_elapsed(today),
        days=period.days,
    )
