"""Reading the audit log: the newest events first, narrowed by what, who and which object."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quotaflow.audit.models import AuditEvent

PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """What the reader asked for: an action, who did it, text in the object's id, a page."""

    action: str = ""
    actor: str = ""
    about: str = ""
    page: int = 1


@dataclass(frozen=True, slots=True)
class AuditPage:
    events: list[AuditEvent]
    total: int
    page: int
    pages: int


def audit_page(session: Session, query: AuditQuery) -> AuditPage:
    """One page of events matching `query`, newest first (ties: the later-written first)."""
    wanted = select(AuditEvent)
    if query.action:
        wanted = wanted.where(AuditEvent.action == query.action)
    if query.actor:
        wanted = wanted.where(func.lower(AuditEvent.actor) == query.actor.strip().lower())
    if query.about:
        wanted = wanted.where(AuditEvent.object_id.contains(query.about.strip(), autoescape=True))
    total = session.scalar(select(func.count()).select_from(wanted.subquery())) or 0
    pages = max(1, -(-total // PER_PAGE))
    page = min(max(1, query.page), pages)
    events = session.scalars(
        wanted.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
        .limit(PER_PAGE)
        .offset((page - 1) * PER_PAGE)
    )
    return AuditPage(list(events), total, page, pages)


def audit_actions(session: Session) -> list[str]:
    """Every action the log holds, for the filter."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
