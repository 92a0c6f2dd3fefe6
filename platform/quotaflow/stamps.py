"""Change stamps: a table that gets one row in every transaction changing some kind of data.

A cache keeps an answer with the newest id it read from the table; a newer id means the data
changed, through any worker. Rows are inserted, never updated, so concurrent writers never
queue on one hot row, and the table is pruned as it goes. Two stamps use this: `data_changes`
(what KPIs are computed from, kpis/cache.py) and `config_changes` (people, teams, memberships
and installed packs, config_cache.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, event
from sqlalchemy.orm import Session

PRUNE_EVERY = 500  # rows; only the newest matters, the rest is history nobody reads


@dataclass(frozen=True)
class Stamp:
    """The table (`model`, with an integer `id`), the session.info `flag` that says this
    transaction changed what it watches, the ORM classes whose rows it watches (`kinds`,
    given lazily: models import in any order) and the tables whose bulk statements it
    watches."""

    model: type[Any]
    flag: str
    kinds: Callable[[], tuple[type, ...]]
    tables: frozenset[str]

    def bump(self, session: Session) -> None:
        """Record a change (call inside the transaction that makes it): one row a transaction."""
        if not session.info.get(self.flag):
            session.add(self.model())
        session.info[self.flag] = True

    def bumped(self, session: Session, row_id: int) -> None:
        """Note that this transaction inserted the stamp's row `row_id` itself (past the unit
        of work, with the change it stamps): the flag set, the table pruned as a flush would."""
        session.info[self.flag] = True
        self.prune(session, row_id)

    def prune(self, session: Session, row_id: int) -> None:
        """Every PRUNE_EVERY-th row drops the rows before it. MAX(id) never changes by it;
        the table stays a few hundred rows."""
        if row_id % PRUNE_EVERY == 0:
            session.connection().execute(delete(self.model).where(self.model.id < row_id))

    def changed_in(self, session: Session) -> bool:
        """True when this transaction has changed what the stamp watches (not yet committed)."""
        return bool(session.info.get(self.flag))


def watch(stamp: Stamp) -> Stamp:
    """Keep `stamp` with session events: bump on flushes and bulk statements that touch what it
    watches, prune every PRUNE_EVERY-th row, forget the flag when the transaction ends."""

    @event.listens_for(Session, "before_flush")
    def _bump_on_flush(session: Session, _context: Any, _instances: Any) -> None:
        kinds = stamp.kinds()
        if any(isinstance(obj, kinds) for obj in (*session.new, *session.deleted)) or any(
            isinstance(obj, kinds) and session.is_modified(obj) for obj in session.dirty
        ):
            stamp.bump(session)

    @event.listens_for(Session, "do_orm_execute")
    def _bump_on_bulk_statements(state: Any) -> None:
        # INSERT/UPDATE/DELETE statements run through a session (imports, stage renames at
        # install, a test's cleanup) pass by the flush: catch them by their target table
        if state.is_insert or state.is_update or state.is_delete:
            table = getattr(state.statement, "table", None)
            if getattr(table, "name", None) in stamp.tables:
                stamp.bump(state.session)

    @event.listens_for(Session, "after_flush")
    def _prune(session: Session, _context: Any) -> None:
        for obj in session.new:
            if isinstance(obj, stamp.model) and obj.id is not None:
                stamp.prune(session, obj.id)

    @event.listens_for(Session, "after_commit")
    @event.listens_for(Session, "after_rollback")
    def _transaction_over(session: Session) -> None:
        session.info.pop(stamp.flag, None)

    return stamp
