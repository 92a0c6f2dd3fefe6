"""Importing records from a spreadsheet: every row checked by the form itself, all or nothing.

Each row goes through the same form engine as a rep's submission (types, choices, required
fields, rules), plus its owner (a username or a person's name), its stage (an id or a
label, any case) and the owner's team on the record's date. Nothing is written unless every
row passes, or with `partial` the good rows are written and the bad ones reported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.errors import QuotaflowError
from quotaflow.forms.engine import validate_submission
from quotaflow.forms.values import Raw
from quotaflow.messages import N_, translate
from quotaflow.org.models import Membership, User
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import ChoiceDef, FieldDef, label_text
from quotaflow.packs.services import active_version_id
from quotaflow.pipelines.machine import is_closed
from quotaflow.pipelines.services import pipeline_of, record_first_stages
from quotaflow.records.services import NewRecord, create_records
from quotaflow.spreadsheets import UnreadableText, uploaded_csv_text
from quotaflow.timeutil import utcnow

MAX_IMPORT_BYTES = 200 * 1024 * 1024


class ImportRejected(QuotaflowError):
    """Some rows are wrong; nothing was imported. `problems` lists them by row number."""

    def __init__(self, problems: list[str], total: int) -> None:
        shown = problems[:50]
        more = f"\n... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(
            "\n".join([*shown]) + more + f"\n{len(problems)} problem(s) in {total} row(s); "
            "nothing was imported (use --partial to import the good rows)"
        )
        self.problems = problems


@dataclass
class ImportPlan:
    """How columns become fields, and the extras every row needs."""

    form_id: str
    columns: Mapping[str, str] = field(default_factory=dict)  # column -> field
    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # field -> {from: to}
    owner_column: str | None = None
    default_owner: int | None = None  # owner of every row when there is no owner column
    stage_column: str | None = None
    date_field: str | None = None  # the field giving the record's date (default: first date)
    closed_field: str | None = None  # the field giving the closed date of won/lost records


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """A row that passed: its typed values, stage and owner."""

    values: dict[str, Any]
    stage: str | None
    owner_id: int


@dataclass
class ImportResult:
    """What happened: rows read, imported, and the problems of the rows left out."""

    total: int
    imported: int
    problems: list[str]
    rejected: list[int] = field(default_factory=list)  # the row numbers of `problems`, in order


def read_table(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """(columns, [(row number, {column: text})]) of a .csv or .xlsx file; header is row 1."""
    if not path.is_file():
        raise QuotaflowError(f"{path}: no such file")
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise QuotaflowError(f"{path.name}: larger than {MAX_IMPORT_BYTES // 1024 // 1024} MB")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        try:
            text = uploaded_csv_text(path.read_bytes())
        except UnreadableText as exc:
            raise QuotaflowError(f"{path.name}: {exc}") from None
        raw: Iterable[list[Any]] = list(csv.reader(io.StringIO(text, newline="")))
    elif suffix in (".xlsx", ".xlsm"):
        from zipfile import BadZipFile

        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            book = load_workbook(path, read_only=True, data_only=True)
        except (BadZipFile, InvalidFileException, KeyError, OSError):
            raise QuotaflowError(
                f"{path.name}: not a readable Excel workbook; save it again as .xlsx"
            ) from None
        raw = [list(r) for r in book.active.iter_rows(values_only=True)] if book.active else []
    else:
        raise QuotaflowError(f"{path.name}: expected a .csv or .xlsx file")
    lines = iter(raw)
    header = [str(c or "").strip() for c in next(lines, [])]
    if not any(header):
        raise QuotaflowError(f"{path.name}: row 1 should name the columns; the file is empty")
    rows = []
    for number, cells in enumerate(lines, start=2):
        row = {c: _cell(cells[i]) if i < len(cells) else "" for i, c in enumerate(header) if c}
        if any("\x00" in text for text in row.values()):
            # no field can store one (PostgreSQL refuses it): said, not stored half-way
            raise QuotaflowError(
                f"{path.name}: row {number} holds a NUL character; remove it and import again"
            )
        if any(row.values()):
            rows.append((number, row))
    return header, rows


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def column_problems(pack: CompiledPack, plan: ImportPlan, header: list[str]) -> list[str]:
    """Mistakes in the mapping itself (reported before any row is read)."""
    form = pack.forms.get(plan.form_id)
    if form is None:
        return [f"no form '{plan.form_id}' in pack {pack.id} (forms: {', '.join(pack.forms)})"]
    fields = {f.id for f in form.fields}
    problems = [
        f"--map {c}={f}: no column '{c}' in the file"
        for c, f in plan.columns.items()
        if c not in header
    ]
    problems += [
        f"--map {c}={f}: the form has no field '{f}'"
        for c, f in plan.columns.items()
        if f not in fields
    ]
    for option, column in (
        ("--owner-column", plan.owner_column),
        ("--stage-column", plan.stage_column),
    ):
        if column and column not in header:
            problems.append(f"{option} {column}: no such column in the file")
    if plan.stage_column and pipeline_of(pack, plan.form_id) is None:
        problems.append(f"--stage-column: records of form {plan.form_id} have no pipeline")
    for option, name in (("--date-field", plan.date_field), ("--closed-field", plan.closed_field)):
        if name and name not in fields:
            problems.append(f"{option} {name}: the form has no field '{name}'")
    return problems


def import_records(
    session: Session,
    pack: CompiledPack,
    plan: ImportPlan,
    header: list[str],
    rows: list[tuple[int, dict[str, str]]],
    *,
    actor_id: int | None = None,
    partial: bool = False,
    progress: Callable[[int], None] = lambda _n: None,
    locale: str = "en",
) -> ImportResult:
    """Check every row, then write them (all, or with `partial` the good ones) in the session;
    the problems of bad rows are said in `locale`."""
    mapping_problems = column_problems(pack, plan, header)
    if mapping_problems:
        raise QuotaflowError("\n".join(mapping_problems))
    form = pack.forms[plan.form_id]
    columns = dict(plan.columns) or {}
    for f in form.fields:  # a column named like a field maps to it unless told otherwise
        if f.id in header and f.id not in columns and f.id not in columns.values():
            columns[f.id] = f.id
    people = _people(session)
    stages = _stage_names(pack, plan.form_id)
    date_field = plan.date_field or next((f.id for f in form.fields if f.type == "date"), None)
    good: list[CheckedRow] = []
    problems: list[str] = []
    rejected: list[int] = []
    checked_rows = _checked_rows(pack, plan, columns, rows, people, stages, locale)
    for (number, _row), checked in zip(rows, checked_rows, strict=True):  # one answer a row
        progress(1)
        if isinstance(checked, str):
            problems.append(checked)
            rejected.append(number)
        else:
            good.append(checked)
    if problems and not partial:
        raise ImportRejected(problems, len(rows))
    version_id = active_version_id(session, pack.id)
    pipeline_id = pipeline_of(pack, plan.form_id)
    pipeline = pack.pipelines[pipeline_id] if pipeline_id else None
    team_on = _teams_by_day(session)
    new: list[NewRecord] = []
    for row in good:
        values, stage, owner_id = row.values, row.stage, row.owner_id
        day = values.get(date_field) if date_field else None
        closed = values.get(plan.closed_field) if plan.closed_field else None
        is_done = bool(pipeline and stage and is_closed(pipeline, stage))
        new.append(NewRecord(
            owner_id=owner_id, team_id=team_on(owner_id, day or date.today()),
            values={k: v for k, v in values.items() if v is not None}, stage=stage,
            amount=values.get("amount") if isinstance(values.get("amount"), Decimal) else None,
            record_date=day, created_at=_noon(day) if day else None,
            closed_at=_noon(closed) if closed and is_done else None,
        ))  # fmt: skip
    ids = create_records(
        session, new, pack_id=pack.id, pack_version_id=version_id, form_id=plan.form_id,
        actor_id=actor_id, logged_at=utcnow(),
    )  # fmt: skip
    if pipeline_id:
        moves = [(rid, r.stage, r.created_at) for rid, r in zip(ids, new, strict=True) if r.stage]
        record_first_stages(session, moves, pipeline_id, actor_id)
    who = session.get(User, actor_id) if actor_id is not None else None
    record_event(
        session, actor=who.username if who else "cli", action="records_import",
        object_type="form", object_id=f"{pack.id}/{plan.form_id}",
        details={
            "rows": len(rows), "imported": len(good), "rejected": len(problems),
            "ids": [min(ids), max(ids)] if ids else [],
        },
    )  # fmt: skip
    session.flush()
    return ImportResult(len(rows), len(good), problems, rejected)


def _teams_by_day(session: Session) -> Callable[[int, date], int | None]:
    """owner, day -> the team of their membership valid that day (the latest-starting one),
    from one read of the memberships instead of a query per row."""
    spans: dict[int, list[tuple[date, date | None, int]]] = {}
    rows = session.execute(
        select(
            Membership.user_id, Membership.valid_from, Membership.valid_to, Membership.team_id
        ).order_by(Membership.valid_from.desc())
    )
    for user_id, start, end, team_id in rows:
        spans.setdefault(user_id, []).append((start, end, team_id))

    def team_on(owner_id: int, day: date) -> int | None:
        for start, end, team_id in spans.get(owner_id, ()):
            if start <= day and (end is None or end > day):
                return team_id
        return None

    return team_on


def _noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def _people(session: Session) -> dict[str, int]:
    """Username and display name (any case) -> user id; a name two people share maps to -1."""
    out: dict[str, int] = {}
    for user_id, username, name in session.execute(
        select(User.id, User.username, User.display_name)
    ):
        for key in {username.lower(), (name or "").strip().lower()} - {""}:
            out[key] = -1 if key in out and out[key] != user_id else user_id
    return out


def _stage_names(pack: CompiledPack, form_id: str) -> dict[str, str]:
    """Stage id or label in any language (lower case) -> stage id."""
    pipeline_id = pipeline_of(pack, form_id)
    if pipeline_id is None:
        return {}
    out = {}
    for stage in pack.pipelines[pipeline_id].stages:
        out[stage.id.lower()] = stage.id
        labels = (
            [stage.label] if isinstance(stage.label, str) else list((stage.label or {}).values())
        )
        for text in labels:
            out[text.strip().lower()] = stage.id
        out[label_text(stage.label, "en", stage.id).lower()] = stage.id
    return out


def _checked_rows(
    pack: CompiledPack,
    plan: ImportPlan,
    columns: Mapping[str, str],
    rows: list[tuple[int, dict[str, str]]],
    people: Mapping[str, int],
    stages: Mapping[str, str],
    locale: str,
) -> Iterator[CheckedRow | str]:
    """Each row checked: a CheckedRow, or its problem as 'row N: ...' in `locale`, fields
    named by their labels."""
    fields = {f.id: f for f in pack.forms[plan.form_id].fields}
    choices = {f.id: _choice_ids(f) for f in fields.values() if f.choices}

    def problem(number: int, message: str, **params: Any) -> str:
        said = translate(locale, message, **params)
        return translate(locale, N_("row {number}: {problem}"), number=number, problem=said)

    for number, row in rows:
        raw: dict[str, Raw] = {}
        for column, field_id in columns.items():
            text = row.get(column, "")
            mapped = plan.values.get(field_id, {})
            text = mapped.get(text, text)
            field_type = fields[field_id].type
            if field_type == "percent" and text:
                text = _fraction_to_percent(text)  # spreadsheets hold 0.15 for 15 %
            if field_type == "choice" and field_id in choices:
                # a choice by its label in any language, any case, as people type it
                raw[field_id] = choices[field_id].get(text.strip().lower(), text)
            elif field_type == "multichoice" and field_id in choices:
                items = multichoice_items(text, choices[field_id])
                raw[field_id] = [choices[field_id].get(t.lower(), t) for t in items]
            else:
                raw[field_id] = text
        owner_text = row.get(plan.owner_column or "", "").strip()
        owner_id = people.get(owner_text.lower()) if owner_text else plan.default_owner
        if owner_id is None:
            if owner_text:
                yield problem(number, N_("owner '{owner}' is not a user"), owner=owner_text)
            else:
                yield problem(number, N_("no owner"))
            continue
        if owner_id == -1:
            yield problem(
                number, N_("owner '{owner}' names more than one person; use usernames"),
                owner=owner_text,
            )  # fmt: skip
            continue
        stage = None
        if plan.stage_column:
            stage_text = row.get(plan.stage_column, "").strip()
            stage = stages.get(stage_text.lower())
            if stage is None:  # the stages by their names in the reader's language, in order
                pipeline_id = pipeline_of(pack, plan.form_id) or ""
                known = ", ".join(
                    label_text(s.label, locale, s.id) for s in pack.pipelines[pipeline_id].stages
                )
                yield problem(
                    number, N_("stage '{stage}' is not a stage (stages: {known})"),
                    stage=stage_text, known=known,
                )  # fmt: skip
                continue
        elif pipeline_of(pack, plan.form_id):
            stage = pack.pipelines[pipeline_of(pack, plan.form_id) or ""].stages[0].id
        state = validate_submission(pack, plan.form_id, raw, stage=stage, locale=locale)
        if not state.ok:
            messages = [
                _field_message(fields[f], m[0], row_text(raw.get(f)), locale)
                for f, m in state.errors.items()
            ]
            messages += state.form_errors
            yield translate(
                locale, N_("row {number}: {problem}"), number=number, problem="; ".join(messages)
            )
            continue
        values = {k: v for k, v in state.values.items() if k in raw or fields[k].formula}
        yield CheckedRow(values, stage, owner_id)


MULTI_SEPARATORS = re.compile(r"[;,，；、|]")


def multichoice_items(text: str, known: Mapping[str, str]) -> list[str]:
    """The items of a multichoice cell, split at ; , ， ； 、 | — but a known label holding
    one of them ("Motors, drives") is one item, as the records' own download writes it."""
    whole = [
        re.compile(re.escape(k), re.IGNORECASE)
        for k in sorted((k for k in known if MULTI_SEPARATORS.search(k)), key=len, reverse=True)
    ]
    items: list[str] = []
    rest = text
    while rest.strip():
        rest = rest.lstrip()
        found_label = next(
            (m for label in whole if (m := label.match(rest)) and _item_ends(rest, m.end())), None
        )
        if found_label is not None:  # (matched in the text itself: a lower case may be longer)
            end = found_label.end()
            item, rest = rest[:end], rest[end:].lstrip()[1:]  # and its separator
        else:
            found = MULTI_SEPARATORS.search(rest)
            item, rest = (rest[: found.start()], rest[found.end() :]) if found else (rest, "")
        if item.strip():
            items.append(item.strip())
    return items


def _item_ends(text: str, at: int) -> bool:
    """The text ends at `at`, or a separator follows (spaces aside)."""
    after = text[at:].lstrip()
    return not after or MULTI_SEPARATORS.match(after) is not None


def row_text(value: Raw) -> str:
    """A cell as it was read (a multichoice's items joined again)."""
    if value is None or isinstance(value, str):
        return value or ""
    return ", ".join(value)


def _choice_ids(field: FieldDef) -> dict[str, str]:
    """Every way a person writes one of the field's choices (its value, its label in each
    language; any case) -> the value stored."""
    values = [c.value if isinstance(c, ChoiceDef) else str(c) for c in field.choices]
    out: dict[str, str] = {value.lower(): value for value in values}  # a value wins a label
    for choice in field.choices:
        if isinstance(choice, ChoiceDef):
            labels = choice.label.values() if isinstance(choice.label, dict) else [choice.label]
            for text in labels:
                if isinstance(text, str):
                    out.setdefault(text.strip().lower(), choice.value)
    return out


def _field_message(field: FieldDef, message: str, text: str, locale: str) -> str:
    shown = f" ('{text[:40]}')" if text and text not in message else ""
    name = label_text(field.label, locale, field.id)
    said = translate(locale, N_("{field}: {message}"), field=name, message=message + shown)
    if field.choices and field.type in ("choice", "multichoice") and text:
        options = ", ".join(
            label_text(c.label, locale, c.value) if isinstance(c, ChoiceDef) else str(c)
            for c in field.choices
        )
        with_choices = N_("{message} (choices: {options})")
        said = translate(locale, with_choices, message=said, options=options)
    return said


def _fraction_to_percent(text: str) -> str:
    try:
        value = Decimal(text.rstrip("%").strip())
    except ArithmeticError:
        return text
    return text if text.endswith("%") or value > 1 else str(value * 100)


def count_records(session: Session, pack_id: str, form_id: str) -> int:
    """How many records a form has (for reports after an import)."""
    from quotaflow.records.models import Record

    query = (
        select(func.count())
        .select_from(Record)
        .where(Record.pack_id == pack_id, Record.form_id == form_id)
    )
    return session.scalar(query) or 0
