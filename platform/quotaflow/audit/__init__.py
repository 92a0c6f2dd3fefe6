"""Audit log: every change anyone makes, with who and when."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from quotaflow.audit.models import AuditEvent


def record_event(
    session: Session,
    *,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the session's transaction; it commits or rolls back with the change."""
    event = AuditEvent(
        actor=actor,
        action=action,
        object_type=object_type,
        object_id=object_id,
        details=details or {},
    )
    session.add(event)
    return event
