"""Downloads: whatever a person typed, no cell of a CSV or .xlsx runs as a formula, and the
text reads back as typed; numbers and dates stay what they were."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import assume, given, settings
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
        # Excel's "CSV" on a Western Windows; valid GB18030 too ("M黮ler"), read as meant
        ("Müller GmbH,Café Ærø,€ 5\n".encode("cp1252"), "Müller GmbH,Café Ærø,€ 5\n"),
        ("Caf\xe9\n".encode("cp1252"), "Café\n"),
        ("客户,Müller,金额\n".encode("gbk"), None),  # Chinese with a Western name: no mix-up
        ("客户,紷,金额,上海机电\n".encode("gbk"), None),  # a rare character (a lone byte > 127)
        ("姓名\n李珺\n陈昇\n".encode("gbk"), None),  # names ending in one
        ("Café,Negociação,Cotação\n".encode("cp1252"), "Café,Negociação,Cotação\n"),
    ],
)
def test_an_uploaded_csv_is_read_in_the_encodings_spreadsheets_save(
    data: bytes, text: str | None
) -> None:
    assert uploaded_csv_text(data) == (text or data.decode("gbk"))


# the first level of GB2312 (the 3,755 commonest characters), and rarer ones of people's
# names whose second GBK byte is a plain letter (珺 is AC 42: "B")
COMMON = "".join(
    ch
    for hi in range(0xB0, 0xD8)
    for lo in range(0xA1, 0xFF)
    if (ch := bytes([hi, lo]).decode("gb2312", "ignore"))
)
RARE = "珺昇玥镕鍾滙豐"
WESTERN = ["Müller", "café", "Señor", "Zoë", "€ 5", "ÆØÅ", "naïve", "Negociação", "Größe",
           "São Paulo", "Conceição", "Straße", "Ærø", "°C", "déjà vu"]  # fmt: skip


@settings(max_examples=300)
@given(
    cells=st.lists(
        st.tuples(st.text(alphabet=COMMON, min_size=2, max_size=4), st.sampled_from(["", *RARE])),
        min_size=1, max_size=8,
    ),
    gaps=st.lists(st.sampled_from([",", "\n", ",12,", ";", " ", ",2026-11-30,"]), min_size=8,
                  max_size=8),
)  # fmt: skip
def test_chinese_spreadsheet_text_is_read_as_written(
    cells: list[tuple[str, str]], gaps: list[str]
) -> None:
    """GBK Chinese as sheets hold it (cells of common characters, some names ending in a rarer
    one; commas, digits and line ends between) reads back as written, never as Western."""
    text = "".join(common + rare + gap for (common, rare), gap in zip(cells, gaps, strict=False))
    data = text.encode("gbk")
    # a few GBK characters make valid UTF-8 too ("一" is "һ"): UTF-8 comes first, as Excel's
    # "CSV UTF-8" must; a whole sheet of them never does
    assume(not _is_utf8(data))
    assert uploaded_csv_text(data) == text


@settings(max_examples=300)
@given(
    words=st.lists(st.sampled_from(WESTERN), min_size=1, max_size=8),
    gap=st.sampled_from([" ", ",", ", ", ";", "\n", ",12,"]),
)
def test_western_spreadsheet_text_is_read_as_written(words: list[str], gap: str) -> None:
    """Windows-1252 text of Western words (accented letters alone or side by side; a space,
    comma or line end between) reads back as written, never as Chinese."""
    text = gap.join(words) + "\n"
    assert uploaded_csv_text(text.encode("cp1252")) == text


def _gb2312(text: str) -> bool:
    try:
        text.encode("gb2312")
    except UnicodeEncodeError:
        return False
    return True


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_an_uploaded_csv_in_another_encoding_is_refused_with_what_to_do() -> None:
    with pytest.raises(
        UnreadableText, match=r"byte 4 is not UTF-8, GBK or Windows-1252 text; save"
    ):
        uploaded_csv_text(b"abc\x81\n")  # undefined in Windows-1252, cut short in GB18030
