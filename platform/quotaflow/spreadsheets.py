"""Downloads people open in Excel or WPS: CSV and .xlsx from typed rows, safe to open; and
the text of CSV files people upload, in the encodings their spreadsheets save.

Every download (a form's records, an appraisal's results) goes through here, so each gets
the same care: CSV in UTF-8 with a byte-order mark (Excel then reads Chinese right); .xlsx
with numbers and dates as typed cells in the caller's formats, the header row bold, frozen
and filterable; and nothing a person typed runs as a formula (CSV injection, OWASP): in the
CSV a text cell starting with = + - @ (or a tab or carriage return) gets a leading apostrophe,
in the .xlsx text is written as text cells, which Excel never evaluates.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"


class UnreadableText(ValueError):
    """A CSV file in none of the encodings spreadsheets save; the message says what to do."""


def uploaded_csv_text(data: bytes) -> str:
    """The text of an uploaded CSV file, in the encoding `csv_encoding` finds."""
    return data.decode(csv_encoding(data))


def csv_encoding(data: bytes) -> str:
    """How an uploaded CSV file is read: UTF-8 (with or without Excel's byte-order mark),
    else GB18030, which holds GBK: what Excel and WPS save as "CSV" on a Chinese Windows;
    else Windows-1252, what they save on a Western one ("Müller", "São Paulo"). Anything
    else is refused rather than guessed at; the preview shows the text before it is used.

    GB18030 reads almost any bytes, Western ones too, as Chinese: "Müller" in Windows-1252 is
    valid GB18030 ("M黮ler"). What tells them apart is what the bytes above 127 stand next
    to: a Western accented letter sits inside a word, beside plain letters; a Chinese
    character is two such bytes, beside other characters, digits or punctuation (its second
    byte is itself a letter for a few rarer characters, as in 珺 or 昇: one of its two)."""
    try:
        data.decode("utf-8-sig")
        return "utf-8-sig"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    order = ("cp1252", "gb18030") if _looks_western(data) else ("gb18030", "cp1252")
    for encoding in order:
        try:
            data.decode(encoding)
            return encoding
        except UnicodeDecodeError:
            continue
    raise UnreadableText(
        f"byte {first_bad + 1} is not UTF-8, GBK or Windows-1252 text; save the sheet as "
        "'CSV UTF-8' or as .xlsx"
    ) from None


def _looks_western(data: bytes) -> bool:
    """More than half of the bytes above 127 stand beside a plain letter."""
    high = len(_HIGH.findall(data))
    beside_letter = len(_HIGH_BESIDE_LETTER.findall(data))
    return beside_letter * 2 > high


# (in the regex engine, not a Python loop: an upload may be 20 MB)
_HIGH = re.compile(rb"[\x80-\xff]")
_HIGH_BESIDE_LETTER = re.compile(rb"(?<=[A-Za-z])[\x80-\xff]|[\x80-\xff](?=[A-Za-z])")


class Verbatim(str):
    """Text the program made from a number (`-15 %`), written to a CSV as it is: only text a
    person typed can be a formula in disguise."""

    __slots__ = ()


def csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """Cells may be text, numbers, dates, moments, yes/no or None (blank)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow([defused(h) for h in header])
    writer.writerows([csv_text(cell) for cell in row] for row in rows)
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def csv_text(cell: Any) -> str:
    """One CSV cell: numbers exact (no float rounding), dates ISO, moments to the minute."""
    if cell is None:
        return ""
    if isinstance(cell, Verbatim):
        return str(cell)
    if isinstance(cell, bool):
        return "yes" if cell else "no"  # words an import reads back, in any language
    if isinstance(cell, Decimal):
        return f"{cell:f}"
    if isinstance(cell, int | float):
        return str(cell)  # a negative number is not a formula
    if isinstance(cell, datetime):
        return cell.isoformat(sep=" ", timespec="minutes")
    if isinstance(cell, date):
        return cell.isoformat()
    return defused(str(cell))


def defused(text: str) -> str:
    """`text` with a leading apostrophe when a spreadsheet opening a CSV would run it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def xlsx_bytes(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str,
    formats: Sequence[str | None] = (),
) -> bytes:
    """One sheet named `title`; `formats[i]` is column i's Excel number format (None: as is).
    Written in openpyxl's streaming mode, so a long list does not sit in memory twice."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_title(title))
    sheet.freeze_panes = "A2"
    for i, name in enumerate(header, start=1):
        sheet.column_dimensions[get_column_letter(i)].width = min(max(len(name) + 2, 10), 40)
    bold = Font(bold=True)

    def cell(value: Any, number_format: str | None = None) -> Any:
        if isinstance(value, str):
            # control characters pasted from elsewhere (a vertical tab from Word) are not
            # allowed in a workbook: openpyxl refused the whole download
            value = ILLEGAL_CHARACTERS_RE.sub("", value)
            # openpyxl would write text starting with = as a formula: a text cell keeps it
            made = WriteOnlyCell(sheet, value=str(value))
            made.data_type = "s"
            return made
        if number_format is None or value is None:
            return value
        made = WriteOnlyCell(sheet, value=value)
        made.number_format = number_format
        return made

    top = []
    for name in header:
        made = cell(name)
        made.font = bold
        top.append(made)
    sheet.append(top)
    width = len(header)
    count = 0
    for row in rows:
        sheet.append([cell(v, formats[i] if i < len(formats) else None) for i, v in enumerate(row)])
        count += 1
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(width, 1))}{count + 1}"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def sheet_title(title: str) -> str:
    """A worksheet name Excel accepts: at most 31 characters, none of [ ] : * ? / \\."""
    cleaned = "".join("_" if ch in "[]:*?/\\" else ch for ch in title).strip("'")
    return cleaned[:31] or "Sheet"
