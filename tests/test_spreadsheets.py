"""Downloads: whatever a person typed, no cell of a CSV or .xlsx runs as a formula, and the
text reads back as typed; numbers and dates stay what they were."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from quotaflow.spreadsheets import (
    FORMULA_STARTS,
    UnreadableText,
    Verbatim,
    csv_bytes,
    uploaded_csv_text,
    xlsx_bytes,
)

plain = st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t)
# what a person types, often starting like a formula (=SUM(...), +86 ..., -5, @user)
typed = plain | st.builds(lambda start, rest: start + rest, st.sampled_from(FORMULA_STARTS), plain)


def read_csv(body: bytes) -> list[list[str]]:
    assert body.startswith("\ufeff".encode())  # Excel reads UTF-8 (and Chinese) by it
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


@given(st.lists(typed, min_size=1, max_size=5))
def test_no_typed_text_starts_a_formula_in_a_csv_and_all_of_it_is_kept(texts: list[str]) -> None:
    (header, row) = read_csv(csv_bytes(["h"] * len(texts), [texts]))
    for written, text in zip(row, texts, strict=True):
        assert not written.startswith(FORMULA_STARTS)
        assert written == text or written == "'" + text


def test_numbers_dates_and_made_text_are_written_as_they_are() -> None:
    row = [-5, Decimal("-1234.50"), date(2026, 3, 1), datetime(2026, 3, 1, 9, 30), True, None]
    (_, written) = read_csv(csv_bytes(["a", "b", "c", "d", "e", "f"], [[*row, Verbatim("-15 %")]]))
    assert written == ["-5", "-1234.50", "2026-03-01", "2026-03-01 09:30", "yes", "", "-15 %"]


@given(st.lists(typed.filter(lambda t: t.isprintable()), min_size=1, max_size=4))
def test_an_xlsx_keeps_typed_text_as_text_cells(texts: list[str]) -> None:
    body = xlsx_bytes(["=header", *(["h"] * (len(texts) - 1))], [texts], "Deals")
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None
    assert sheet.cell(row=1, column=1).data_type == "s"
    for column, text in enumerate(texts, start=1):
        cell = sheet.cell(row=2, column=column)
        assert cell.data_type == "s" and cell.value == text  # never a formula ('f')


def test_an_xlsx_keeps_numbers_and_dates_typed_in_their_formats() -> None:
    body = xlsx_bytes(
        ["amount", "day"],
        [[Decimal("1234.50"), date(2026, 3, 1)]],
        "A/B: [x]",
        ["#,##0.00", "yyyy-mm-dd"],
    )
    book = load_workbook(io.BytesIO(body))
    sheet = book.active
    assert sheet is not None and sheet.title == "A_B_ _x_"  # a name Excel accepts
    amount, day = sheet[2]
    assert amount.value == 1234.5 and amount.number_format == "#,##0.00"
    assert day.value == datetime(2026, 3, 1) and day.number_format == "yyyy-mm-dd"
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref == "A1:B2"


def test_control_characters_pasted_into_text_do_not_break_a_workbook() -> None:
    # a vertical tab pasted from Word made openpyxl refuse the whole download
    body = xlsx_bytes(["notes"], [["line\x0bbreak\x07"]], "Deals")
    sheet = load_workbook(io.BytesIO(body)).active
    assert sheet is not None and sheet.cell(row=2, column=1).value == "linebreak"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("\ufeff客户,金额\n".encode(), "客户,金额\n"),  # Excel's "CSV UTF-8": the mark dropped
        ("客户,金额\n".encode(), "客户,金额\n"),
        ("客户,金额\n".encode("gbk"), "客户,金额\n"),  # Excel/WPS "CSV" on a Chinese Windows
        ("顧客,€\n".encode("gb18030"), "顧客,€\n"),
    ],
)
def test_an_uploaded_csv_is_read_in_the_encodings_spreadsheets_save(data: bytes, text: str) -> None:
    assert uploaded_csv_text(data) == text


def test_an_uploaded_csv_in_another_encoding_is_refused_with_what_to_do() -> None:
    with pytest.raises(UnreadableText, match=r"byte 4 is not UTF-8 or GBK text; save the sheet"):
        uploaded_csv_text("Caf\xe9\n".encode("latin-1"))
