"""Appraisal results as a table: CSV and XLSX downloads (one row per rep, one column per item)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from quotaflow import spreadsheets
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
    return spreadsheets.csv_bytes(columns, rows)


def xlsx_bytes(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str) -> bytes:
    """One sheet; scores stay numbers, shown to 2 places."""
    scores = {i for row in rows for i, cell in enumerate(row) if isinstance(cell, Decimal)}
    formats = ["0.00" if i in scores else None for i in range(len(columns))]
    return spreadsheets.xlsx_bytes(columns, rows, title, formats)
