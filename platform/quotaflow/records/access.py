"""Who sees which records: the one place row-level permissions are decided.

- an admin (User.is_admin) sees every record;
- everyone sees the records they own;
- a manager sees records of the teams they manage and all their sub-teams, by the membership
  valid on the record's date (Record.record_date, else the day it was created): a manager who
  took over a team in June sees its records from June on, the previous manager those before.

Every list, count, export and KPI that shows records to a person starts from
`visible_records`; views never filter by owner or team themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from sqlalchemy import Date, Select, cast, exists, false, func, literal, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from quotaflow.org.models import Membership, Team
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES, Capability, Person, roles_with
from quotaflow.records.models import Record


def visible_records(
    session: Session,
    user: Person,
    on: date | None = None,
    *,
    include_deleted: bool = False,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
) -> Select[Record]:
    """SELECT of the records `user` may see; add filters, ordering and paging to it.

    `on=None` judges a manager's memberships at each record's own date; `on=<day>` judges
    them on that one day instead (e.g. "my team as it is today" including its older records).
    Soft-deleted records are left out unless `include_deleted`.
    """
    query = select(Record)
    if not include_deleted:
        query = query.where(Record.deleted_at.is_(None))
    if not getattr(user, "is_active", True):
        return query.where(false())
    if user.is_admin:
        return query
    return query.where(_visible_to(session, user, on, role_capabilities))


def can_view(
    session: Session,
    user: Person,
    record: Record,
    *,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
) -> bool:
    """True when `user` may see the record (deleted records: only where deleted ones are shown)."""
    query = visible_records(
        session, user, include_deleted=True, role_capabilities=role_capabilities
    ).where(Record.id == record.id)
    return bool(session.scalar(select(exists(query))))


def can_edit(
    session: Session,
    user: Person,
    record: Record,
    *,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
) -> bool:
    """True when `user` may change the record: whoever may see it, while it is not deleted."""
    if record.deleted_at is not None:
        return False
    query = visible_records(session, user, role_capabilities=role_capabilities).where(
        Record.id == record.id
    )
    return bool(session.scalar(select(exists(query))))


def managed_teams(
    session: Session,
    user_id: int,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
) -> Any:
    """Recursive CTE (team_id, valid_from, valid_to): every team under a manager membership.

    UNION (not UNION ALL) so that even a damaged tree with a cycle terminates.
    """
    manager_roles = roles_with(Capability.MANAGER, role_capabilities)
    top = (
        select(Membership.team_id, Membership.valid_from, Membership.valid_to)
        .where(Membership.user_id == user_id, Membership.role.in_(manager_roles))
        .cte(f"managed_teams_{user_id}", recursive=True)
    )
    below = select(Team.id, top.c.valid_from, top.c.valid_to).join(
        top, Team.parent_id == top.c.team_id
    )
    return top.union(below)


def _visible_to(
    session: Session, user: Person, on: date | None, role_capabilities: Mapping[str, str]
) -> ColumnElement[bool]:
    manager_roles = roles_with(Capability.MANAGER, role_capabilities)
    manages_any = session.scalar(
        select(Membership.id)
        .where(Membership.user_id == user.id, Membership.role.in_(manager_roles))
        .limit(1)
    )
    if manages_any is None:
        # a rep (never a manager of anything): their own records, found by the (form, owner)
        # index — the EXISTS below would make every list read the whole form
        return Record.owner_id == user.id
    managed = managed_teams(session, user.id, role_capabilities)
    day = literal(on, Date) if on is not None else record_day(session)
    manages = exists(
        select(literal(1)).where(
            managed.c.team_id == Record.team_id,
            managed.c.valid_from <= day,
            or_(managed.c.valid_to.is_(None), managed.c.valid_to > day),
        )
    )
    return or_(Record.owner_id == user.id, manages)


def record_day(session: Session) -> ColumnElement[Any]:
    """The date a record counts on: its own date, else the UTC day it was created."""
    if session.get_bind().dialect.name == "postgresql":
        created: ColumnElement[Any] = cast(func.timezone("UTC", Record.created_at), Date)
    else:  # SQLite keeps UTC timestamps as text; date() takes the day part
        created = func.date(Record.created_at)
    return func.coalesce(Record.record_date, created)
