"""Record services: create with history; every write goes through here."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from quotaflow.records.models import Record, RecordHistory
from quotaflow.timeutil import utcnow


def json_value(value: Any) -> Any:
    """A field value as stored in the JSON document (Decimal as string keeps the cents exact)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def create_record(
    session: Session, *, pack_id: str, pack_version_id: int, form_id: str, owner_id: int,
    team_id: int | None, values: dict[str, Any], actor_id: int | None,
    stage: str | None = None, amount: Decimal | None = None, record_date: date | None = None,
    created_at: datetime | None = None, closed_at: datetime | None = None,
) -> Record:
    """Insert a record pinned to a pack version, with its `create` history entry."""
    now = created_at or utcnow()
    record = Record(
        pack_id=pack_id, pack_version_id=pack_version_id, form_id=form_id, owner_id=owner_id,
        team_id=team_id, stage=stage, values={k: json_value(v) for k, v in values.items()},
        record_date=record_date, created_at=now, updated_at=now, closed_at=closed_at,
    )
    record.amount = amount
    session.add(record)
    session.flush()
    session.add(RecordHistory(
        record_id=record.id, version_no=record.version_no, action="create",
        changed_by=actor_id, changed_at=now,
        changes={k: [None, v] for k, v in record.values.items()},
    ))
    return record
