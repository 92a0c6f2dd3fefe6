"""Record services: create with history; every write goes through here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from quotaflow.appended import append_rows, insert_returning_ids
from quotaflow.db import insert_many
from quotaflow.errors import QuotaflowError
from quotaflow.kpis import cache, rollups
from quotaflow.packs.definitions import FormDef
from quotaflow.records.models import CENT, Record, RecordHistory
from quotaflow.timeutil import utcnow

# Core tables for bulk inserts (the ORM's bulk path fetches RETURNING rows one by one).
RECORDS = cast(Table, Record.__table__)
HISTORY = cast(Table, RecordHistory.__table__)
STAMPS = cast(Table, cache.DataChange.__table__)


def json_value(value: Any) -> Any:
    """A field value as stored in the JSON document (Decimal as string keeps the cents exact)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def create_record(
    session: Session,
    *,
    pack_id: str,
    pack_version_id: int,
    form_id: str,
    owner_id: int,
    team_id: int | None,
    values: dict[str, Any],
    actor_id: int | None,
    stage: str | None = None,
    amount: Decimal | None = None,
    record_date: date | None = None,
    created_at: datetime | None = None,
    closed_at: datetime | None = None,
) -> Record:
    """Insert a record pinned to a pack version, with its `create` history entry."""
    now = created_at or utcnow()
    record = Record(
        pack_id=pack_id,
        pack_version_id=pack_version_id,
        form_id=form_id,
        owner_id=owner_id,
        team_id=team_id,
        stage=stage,
        values={k: json_value(v) for k, v in values.items()},
        record_date=record_date,
        created_at=now,
        updated_at=now,
        closed_at=closed_at,
        deleted_at=None,
        version_no=1,
    )
    record.amount = amount
    if not _inserted_past_unit_of_work(session, record):
        session.add(record)
        session.flush()
    add_history(
        session,
        record,
        "create",
        actor_id,
        {k: [None, v] for k, v in record.values.items()},
        at=now,
    )
    return record


def _inserted_past_unit_of_work(session: Session, record: Record) -> bool:
    """Insert a new record as the flush would, without it: the record's row with the data
    stamp's row (one statement on PostgreSQL), then its roll-up contributions; the record
    joins the session as persistent. False when the row cannot be sent as is (the flush's
    path then). Every column is set: an unset one would be read back by a query later."""
    row = {c.key: getattr(record, c.key) for c in RECORDS.columns if c.key != "id"}
    session.flush()  # what is pending first: its flush may move the data stamp already
    rollups.guard(session)
    stamp = cache.DATA_STAMP
    stamp_row = () if stamp.changed_in(session) else ((STAMPS, {"at": utcnow()}),)
    ids = insert_returning_ids(session, [*stamp_row, (RECORDS, row)])
    if ids is None:
        return False
    if stamp_row:
        stamp.bumped(session, ids[0])
    record.id = ids[-1]
    make_transient_to_detached(record)
    session.add(record)
    rollups.records_added(session, record.pack_id, record.form_id, [record.id])
    return True


@dataclass(frozen=True, slots=True)
class NewRecord:
    """One record to insert in bulk (what create_record takes, minus the shared parts)."""

    owner_id: int
    team_id: int | None
    values: dict[str, Any]
    stage: str | None = None
    amount: Decimal | None = None
    record_date: date | None = None
    created_at: datetime | None = None
    closed_at: datetime | None = None


def create_records(
    session: Session,
    new: Sequence[NewRecord],
    *,
    pack_id: str,
    pack_version_id: int,
    form_id: str,
    actor_id: int | None,
    chunk: int = 2000,
    logged_at: datetime | None = None,
) -> list[int]:
    """Insert many records with their `create` history entries in a few statements (imports);
    returns their ids in order. Same rows as create_record writes, one at a time. The history
    says each was created at its `created_at`, or at `logged_at` when given: an import keeps
    the records' own dates and tells, in their history, when they came in."""
    ids: list[int] = []
    for start in range(0, len(new), chunk):
        part = new[start : start + chunk]
        now = utcnow()
        rows: list[dict[str, Any]] = [
            {
                "pack_id": pack_id,
                "pack_version_id": pack_version_id,
                "form_id": form_id,
                "owner_id": r.owner_id,
                "team_id": r.team_id,
                "stage": r.stage,
                "values": {k: json_value(v) for k, v in r.values.items()},
                "amount_cents": None
                if r.amount is None
                else int((Decimal(r.amount) / CENT).to_integral()),
                "record_date": r.record_date,
                "created_at": r.created_at or now,
                "updated_at": r.created_at or now,
                "closed_at": r.closed_at,
                "version_no": 1,
            }  # fmt: skip
            for r in part
        ]
        part_ids = _insert_returning_ids(session, rows)
        insert_many(
            session,
            HISTORY,
            [
                {
                    "record_id": rid,
                    "version_no": 1,
                    "action": "create",
                    "changed_by": actor_id,
                    "changed_at": logged_at or row["created_at"],
                    "changes": {k: [None, v] for k, v in row["values"].items()},
                }  # fmt: skip
                for rid, row in zip(part_ids, rows, strict=True)
            ],
        )
        ids += part_ids
    if len(ids) >= 5000 and session.get_bind().dialect.name == "postgresql":
        # the planner's statistics predate these rows: without fresh ones it would scan the
        # whole table for each chunk of ids the roll-ups look up (in this transaction, ANALYZE
        # counts its own new rows)
        session.execute(text("ANALYZE records"))
    rollups.records_added(session, pack_id, form_id, ids)
    return ids


def indexed_columns(form: FormDef, values: Mapping[str, Any]) -> tuple[Decimal | None, date | None]:
    """The indexed columns of typed values: amount (a money field called `amount`), and the
    record's date (the first required date field, e.g. a visit's day; else None: the day it is
    created)."""
    amount_field = next((f for f in form.fields if f.id == "amount"), None)
    amount = values.get("amount") if amount_field and amount_field.type == "money" else None
    day = next((values.get(f.id) for f in form.fields if f.type == "date" and f.required), None)
    return (
        amount if isinstance(amount, Decimal) else None,
        day if isinstance(day, date) else None,
    )


class EditConflict(QuotaflowError):
    """Someone else saved the record after it was opened; both versions are kept for the page."""

    def __init__(self, record_id: int, current: dict[str, Any], submitted: dict[str, Any]) -> None:
        super().__init__(
            "This record was changed by someone else while you were editing it. "
            "Your input is kept: compare both versions and save again."
        )
        self.record_id, self.current, self.submitted = record_id, current, submitted


class RecordNotFound(QuotaflowError):
    """No (visible, not deleted) record with this id."""


def changed_values(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, list[Any]]:
    """What a history entry keeps of a change: each field that differs, as [old, new]."""
    return {
        k: [old.get(k), new.get(k)]
        for k in sorted(old.keys() | new.keys())
        if old.get(k) != new.get(k)
    }


def _insert_returning_ids(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert record rows; their ids in the order of the rows."""
    if session.get_bind().dialect.name == "postgresql":
        # Take the ids from the sequence first, then insert them without RETURNING: an
        # ordered RETURNING goes one row per statement there too (~7x slower).
        ids = list(
            session.scalars(
                text(
                    "SELECT nextval(pg_get_serial_sequence('records', 'id')) "
                    "FROM generate_series(1, :n)"
                ),  # fmt: skip
                {"n": len(rows)},
            )
        )
        insert_many(
            session, RECORDS, [{**row, "id": rid} for row, rid in zip(rows, ids, strict=True)]
        )
        cache.bump(session)  # COPY passes by the events that do it for INSERTs
        return ids
    # SQLite (the only other database Quotaflow runs on) answers an ordered RETURNING one
    # row per statement; one executemany is ~10x faster. Its writer holds the database's only
    # write lock from this insert to the commit and numbers new rows max(id) + 1, so the n
    # highest ids are these rows, in order.
    # create_records adds their roll-up contributions itself
    session.execute(insert(RECORDS), rows, execution_options={rollups.HANDLED: True})
    newest = session.scalars(select(RECORDS.c.id).order_by(RECORDS.c.id.desc()).limit(len(rows)))
    return sorted(newest)


def update_record(
    session: Session,
    record_id: int,
    *,
    values: dict[str, Any],
    actor_id: int | None,
    expected_version: int,
    pack_version_id: int | None = None,
    amount: Decimal | None = None,
    record_date: date | None = None,
) -> Record:
    """Save new values if nobody saved since `expected_version`; else raise EditConflict."""
    record = session.get(Record, record_id)
    if record is None or record.deleted_at is not None:
        raise RecordNotFound(f"record {record_id} does not exist or was deleted")
    stored = {k: json_value(v) for k, v in values.items()}
    if record.version_no != expected_version:
        raise EditConflict(record_id, dict(record.values), stored)
    changes = changed_values(record.values, stored)
    if not changes:
        return record
    record.values = stored
    record.amount = amount
    if record_date is not None:  # the form's own date changed (a visit moved to another day)
        record.record_date = record_date
    record.updated_at = utcnow()
    if pack_version_id is not None:
        record.pack_version_id = pack_version_id  # pinned to the version the edit was made with
    try:
        session.flush()  # UPDATE ... WHERE version_no = expected: atomic against a concurrent save
    except StaleDataError:
        session.rollback()
        current = session.get(Record, record_id)
        raise EditConflict(record_id, dict(current.values) if current else {}, stored) from None
    add_history(session, record, "update", actor_id, changes)
    return record


def add_history(
    session: Session,
    record: Record,
    action: str,
    actor_id: int | None,
    changes: dict[str, Any],
    *,
    at: datetime | None = None,
) -> None:
    """One entry of the record's timeline: what changed (old -> new), who, when. Written
    past the unit of work (insert-only rows need none): the record must be flushed."""
    append_rows(
        session,
        HISTORY,
        [
            {
                "record_id": record.id,
                "version_no": record.version_no,
                "action": action,
                "changed_by": actor_id,
                "changed_at": at or utcnow(),
                "changes": changes,
            }
        ],
    )


def delete_record(session: Session, record: Record, *, actor_id: int | None) -> None:
    """Soft delete: hidden everywhere, kept with its history, restorable."""
    record.deleted_at = utcnow()
    session.flush()
    add_history(session, record, "delete", actor_id, {})


def restore_record(session: Session, record: Record, *, actor_id: int | None) -> None:
    """Undo a soft delete."""
    record.deleted_at = None
    session.flush()
    add_history(session, record, "restore", actor_id, {})
