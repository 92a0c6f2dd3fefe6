"""What every page reads and almost never changes, kept per process and checked per request.

Every page needs the signed-in user, the installed packs' active versions and the rep's team;
reading them from the database on each request was a third of a form's server time. They
change when an admin edits people, teams or memberships, or installs a pack — rarely, next to
the records reps save all day. Every such change inserts a row in `config_changes` in the
same transaction (stamps.py catches ORM flushes and bulk statements on CONFIG_TABLES, as it
does for `data_changes`, the KPI inputs' stamp). The newest row is the config stamp: a
request reads it once, before anything it vouches for, and takes what it needs from this process's
memo while the stamp it read is the memo's; a newer stamp empties the memo. So a change made
through any worker is seen by every worker on its next request, and nothing is served stale.

The stamp is (id, at): a database dropped and created again under the same URL (tests do)
restarts ids, but not the clock. A transaction that changed the set-up itself bypasses the
memo until it ends (what it sees may yet be rolled back).
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Hashable
from datetime import datetime
from threading import Lock
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

from sqlalchemy import DateTime, Integer, event
from sqlalchemy.orm import Mapped, Session, mapped_column

from quotaflow import stamps
from quotaflow.db import Base
from quotaflow.timeutil import utcnow

T = TypeVar("T")
CONFIG_TABLES = frozenset({"users", "teams", "memberships", "packs", "pack_versions"})
MAX_ENTRIES = 4096  # users x days of team look-ups, mostly; past it the memo starts over
STAMP = "quotaflow.config_stamp"  # session.info: the stamp this transaction read
CHANGED = "quotaflow.config_changed"  # session.info: this transaction changed the set-up
StampRead = tuple[int, Any]  # (id, at) of the newest row
NEWEST = "SELECT id, at FROM config_changes ORDER BY id DESC LIMIT 1"
STAMP_STATEMENT = b"qf_config_stamp"  # NEWEST, prepared on the reader's connection
ASKED = "quotaflow.config_stamp_asked"  # session.info: this request's stamp, asked ahead


class ConfigChange(Base):
    """One change to people, teams, memberships or installed packs."""

    __tablename__ = "config_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class _Memo:
    def __init__(self) -> None:
        self.stamp: StampRead | None = None
        self.values: dict[Hashable, Any] = {}


_MEMOS: dict[str, _Memo] = {}  # one per database URL (tests use several in one process)
_LOCK = Lock()


def config_stamp(session: Session) -> StampRead | None:
    """The config stamp this transaction sees, or None when it changed the set-up itself."""
    if CONFIG_STAMP.changed_in(session):
        return None
    seen: tuple[StampRead, str] | None = session.info.get(STAMP)
    if seen is None:
        seen = session.info[STAMP] = (_read_stamp(session), _database(session))
    return seen[0]


def stamp_of(session: Session) -> Hashable | None:
    """What a cache outside the memo keeps its entries under: the config stamp with the
    database it was read from; None when this transaction changed the set-up itself."""
    stamp = config_stamp(session)
    return None if stamp is None else (stamp, session.info[STAMP][1])


def _read_stamp(session: Session) -> StampRead:
    # Outside the session's transaction: a page served from the memo then opens no
    # transaction at all (on PostgreSQL a BEGIN and a COMMIT, two round trips, saved). Read
    # before anything it vouches for, so those reads are as new. Sound because every later
    # read sees data committed at least as late: both databases run at read committed here
    # (PostgreSQL's default; pysqlite reads outside a transaction).
    bind = session.get_bind()
    if bind.dialect.name == "sqlite":  # pysqlite opens no transaction to read anyway
        row = session.connection().exec_driver_sql(NEWEST).first()
    else:
        row = _reader(bind).newest(session.info.pop(ASKED, None))
    return (row[0], str(row[1])) if row else (0, None)


def ask_ahead(engine: Any) -> object | None:
    """Send the stamp's query now, as a request starts, and take its answer when the request
    first needs it (give what this returns to its session: `session.info[ASKED]`). The
    request's own work (its cookie, its route, its form) then runs while the server answers,
    instead of the worker sleeping on the answer and queueing behind the load for the CPU
    again. Asked after the request arrived, the answer is as new as a read at first need
    would vouch for: every change committed before the request is in it. None on SQLite."""
    if engine.dialect.name != "postgresql":
        return None
    return _reader(engine).ask()


class _StampReader:
    """A PostgreSQL connection of the engine's own, outside its pool, in autocommit, that
    reads the stamp and nothing else (one a process: threads take turns on it). Borrowing a
    pooled connection and switching it to autocommit and back cost a fifth of a
    served-from-memo page's time, in Python alone."""

    def __init__(self, engine: Any) -> None:
        self._engine = weakref.ref(engine)  # the engine holds its reader, not the reverse
        self._errors = engine.dialect.loaded_dbapi.OperationalError
        self._lock = Lock()
        self._conn: Any = None
        self._pid = 0
        self._asked: object | None = None  # the ticket of the query in flight, if one is
        event.listen(engine, "engine_disposed", self._on_dispose)

    def ask(self) -> object | None:
        """Send the query; its ticket, or None when it could not be sent. Asking is only a
        head start, made before the request's error handling is in place: whatever goes wrong
        leaves the read to the request itself, which reports it as any read would."""
        ticket = object()
        with self._lock:
            try:
                self._settle()
                self._send()
            except Exception:
                self._close()
                return None
            self._asked = ticket
        return ticket

    def newest(self, ticket: object | None = None) -> tuple[int, str] | None:
        """The newest stamp: the answer to `ticket`'s query when it is the one in flight, else
        read now (a thread may have taken the answer meant for another's ticket: that one
        reads again, never an answer asked before its request began)."""
        with self._lock:
            try:
                if ticket is not None and self._asked is ticket and self._ours():
                    self._asked = None
                    return self._answer()
                self._settle()
                return self._newest()
            except self._errors:
                # Reading the stamp changes nothing, so one more try on a new connection is
                # safe; its server may have restarted while it sat idle.
                self._close()
                return self._newest()

    def _settle(self) -> None:
        # a query asked ahead whose answer nobody took (a page that needed no stamp, or
        # another thread's): read and dropped, so the next answer on the connection is ours
        if self._asked is not None:
            self._asked = None
            if self._ours():
                self._answer()

    def _ours(self) -> bool:
        return self._conn is not None and self._pid == os.getpid() and not self._conn.closed

    def _newest(self) -> tuple[int, str] | None:
        self._send()
        return self._answer()

    def _send(self) -> None:
        from psycopg import generators

        conn = self._connection()
        conn.pgconn.send_query_prepared(STAMP_STATEMENT, None)
        conn.wait(generators.send(conn.pgconn))

    def _answer(self) -> tuple[int, str] | None:
        # Straight to libpq, its time as the server writes it: psycopg's cursor, query
        # conversion and row loading were most of a kept page's stamp read in the worker.
        from psycopg import errors, generators, pq

        conn = self._conn
        results = conn.wait(generators.fetch_many(conn.pgconn))
        result = results[-1]
        if result.status != pq.ExecStatus.TUPLES_OK:
            raise errors.error_from_result(result, encoding=conn.info.encoding)
        if result.ntuples == 0:
            return None
        return int(result.get_value(0, 0)), result.get_value(0, 1).decode()

    def newest_backend_pid(self) -> int:
        """The server process the stamp is read on (for tests and diagnostics)."""
        self.newest()
        with self._lock:
            return int(self._connection().info.backend_pid)

    def _connection(self) -> Any:
        if self._conn is not None and (self._pid != os.getpid() or self._conn.closed):
            self._conn = None  # a forked child never touches its parent's socket
        if self._conn is None:
            # Opened by the dialect, not taken from the pool: a forked child's pool may hand
            # out a connection its parent still holds.
            dialect = self._engine().dialect
            cargs, cparams = dialect.create_connect_args(self._engine().url)
            self._conn = dialect.connect(
                *cargs, **{**cparams, "autocommit": True, "prepare_threshold": None}
            )
            self._conn.execute(f"PREPARE {STAMP_STATEMENT.decode()} AS {NEWEST}")
            self._pid = os.getpid()
        return self._conn

    def _close(self) -> None:
        self._asked = None
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()

    def _on_dispose(self, _engine: Any) -> None:
        with self._lock:
            self._close()


_READERS: WeakKeyDictionary[Any, _StampReader] = WeakKeyDictionary()


def _reader(bind: Any) -> _StampReader:
    engine = getattr(bind, "engine", bind)
    found = _READERS.get(engine)
    if found is None:
        with _LOCK:
            found = _READERS.get(engine) or _READERS.setdefault(engine, _StampReader(engine))
    return found


_DATABASES: WeakKeyDictionary[Any, str] = WeakKeyDictionary()


def _database(session: Session) -> str:
    engine: Any = session.get_bind().engine
    found = _DATABASES.get(engine)
    if found is None:
        found = _DATABASES[engine] = engine.url.render_as_string(hide_password=False)
    return found


def remembered(session: Session, key: Hashable, compute: Callable[[], T]) -> T:
    """`compute()`, kept for this process while the set-up does not change. What it returns
    is shared between requests and threads: plain values or frozen objects only."""
    stamp = config_stamp(session)
    if stamp is None:
        return compute()
    database = session.info[STAMP][1]
    with _LOCK:
        memo = _MEMOS.setdefault(database, _Memo())
        if memo.stamp == stamp and key in memo.values:
            return memo.values[key]  # type: ignore[no-any-return]
    value = compute()
    if CONFIG_STAMP.changed_in(session):  # computing flushed this transaction's own changes
        return value
    with _LOCK:
        if memo.stamp != stamp:
            if memo.stamp is not None and _order(stamp) < _order(memo.stamp):
                return value  # this transaction reads an older snapshot: do not go back
            memo.stamp, memo.values = stamp, {}
        if len(memo.values) >= MAX_ENTRIES:
            memo.values.clear()
        memo.values[key] = value
    return value


def _order(stamp: StampRead) -> tuple[str, int]:
    # by time first: a database made again under the same URL counts ids from 1 again
    return (stamp[1] or "", stamp[0])


def _set_up() -> tuple[type, ...]:
    from quotaflow.org.models import Membership, Team, User
    from quotaflow.packs.models import Pack, PackVersion

    return (User, Team, Membership, Pack, PackVersion)


CONFIG_STAMP = stamps.watch(stamps.Stamp(ConfigChange, CHANGED, _set_up, CONFIG_TABLES))
bump = CONFIG_STAMP.bump  # record a change to the set-up (inside the changing transaction)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget_stamp_read(session: Session) -> None:
    session.info.pop(STAMP, None)  # the next transaction may see a newer one
