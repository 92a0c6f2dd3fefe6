"""Periods: parsing, bounds, sub-periods, previous/last year, time zones, fiscal years."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotaflow.kpis.periods import (
    PeriodError,
    parse_period,
    period_containing,
)


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("2025", date(2025, 1, 1), date(2025, 12, 31), "2025"),
        ("2025-H1", date(2025, 1, 1), date(2025, 6, 30), "2025-H1"),
        ("2025-h2", date(2025, 7, 1), date(2025, 12, 31), "2025-H2"),
        ("2025-Q3", date(2025, 7, 1), date(2025, 9, 30), "2025-Q3"),
        ("2024-02", date(2024, 2, 1), date(2024, 2, 29), "2024-02"),
        ("2025-W14", date(2025, 3, 31), date(2025, 4, 6), "2025-W14"),
        ("2026-W01", date(2025, 12, 29), date(2026, 1, 4), "2026-W01"),
        ("2020-W53", date(2020, 12, 28), date(2021, 1, 3), "2020-W53"),
        ("2025-07-15", date(2025, 7, 15), date(2025, 7, 15), "2025-07-15"),
        ("2025-01-10..2025-02-20", date(2025, 1, 10), date(2025, 2, 20), "2025-01-10..2025-02-20"),
        (" FY2026 ", date(2026, 1, 1), date(2026, 12, 31), "FY2026"),
    ],
)
def test_parsing(text: str, start: date, end: date, label: str) -> None:
    period = parse_period(text)
    assert (period.start, period.end, period.label) == (start, end, label)


def test_a_fiscal_year_is_named_by_the_year_it_ends_in() -> None:
    fy = parse_period("FY2026", fiscal_year_start=4)
    assert (fy.start, fy.end) == (date(2025, 4, 1), date(2026, 3, 31))
    quarters = fy.sub_periods("quarter")
    assert [q.label for q in quarters] == ["FY2026-Q1", "FY2026-Q2", "FY2026-Q3", "FY2026-Q4"]
    assert (quarters[0].start, quarters[3].end) == (date(2025, 4, 1), date(2026, 3, 31))
    q4 = parse_period("FY2026-Q4", 4)
    assert (q4.start, q4.end) == (date(2026, 1, 1), date(2026, 3, 31))
    assert q4.next().label == "FY2027-Q1" and q4.next().start == date(2026, 4, 1)
    assert fy.previous().start == date(2024, 4, 1)
    assert period_containing(date(2025, 3, 31), "fiscal_year", 4).label == "FY2025"
    assert period_containing(date(2025, 4, 1), "fiscal_year", 4).label == "FY2026"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("2025-Q5", "a quarter is Q1 to Q4"),
        ("2025-13", "a month is 01 to 12"),
        ("2025-H3", "a half year is H1 or H2"),
        ("2025-W53", "2025 has ISO weeks 1 to 52"),
        ("2025-02-30", "2025-02-30 is not a date"),
        ("2025-03-01..2025-02-01", "the range ends before it starts"),
        ("0999", "the year must be between 1900 and 2999"),
        ("last quarter", ""),
        ("", ""),
    ],
)
def test_clear_errors(text: str, why: str) -> None:
    with pytest.raises(PeriodError) as err:
        parse_period(text)
    message = str(err.value)
    assert message.startswith(f"'{text}' is not a period")
    assert why in message
    assert "use 2025 (year), FY2026 (fiscal year)" in message


def test_the_quarter_error_reads_well() -> None:
    with pytest.raises(
        PeriodError, match=r"^'2025-Q5' is not a period \(a quarter is Q1 to Q4\): use "
    ):
        parse_period("2025-Q5")


def test_sub_periods_cover_the_period_exactly() -> None:
    year = parse_period("2025")
    assert [q.label for q in year.sub_periods("quarter")] == [
        "2025-Q1",
        "2025-Q2",
        "2025-Q3",
        "2025-Q4",
    ]
    months = year.sub_periods("month")
    assert len(months) == 12 and months[1].end == date(2025, 2, 28)
    weeks = year.sub_periods("week")
    assert weeks[0].label == "2025-W01" and weeks[0].start == date(2025, 1, 1)
    assert weeks[0].end == date(2025, 1, 5)
    assert weeks[-1].label == "2026-W01" and weeks[-1].end == date(2025, 12, 31)
    assert sum(w.days for w in weeks) == 365
    assert len(year.sub_periods("day")) == 365
    with pytest.raises(PeriodError, match="cannot split by 'year'"):
        year.sub_periods("year")  # type: ignore[arg-type]


def test_previous_and_last_year() -> None:
    assert parse_period("2025-Q1").previous().label == "2024-Q4"
    assert parse_period("2025-01").previous().label == "2024-12"
    assert parse_period("2025-W01").previous().label == "2024-W52"
    assert parse_period("2025-H1").previous().label == "2024-H2"
    assert parse_period("2025").previous().label == "2024"
    assert parse_period("2025-03-01").previous().label == "2025-02-28"
    custom = parse_period("2025-01-10..2025-01-19")
    assert custom.previous().label == "2024-12-31..2025-01-09"
    assert parse_period("2025-Q3").last_year().label == "2024-Q3"
    assert parse_period("2021-W53".replace("2021", "2020")).last_year().label == "2019-W52"
    assert parse_period("2024-02-29").last_year().label == "2023-02-28"


def test_bounds_are_midnight_in_the_pack_time_zone() -> None:
    q3 = parse_period("2025-Q3")
    start, stop = q3.utc_bounds("Asia/Shanghai")
    assert start == datetime(2025, 6, 30, 16, 0, tzinfo=UTC)
    assert stop == datetime(2025, 9, 30, 16, 0, tzinfo=UTC)
    # 23:30 in Shanghai on 30 September is 15:30 UTC: in Q3
    closed = datetime(2025, 9, 30, 15, 30, tzinfo=UTC)
    assert start <= closed < stop
    # 00:30 in Shanghai on 1 October is still 30 September in UTC: not in Q3
    assert not datetime(2025, 9, 30, 16, 30, tzinfo=UTC) < stop
    # daylight saving: New York's March has a 23-hour day
    march_start, march_stop = parse_period("2025-03").utc_bounds("America/New_York")
    assert march_start.hour == 5 and march_stop.hour == 4
    with pytest.raises(PeriodError, match="unknown time zone 'Mars/Base'"):
        q3.utc_bounds("Mars/Base")


def test_days_elapsed() -> None:
    q = parse_period("2025-Q3")
    assert q.days == 92
    assert q.days_elapsed(date(2025, 6, 30)) == 0
    assert q.days_elapsed(date(2025, 7, 1)) == 1
    assert q.days_elapsed(date(2025, 12, 1)) == 92


labels = st.one_of(
    st.integers(1990, 2090).map(str),
    st.tuples(st.integers(1990, 2090), st.integers(1, 4)).map(lambda t: f"{t[0]}-Q{t[1]}"),
    st.tuples(st.integers(1990, 2090), st.integers(1, 12)).map(lambda t: f"{t[0]}-{t[1]:02d}"),
    st.tuples(st.integers(1990, 2090), st.integers(1, 52)).map(lambda t: f"{t[0]}-W{t[1]:02d}"),
    st.tuples(st.integers(1990, 2090), st.integers(1, 2)).map(lambda t: f"{t[0]}-H{t[1]}"),
    st.integers(1990, 2090).map(lambda y: f"FY{y}"),
)


@settings(max_examples=150, deadline=None)
@given(labels, st.integers(1, 12), st.sampled_from(["day", "week", "month", "quarter"]))
def test_round_trips_and_tiling(text: str, fy_start: int, by: str) -> None:
    period = parse_period(text, fy_start)
    assert parse_period(period.label, fy_start) == period
    assert period.next().previous() == period
    assert period.previous().stop == period.start
    parts = period.sub_periods(by)  # type: ignore[arg-type]
    assert parts[0].start == period.start and parts[-1].end == period.end
    assert all(a.stop == b.start for a, b in zip(parts, parts[1:], strict=False))
    assert sum(p.days for p in parts) == period.days
