"""Audit log: every change anyone makes, with who and when."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from quotaflow.appended import append_rows
from quotaflow.audit.models import AuditEvent
from quotaflow.timeutil import utcnow

AUDIT_LOG = cast(Table, AuditEvent.__table__)


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Write an audit event in the session's transaction; it commits or rolls back with the
    change. An insert-only row, written past the unit of work (a save's costliest part), so
    it must not refer to objects the session has not flushed yet."""
    row = {
        "at": utcnow(),
        "actor": actor,
        "action": action,
        "object_type": object_type,
        "object_id": object_id,
        "details": details or {},
    }
    append_rows(session, AUDIT_LOG, [row])
