"""Periods: a day, ISO week, month, quarter, half year, year, fiscal year or custom range.

Written as text (`2025-Q3`, `2025-07`, `2025-W14`, `2025`, `FY2026`, `FY2026-Q1`, `2025-H1`,
`2025-07-15`, `2025-01-10..2025-02-20`) and parsed once into a `Period` with its first and
last day. A fiscal year is named by the calendar year it ends in: with the fiscal year
starting in April, FY2026 runs from 2025-04-01 to 2026-03-31 (with January, FY2026 is 2026).

Days are the company's days: a period's bounds are midnight in the pack's time zone, so a
deal closed at 23:30 in Shanghai on 30 September belongs to Q3 even though it was already
1 October in UTC. `utc_bounds(tz)` gives the instants to compare stored UTC times with.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from quotaflow.messages import N_, LocalizedError

PeriodKind = Literal["day", "week", "month", "quarter", "half", "year", "fiscal_year", "custom"]
SubKind = Literal["day", "week", "month", "quarter"]
SUB_KINDS: tuple[SubKind, ...] = ("day", "week", "month", "quarter")

FORMS = (
    "2025 (year), FY2026 (fiscal year), FY2026-Q1, 2025-H1, 2025-Q3, 2025-07, "
    "2025-W14 (ISO week), 2025-07-15 (day) or 2025-01-10..2025-02-20 (custom range)"
)
MIN_YEAR, MAX_YEAR = 1900, 2999


class PeriodError(LocalizedError):
    """Text that is not a period, or a period that cannot be split as asked."""


def _add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    y, m = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(y, m + 1, 1)


def _month_end(first: date) -> date:
    return _add_months(first, 1) - timedelta(days=1)


def _fiscal_start(fiscal_year: int, start_month: int) -> date:
    """First day of fiscal year `fiscal_year` (named by the calendar year it ends in)."""
    return date(fiscal_year if start_month == 1 else fiscal_year - 1, start_month, 1)


def _iso_week_start(year: int, week: int) -> date:
    return date.fromisocalendar(year, week, 1)


def _weeks_in(year: int) -> int:
    return date(year, 12, 28).isocalendar()[1]


@dataclass(frozen=True, slots=True)
class Period:
    """A span of whole days, `start` to `end` inclusive, in the company's time zone."""

    kind: PeriodKind
    start: date
    end: date
    label: str
    fiscal_year_start: int = 1

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError(f"'{self.label}' ends before it starts")

    def __str__(self) -> str:
        return self.label

    # --- facts -----------------------------------------------------------------------------

    @property
    def stop(self) -> date:
        """The day after the last day (exclusive bound)."""
        return self.end + timedelta(days=1)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def contains(self, day: date) -> bool:
        return self.start <= day <= self.end

    def utc_bounds(self, tz: ZoneInfo | str) -> tuple[datetime, datetime]:
        """[start, stop) as UTC instants: midnight of the first and of the day after the last."""
        zone = zone_info(tz) if isinstance(tz, str) else tz
        return (
            datetime.combine(self.start, time(), tzinfo=zone).astimezone(UTC),
            datetime.combine(self.stop, time(), tzinfo=zone).astimezone(UTC),
        )

    def days_elapsed(self, today: date) -> int:
        """Days of the period up to and including `today` (0 before, all after)."""
        if today < self.start:
            return 0
        return min(today, self.end).toordinal() - self.start.toordinal() + 1

    # --- related periods --------------------------------------------------------------------

    def sub_periods(self, by: SubKind) -> list[Period]:
        """The period cut into days, ISO weeks, months or quarters (clipped to its bounds).

        Quarters of a fiscal year are fiscal quarters (FY2026-Q1 starts in the fiscal start
        month); weeks at the edges are partial, so the parts always cover the period exactly.
        """
        if by not in SUB_KINDS:
            raise PeriodError(f"cannot split by '{by}': use {', '.join(SUB_KINDS)}")
        parts: list[Period] = []
        if by == "day":
            day = self.start
            while day <= self.end:
                parts.append(day_period(day))
                day += timedelta(days=1)
            return parts
        if by == "week":
            first = self.start - timedelta(days=self.start.weekday())
            while first <= self.end:
                iso = first.isocalendar()
                label = f"{iso[0]}-W{iso[1]:02d}"
                parts.append(
                    Period(
                        "week",
                        max(first, self.start),
                        min(first + timedelta(days=6), self.end),
                        label,
                    )
                )
                first += timedelta(days=7)
            return parts
        step = 1 if by == "month" else 3
        anchor = self.start.replace(day=1)
        if by == "quarter" and self.kind == "fiscal_year":
            number = 1
            while anchor <= self.end:
                fy = int(self.label[2:6])
                parts.append(
                    Period(
                        "quarter",
                        anchor,
                        _month_end(_add_months(anchor, 2)),
                        f"FY{fy}-Q{number}",
                        self.fiscal_year_start,
                    )
                )
                anchor, number = _add_months(anchor, 3), number + 1
            return parts
        if by == "quarter":
            anchor = date(anchor.year, (anchor.month - 1) // 3 * 3 + 1, 1)
        while anchor <= self.end:
            last = _month_end(_add_months(anchor, step - 1))
            if by == "month":
                label = f"{anchor.year}-{anchor.month:02d}"
            else:
                label = f"{anchor.year}-Q{(anchor.month - 1) // 3 + 1}"
            parts.append(Period(by, max(anchor, self.start), min(last, self.end), label))
            anchor = _add_months(anchor, step)
        return parts

    def previous(self) -> Period:
        """The period of the same kind just before (a custom range: as many days before)."""
        return self.shifted(-1)

    def next(self) -> Period:
        return self.shifted(1)

    def shifted(self, n: int) -> Period:
        """The period of the same kind `n` steps later (earlier when negative)."""
        fy = self.fiscal_year_start
        if self.kind == "day":
            return day_period(self.start + timedelta(days=n))
        if self.kind == "week":
            return week_period(self.start + timedelta(weeks=n))
        if self.kind == "month":
            return month_period(_add_months(self.start, n))
        if self.kind == "quarter":
            if self.label.startswith("FY"):
                fy_year, q = int(self.label[2:6]), int(self.label[-1]) - 1 + n
                return parse_period(f"FY{fy_year + q // 4}-Q{q % 4 + 1}", fy)
            return quarter_period(_add_months(self.start, 3 * n))
        if self.kind == "half":
            first = _add_months(self.start, 6 * n)
            return half_period(first)
        if self.kind == "year":
            return year_period(self.start.year + n)
        if self.kind == "fiscal_year":
            return fiscal_year_period(int(self.label[2:]) + n, fy)
        length = self.days
        start = self.start + timedelta(days=n * length)
        return custom_period(start, start + timedelta(days=length - 1))

    def last_year(self) -> Period:
        """The same period one year earlier (week: the same ISO week number, or the last one)."""
        if self.kind == "week":
            year, week, _ = self.start.isocalendar()
            return week_period(_iso_week_start(year - 1, min(week, _weeks_in(year - 1))))
        if self.kind == "day":
            return day_period(_minus_year(self.start))
        if self.kind == "custom":
            return custom_period(_minus_year(self.start), _minus_year(self.end))
        steps = {"month": 12, "quarter": 4, "half": 2, "year": 1, "fiscal_year": 1}[self.kind]
        return self.shifted(-steps)


def _minus_year(day: date) -> date:
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


# --- constructors ---------------------------------------------------------------------------


def day_period(day: date) -> Period:
    return Period("day", day, day, day.isoformat())


def week_period(day: date) -> Period:
    """The ISO week (Monday to Sunday) containing `day`."""
    first = day - timedelta(days=day.weekday())
    year, week, _ = first.isocalendar()
    return Period("week", first, first + timedelta(days=6), f"{year}-W{week:02d}")


def month_period(day: date) -> Period:
    first = day.replace(day=1)
    return Period("month", first, _month_end(first), f"{first.year}-{first.month:02d}")


def quarter_period(day: date) -> Period:
    q = (day.month - 1) // 3
    first = date(day.year, q * 3 + 1, 1)
    return Period("quarter", first, _month_end(_add_months(first, 2)), f"{day.year}-Q{q + 1}")


def half_period(day: date) -> Period:
    h = 0 if day.month <= 6 else 1
    first = date(day.year, h * 6 + 1, 1)
    return Period("half", first, _month_end(_add_months(first, 5)), f"{day.year}-H{h + 1}")


def year_period(year: int) -> Period:
    return Period("year", date(year, 1, 1), date(year, 12, 31), str(year))


def fiscal_year_period(fiscal_year: int, fiscal_year_start: int = 1) -> Period:
    first = _fiscal_start(fiscal_year, fiscal_year_start)
    return Period(
        "fiscal_year",
        first,
        _add_months(first, 12) - timedelta(days=1),
        f"FY{fiscal_year}",
        fiscal_year_start,
    )


def custom_period(start: date, end: date) -> Period:
    return Period("custom", start, end, f"{start.isoformat()}..{end.isoformat()}")


def fiscal_year_of(day: date, fiscal_year_start: int = 1) -> int:
    """The fiscal year (named by the year it ends in) that `day` falls in."""
    if fiscal_year_start == 1:
        return day.year
    return day.year + 1 if day.month >= fiscal_year_start else day.year


def period_containing(
    day: date,
    kind: Literal["day", "week", "month", "quarter", "half", "year", "fiscal_year"],
    fiscal_year_start: int = 1,
) -> Period:
    """The period of `kind` that `day` falls in (today's quarter, this fiscal year...)."""
    if kind == "day":
        return day_period(day)
    if kind == "week":
        return week_period(day)
    if kind == "month":
        return month_period(day)
    if kind == "quarter":
        return quarter_period(day)
    if kind == "half":
        return half_period(day)
    if kind == "year":
        return year_period(day.year)
    if kind == "fiscal_year":
        return fiscal_year_period(fiscal_year_of(day, fiscal_year_start), fiscal_year_start)
    raise PeriodError(f"no period kind '{kind}'")


# --- parsing --------------------------------------------------------------------------------

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(\d{4})"), "year"),
    (re.compile(r"FY(\d{4})"), "fiscal_year"),
    (re.compile(r"FY(\d{4})-Q(\d)"), "fiscal_quarter"),
    (re.compile(r"(\d{4})-H(\d)"), "half"),
    (re.compile(r"(\d{4})-Q(\d)"), "quarter"),
    (re.compile(r"(\d{4})-W(\d{1,2})"), "week"),
    (re.compile(r"(\d{4})-(\d{2})"), "month"),
    (re.compile(r"(\d{4}-\d{2}-\d{2})"), "day"),
    (re.compile(r"(\d{4}-\d{2}-\d{2})\s*\.\.\s*(\d{4}-\d{2}-\d{2})"), "custom"),
]


def _refuse(text: str, why: str = "") -> PeriodError:
    if why:
        refusal = N_("'{text}' is not a period ({why}): use {forms}")
        return PeriodError(refusal, text=text, why=why, forms=FORMS)
    return PeriodError(N_("'{text}' is not a period: use {forms}"), text=text, forms=FORMS)


def _day(text: str, original: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _refuse(original, f"{text} is not a date") from None


def parse_period(text: str, fiscal_year_start: int = 1) -> Period:
    """The period written as `text`; PeriodError with the accepted forms when it is not one."""
    if not isinstance(text, str):
        raise PeriodError(f"a period must be text like 2025-Q3, not {type(text).__name__}")
    if not 1 <= fiscal_year_start <= 12:
        raise PeriodError(f"the fiscal year cannot start in month {fiscal_year_start}")
    raw = text.strip()
    cleaned = raw.upper()
    for pattern, kind in _PATTERNS:
        found = pattern.fullmatch(cleaned)
        if found is None:
            continue
        groups = found.groups()
        if kind in ("day", "custom"):
            days = [_day(g, text) for g in groups]
            if kind == "day":
                return day_period(days[0])
            if days[1] < days[0]:
                raise _refuse(text, "the range ends before it starts")
            return custom_period(days[0], days[1])
        year = int(groups[0])
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise _refuse(text, f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
        number = int(groups[1]) if len(groups) > 1 else 0
        if kind == "year":
            return year_period(year)
        if kind == "fiscal_year":
            return fiscal_year_period(year, fiscal_year_start)
        if kind == "fiscal_quarter":
            if not 1 <= number <= 4:
                raise _refuse(text, "a quarter is Q1 to Q4")
            fy = fiscal_year_period(year, fiscal_year_start)
            return fy.sub_periods("quarter")[number - 1]
        if kind == "half":
            if number not in (1, 2):
                raise _refuse(text, "a half year is H1 or H2")
            return half_period(date(year, 1 if number == 1 else 7, 1))
        if kind == "quarter":
            if not 1 <= number <= 4:
                raise _refuse(text, "a quarter is Q1 to Q4")
            return quarter_period(date(year, number * 3 - 2, 1))
        if kind == "week":
            if not 1 <= number <= _weeks_in(year):
                raise _refuse(text, f"{year} has ISO weeks 1 to {_weeks_in(year)}")
            return week_period(_iso_week_start(year, number))
        if kind == "month":
            if not 1 <= number <= 12:
                raise _refuse(text, "a month is 01 to 12")
            return month_period(date(year, number, 1))
    raise _refuse(text)


def zone_info(name: str) -> ZoneInfo:
    """The IANA time zone, or PeriodError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, KeyError, OSError):
        raise PeriodError(f"unknown time zone '{name}' (e.g. Asia/Shanghai, UTC)") from None


def iter_days(period: Period) -> Iterator[date]:
    day = period.start
    while day <= period.end:
        yield day
        day += timedelta(days=1)
