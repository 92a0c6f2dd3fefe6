"""Appraisal results as a table: CSV and XLSX downloads (one row per rep, one column per item)."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from openpyxl import Workbook

from quotaflow.scorecards.cycle import Shown


def results_table(
    results: Mapping[int, Shown], names: Mapping[int, tuple[str, str]]
) -> tuple[list[str], list[list[Any]]]:
    """Columns and rows: username, name, each item's score, each group's score, final, grade,
    bonus; best first."""
    first = next(iter(results.values()), None)
    item_ids = [i["id"] for i in first.explanation["items"]] if first else []
    group_ids = [g["id"] for g in first.explanation["groups"]] if first else []
    columns = ["username", "name", *item_ids, *(f"group {g}" for g in group_ids)]
    columns += ["final_score", "grade", "bonus"]
    rows = []
    for rep, shown in sorted(results.items(), key=lambda kv: (-kv[1].final_score, kv[0])):
        username, name = names.get(rep, (str(rep), str(rep)))
        items = {i["id"]: i["score"] for i in shown.explanation["items"]}
        groups = {g["id"]: g["score"] for g in shown.explanation["groups"]}
        rows.append([
            username, name, *(_number(items.get(i)) for i in item_ids),
            *(_number(groups.get(g)) for g in group_ids),
            shown.final_score, shown.grade, shown.bonus,
        ])  # fmt: skip
    return columns, rows


def _number(text: Any) -> Decimal | None:
    """Scores to the cent, as the page shows them (the snapshot keeps every digit)."""
    if text in (None, ""):
        return None
    return Decimal(str(text)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def csv_bytes(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """UTF-8 with a BOM, so spreadsheet programs open Chinese names correctly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if v is None else v for v in row] for row in rows])
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def xlsx_bytes(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> bytes:
    """One sheet; numbers stay numbers (Decimals written as floats, the cell shows 2 places)."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    sheet.append(list(columns))
    for row in rows:
        sheet.append([float(v) if isinstance(v, Decimal) else v for v in row])
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, float):
                cell.number_format = "0.00"
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
