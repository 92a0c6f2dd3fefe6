"""Ids read from addresses, posts and stored values: a number a column holds, or none."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotaflow.ids import id_from


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12", 12),
        (" 7 ", 7),
        (12, 12),  # as a user or reference field stores it
        ("0", 0),
        ("-1", None),
        (-1, None),
        ("1e3", None),
        ("١٢", None),  # digits, but not ASCII ones
        ("9" * 10, None),  # more than an INTEGER column holds
        (10**9, None),
        (True, None),
        (1.0, None),
        (None, None),
        ("", None),
        (["1"], None),
    ],
)
def test_id_from_takes_plain_ids_only(value: object, expected: int | None) -> None:
    assert id_from(value) == expected


@given(st.integers(min_value=0, max_value=999_999_999))
def test_every_id_reads_back_from_its_text_and_its_number(number: int) -> None:
    assert id_from(str(number)) == id_from(number) == number
