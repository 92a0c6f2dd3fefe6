"""KPI results cached per process, validated against the database on every call.

Every change to the figures' inputs — a record created, edited, moved, deleted or restored,
an import, a team or membership change — inserts a row in `data_changes` in the same
transaction (an insert, not an update of one counter, so concurrent writers never queue on a
hot row). The newest id is the data stamp. A result is kept under the pack's content hash,
the KPIs, the grouping, the period, `today` (formulas may use TODAY()) and the stamp read
when it was computed; each call reads the stamp again (one indexed MAX), so a change made by
any worker makes every older entry unreachable at once, and several gunicorn workers never
serve a stale figure. A session holding uncommitted input changes bypasses the cache (what
it sees may yet be rolled back). Correct before clever: any record change invalidates every
KPI; at most MAX_ENTRIES results are kept per process. Old stamps are pruned as it goes.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from datetime import datetime
from threading import Lock
from typing import Any

from sqlalchemy import DateTime, Integer, delete, event, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from quotaflow.db import Base
from quotaflow.timeutil import utcnow

MAX_ENTRIES = 512
DIRTY = "quotaflow.kpi_inputs_changed"  # session.info flag for this transaction
_CACHE: OrderedDict[str, Any] = OrderedDict()
_LOCK = Lock()


class DataChange(Base):
    """One change to what KPIs are computed from; the newest id is the data stamp."""

    __tablename__ = "data_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def bump(session: Session) -> None:
    """Make every cached figure stale (call inside the transaction that changes inputs)."""
    session.add(DataChange())
    session.info[DIRTY] = True


def stamp_for(session: Session) -> int | None:
    """The data stamp, or None when this session has uncommitted input changes."""
    if session.info.get(DIRTY):
        return None
    return session.scalar(select(func.max(DataChange.id))) or 0


def cache_key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, sort_keys=True).encode()).hexdigest()


def get(key: str) -> Any | None:
    with _LOCK:
        found = _CACHE.get(key)
        if found is not None:
            _CACHE.move_to_end(key)
        return found


def put(key: str, value: Any) -> None:
    with _LOCK:
        _CACHE[key] = value
        _CACHE.move_to_end(key)
        while len(_CACHE) > MAX_ENTRIES:
            _CACHE.popitem(last=False)


def clear() -> None:
    with _LOCK:
        _CACHE.clear()


@event.listens_for(Session, "before_flush")
def _bump_on_input_changes(session: Session, _context: Any, _instances: Any) -> None:
    from quotaflow.org.models import Membership, Team
    from quotaflow.records.models import Record

    touched = (*session.new, *session.dirty, *session.deleted)
    if any(isinstance(obj, Record | Membership | Team) for obj in touched):
        bump(session)


INPUT_TABLES = {"records", "memberships", "teams"}


@event.listens_for(Session, "do_orm_execute")
def _bump_on_bulk_statements(state: Any) -> None:
    """INSERT/UPDATE/DELETE statements run through a session (bulk imports, stage renames at
    install, a test's cleanup) bypass the flush: catch them by their target table."""
    if state.is_insert or state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        if getattr(table, "name", None) in INPUT_TABLES:
            bump(state.session)


PRUNE_EVERY = 500  # rows; only the newest matters, the rest is history nobody reads


@event.listens_for(Session, "after_flush")
def _prune_old_stamps(session: Session, _context: Any) -> None:
    """Every PRUNE_EVERY-th stamp deletes the ones before it: MAX(id) never changes by it,
    and the table stays a few hundred rows instead of one per write since the install."""
    for obj in session.new:
        if isinstance(obj, DataChange) and obj.id is not None and obj.id % PRUNE_EVERY == 0:
            session.connection().execute(delete(DataChange).where(DataChange.id < obj.id))


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_over(session: Session) -> None:
    session.info.pop(DIRTY, None)
