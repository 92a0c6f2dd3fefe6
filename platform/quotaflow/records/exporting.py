"""A form's records as a spreadsheet people open in Excel or WPS: CSV or .xlsx.

The sheet is what the list shows, with every field: one row a record, one column a field,
headed by the field's label in the reader's language, then who owns it, their team, the
stage and when it was created and last changed. Cells are what people read — choice labels,
people's names, referenced records' titles — with numbers, money and dates kept as numbers and
dates (an .xlsx cell is a number a formula can sum; in a CSV, numbers, percents, dates and
yes/no are written as a rep types them into the form). Which records, and in which order, is
the caller's (the list's filters and sort on the visible records): this module only lays them
out. No Flask here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from quotaflow import spreadsheets
from quotaflow.forms.values import from_storage, to_input
from quotaflow.forms.wtf import choice_label
from quotaflow.ids import id_from
from quotaflow.packs.definitions import FieldDef, FormDef, label_text
from quotaflow.records.models import Record

FORMATS = ("csv", "xlsx")
MEDIA_TYPES = {"csv": spreadsheets.CSV_MEDIA_TYPE, "xlsx": spreadsheets.XLSX_MEDIA_TYPE}
# Excel's own number formats for the typed cells
_MONEY_FORMAT = "#,##0.00"
_PERCENT_FORMAT = "0.##%"
_DATE_FORMAT = "yyyy-mm-dd"
_DATETIME_FORMAT = "yyyy-mm-dd hh:mm"


@dataclass(frozen=True, slots=True)
class Column:
    """One column: its header, and the field it shows (None for the record's own columns)."""

    header: str
    field: FieldDef | None = None
    kind: str = "text"  # how an .xlsx cell is formatted: text, money, percent, date, datetime


@dataclass(frozen=True, slots=True)
class Sheet:
    """Headers and typed cells (str, int, Decimal, date, datetime or None), row by row."""

    columns: list[Column]
    rows: list[list[Any]]


@dataclass(frozen=True, slots=True)
class Names:
    """What the cells name, looked up by the caller: people, teams, referenced records'
    titles, and the stage labels of the form's pipeline."""

    people: Mapping[int, str]
    teams: Mapping[int, str]
    records: Mapping[int, str]
    stage: Callable[[str | None], str]


def records_sheet(
    form: FormDef,
    records: Iterable[Record],
    names: Names,
    language: str,
    headers: Mapping[str, str],
    local_time: Callable[[datetime], datetime],
    computed: Callable[[Record], Mapping[str, Any]] | None = None,
) -> Sheet:
    """The sheet of these records. `headers` holds the record columns' headers in the reader's
    language (id, owner, team, stage, created, updated); `local_time` turns a stored moment
    (UTC) into the company's time zone, as the pages show it; `computed` gives a record's
    formula values when some are not stored (an import or an older version left them out)."""
    fields = list(form.fields)
    columns = [Column(headers["id"])]
    columns += [Column(label_text(f.label, language, f.id), f, _kind(f)) for f in fields]
    columns += [
        Column(headers["owner"]),
        Column(headers["team"]),
        Column(headers["stage"]),
        Column(headers["created"], kind="datetime"),
        Column(headers["updated"], kind="datetime"),
    ]
    formulas = [f.id for f in fields if f.formula is not None]
    rows: list[list[Any]] = []
    for record in records:
        values: Mapping[str, Any] = record.values
        if computed is not None and any(values.get(f) in (None, "") for f in formulas):
            values = {**computed(record), **{k: v for k, v in values.items() if v != ""}}
        rows.append(
            [
                record.id,
                *(cell_of(f, values.get(f.id), names, language, local_time) for f in fields),
                names.people.get(record.owner_id, ""),
                names.teams.get(record.team_id, "") if record.team_id else "",
                names.stage(record.stage) if record.stage else "",
                _wall(local_time, record.created_at),
                _wall(local_time, record.updated_at),
            ]
        )
    return Sheet(columns, rows)


def cell_of(
    fdef: FieldDef,
    stored: Any,
    names: Names,
    language: str,
    local_time: Callable[[datetime], datetime],
) -> Any:
    """One field's cell: what the record page shows, but numbers and dates kept typed."""
    value = from_storage(fdef, stored)
    if value is None or value == "" or value == []:
        return None
    kind = fdef.type
    if kind == "choice":
        return choice_label(fdef, str(value), language)
    if kind == "multichoice" and isinstance(value, list):
        return ", ".join(choice_label(fdef, str(v), language) for v in value)
    if kind == "user":
        return names.people.get(id_from(str(value)) or -1, f"#{value}")
    if kind == "reference":
        return names.records.get(id_from(str(value)) or -1, f"#{value}")
    if kind in ("number", "computed", "rating") and not isinstance(value, bool):
        return _number(value)
    if kind == "datetime" and isinstance(value, datetime):
        return _wall(local_time, value)
    return value


def csv_bytes(sheet: Sheet) -> bytes:
    """The sheet as CSV: numbers, percents (15 %), dates (ISO) and yes/no as a rep would type
    them into the form."""
    rows = (
        [_as_typed(column, cell) for column, cell in zip(sheet.columns, row, strict=True)]
        for row in sheet.rows
    )
    return spreadsheets.csv_bytes([c.header for c in sheet.columns], rows)


def xlsx_bytes(sheet: Sheet, title: str) -> bytes:
    """The sheet as an Excel workbook: money, percent and dates as typed cells with formats."""
    return spreadsheets.xlsx_bytes(
        [c.header for c in sheet.columns],
        sheet.rows,
        title,
        [_FORMATS.get(c.kind) for c in sheet.columns],
    )


def _as_typed(column: Column, cell: Any) -> Any:
    if column.kind == "percent" and column.field is not None and cell is not None:
        return spreadsheets.Verbatim(to_input(column.field, cell) + " %")
    return cell


_FORMATS = {
    "money": _MONEY_FORMAT,
    "percent": _PERCENT_FORMAT,
    "date": _DATE_FORMAT,
    "datetime": _DATETIME_FORMAT,
}


def _kind(fdef: FieldDef) -> str:
    return fdef.type if fdef.type in _FORMATS else "text"


def _number(value: Any) -> Any:
    if isinstance(value, int | Decimal):
        return value
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        return str(value)
    return int(number) if number == number.to_integral_value() and abs(number) < 2**53 else number


def _wall(local_time: Callable[[datetime], datetime], moment: datetime | None) -> datetime | None:
    """A moment as the company's clocks showed it (Excel cells have no time zone)."""
    if moment is None:
        return None
    if moment.tzinfo is None:  # SQLite hands stored UTC back naive
        moment = moment.replace(tzinfo=UTC)
    return local_time(moment).replace(tzinfo=None)


def file_name(form_id: str, today: date, fmt: str) -> str:
    """`deal-2026-11-29.xlsx`: ASCII, so every browser saves it under this name."""
    return f"{form_id}-{today.isoformat()}.{fmt}"
