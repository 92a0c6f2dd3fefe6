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

from sqlalchemy import DateTime, Integer, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from quotaflow import stamps
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


def _inputs() -> tuple[type, ...]:
    from quotaflow.org.models import Membership, Team
    from quotaflow.records.models import Record

    return (Record, Membership, Team)


INPUT_TABLES = frozenset({"records", "memberships", "teams"})
DATA_STAMP = stamps.watch(stamps.Stamp(DataChange, DIRTY, _inputs, INPUT_TABLES))
bump = DATA_STAMP.bump  # make every cached figure stale (inside the changing transaction)


def stamp_for(session: Session) -> int | None:
    """The data stamp, or None when this session has uncommitted input changes."""
    if DATA_STAMP.changed_in(session):
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
