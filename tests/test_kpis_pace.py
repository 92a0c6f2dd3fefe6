"""Attainment and pace on hand-computed examples."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from quotaflow.kpis.pace import attainment, expected_to_date, pace, projected
from quotaflow.kpis.periods import parse_period

Q3 = parse_period("2025-Q3")  # 92 days: July 31, August 31, September 30


def test_attainment() -> None:
    assert attainment(Decimal("105000"), Decimal("100000")) == Decimal("1.0500")
    assert attainment(1, 3) == Decimal("0.3333")
    assert attainment(5, 0) is None
    assert attainment(5, None) is None


def test_expected_to_date_linear_by_days() -> None:
    # 31 July: 31 of 92 days gone; 92,000 * 31 / 92 = 31,000
    assert expected_to_date(Decimal("92000"), Q3, date(2025, 7, 31)) == Decimal("31000.00")
    assert expected_to_date(Decimal("92000"), Q3, date(2025, 6, 1)) == Decimal("0.00")
    assert expected_to_date(Decimal("92000"), Q3, date(2026, 1, 1)) == Decimal("92000.00")
    assert expected_to_date(Decimal("100"), Q3, date(2025, 7, 1)) == Decimal("1.09")  # 100/92


def test_expected_to_date_by_phasing() -> None:
    months = Q3.sub_periods("month")
    phases = [Decimal("10000"), Decimal("20000"), Decimal("30000")]
    # July done (10,000) + 15 of August's 31 days of 20,000 = 9,677.42
    assert expected_to_date(Decimal("60000"), Q3, date(2025, 8, 15), phases, months) == Decimal(
        "19677.42"
    )
    assert expected_to_date(Decimal("60000"), Q3, date(2025, 9, 30), phases, months) == Decimal(
        "60000.00"
    )
    with pytest.raises(ValueError):
        expected_to_date(Decimal("1"), Q3, date(2025, 8, 15), phases, months[:2])


def test_projection_by_run_rate() -> None:
    # 23,000 in 23 days -> 1,000 a day -> 92,000
    assert projected(Decimal("23000"), Q3, date(2025, 7, 23)) == Decimal("92000.00")
    assert projected(Decimal("23000"), Q3, date(2025, 6, 23)) is None
    assert projected(Decimal("50000"), Q3, date(2025, 12, 1)) == Decimal("50000.00")


def test_pace_puts_it_together() -> None:
    result = pace(Decimal("23000"), Decimal("100000"), Q3, date(2025, 7, 23))
    assert result.attainment == Decimal("0.2300")
    assert result.expected == Decimal("25000.00")  # 100,000 * 23 / 92
    assert result.expected_attainment == Decimal("0.2500")
    assert result.projected == Decimal("92000.00")
    assert result.projected_attainment == Decimal("0.9200")
    assert result.gap == Decimal("77000")
    assert result.behind == Decimal("2000.00")
    assert (result.days_elapsed, result.days) == (23, 92)
    blank = pace(None, None, Q3, date(2025, 7, 23))
    assert blank.attainment is None and blank.gap is None and blank.actual == 0
