"""Database wiring: declarative base, engines, sessions, and the migration gate."""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Connection, Engine, MetaData, Table, create_engine, event, insert
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from quotaflow.errors import QuotaflowError

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# Stable constraint names so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

BUSY_TIMEOUT_MS = 5000  # SQLite: how long a writer waits for its turn before giving up

# JSON documents: JSONB on PostgreSQL (indexable, compact), JSON text elsewhere.
JsonDoc = JSON().with_variant(JSONB(), "postgresql")


class Base(DeclarativeBase):
    """Declarative base of every Quotaflow table."""

    metadata = MetaData(naming_convention=NAMING)


class DatabaseNotMigrated(QuotaflowError):
    """The database schema is behind the code; the message says which command fixes it."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the per-dialect settings Quotaflow relies on."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if path and path != ":memory:" and "?" not in path:
            connect_args = {**kwargs.pop("connect_args", {}), "factory": QueuedWriterConnection}
            kwargs["connect_args"] = connect_args
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "before_cursor_execute", _queue_sqlite_writer)
    else:
        # psycopg's own statement preparing is off: on a rollback it sends DEALLOCATE ALL,
        # which would take the statements together.py prepares (and knows as prepared) with
        # it; the few hot statements are prepared there, by name, for the connection's life
        connect_args = {"prepare_threshold": None, **kwargs.pop("connect_args", {})}
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine.pool, "checkout", _ping_if_idle)
        event.listen(engine.pool, "checkin", _note_checkin)
        from quotaflow import together  # (it builds on this module)

        together.watch(engine)
    event.listen(engine, "before_cursor_execute", _note_writes)
    event.listen(engine, "commit", _transaction_ended)
    event.listen(engine, "rollback", _transaction_ended)
    return engine


# A pooled PostgreSQL connection is checked before use when it has been idle this long (the
# server may have restarted meanwhile); one in steady use is not: pool_pre_ping added a round
# trip to every request, two where a page served from the memo needs one. A connection that
# died while in use fails its request once, and SQLAlchemy then replaces the whole pool.
PING_AFTER_IDLE_S = 10.0
CHECKED_IN = "quotaflow.checked_in"


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info[CHECKED_IN] = time.monotonic()
        record.info.pop(HELD, None)  # its transaction was rolled back by the pool


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get(CHECKED_IN)
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return
    try:
        with dbapi_conn.cursor() as cursor:
            autocommit, dbapi_conn.autocommit = dbapi_conn.autocommit, True
            try:
                cursor.execute(";")
            finally:
                dbapi_conn.autocommit = autocommit
    except Exception as exc:  # the pool retries with a new connection
        raise DisconnectionError(str(exc)) from exc


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (several workers)
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cur.close()
    from quotaflow.expressions.sql import local_day_text

    dbapi_conn.create_function("qf_local_day", 2, local_day_text, deterministic=True)


class QueuedWriterConnection(sqlite3.Connection):
    """A SQLite connection that waits for its turn to write on a file lock beside the
    database (`<file>-writers`), taken before the transaction's first write and given back
    when it ends.

    SQLite lets one writer at a time in; a second one polls with sleeps of 1, 2, 5, 10 ...
    ms (its busy handler), so under a few concurrent saves most of a request's time was spent
    asleep after the lock was already free. Waiting here hands the turn over within a fraction
    of a millisecond. After busy_timeout it stops waiting and lets SQLite decide, as before,
    so a mistake (two writing sessions in one thread) ends in SQLite's "database is locked",
    never a hang.
    """

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._writers = os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o600)
        self._writing = False

    def wait_to_write(self) -> None:
        if self._writing:
            return
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            try:
                fcntl.flock(self._writers, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._writing = True
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.0002)

    def _done_writing(self) -> None:
        if self._writing:
            self._writing = False
            fcntl.flock(self._writers, fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._done_writing()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._done_writing()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._done_writing()
            os.close(self._writers)


# The statements before which pysqlite opens a transaction (and SQLite takes its write lock).
_WRITES = re.compile(r"\s*\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
_WITH = re.compile(r"\s*WITH\b", re.IGNORECASE)  # a CTE may lead into INSERT ... SELECT
_LOCKS = re.compile(r"\s*(LOCK|COPY|CREATE|DROP|ALTER|TRUNCATE|WITH)\b", re.IGNORECASE)


def _queue_sqlite_writer(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if _WRITES.match(statement) or (_WITH.match(statement) and _WRITES.search(statement)):
        wait_to_write(conn)


def wait_to_write(conn: Connection) -> None:
    """Take this SQLite connection's turn among writers before its transaction's first write
    (statements sent past SQLAlchemy call this themselves); nothing elsewhere."""
    raw = conn.connection.dbapi_connection
    if isinstance(raw, QueuedWriterConnection) and not raw.in_transaction:
        raw.wait_to_write()


WROTE = "quotaflow.wrote"  # connection.info: this transaction has run a write


def execute_on_driver(
    connection: Connection,
    statement: str,
    parameters: Any,
    *,
    many: bool = False,
    cursor_class: Any = None,
    fetch: bool = False,
) -> Any:
    """Run a write on the connection's driver connection, past SQLAlchemy's per-statement
    work (for the few hot statements kept as the driver's SQL): in the writers' queue on
    SQLite, the transaction marked as written, and a driver error raised as SQLAlchemy
    raises it (IntegrityError, OperationalError ...; a lost connection invalidated).
    With `fetch`, the first row the statement returns (RETURNING); else None."""
    send_held(connection)
    driver: Any = connection.connection.driver_connection
    wait_to_write(connection)
    cursor = driver.cursor() if cursor_class is None else cursor_class(driver)
    try:
        with as_sqlalchemy_errors(connection, statement, parameters, cursor):
            if many:
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters)
            row = cursor.fetchone() if fetch else None
    finally:
        cursor.close()
    connection.info[WROTE] = True
    return row


@contextmanager
def as_sqlalchemy_errors(
    connection: Connection, statement: str | bytes, parameters: Any, cursor: Any = None
) -> Iterator[None]:
    """A driver error raised as SQLAlchemy raises it, a lost connection invalidated (a statement
    given as bytes is decoded for the message only then)."""
    dbapi = connection.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as error:
        driver = connection.connection.driver_connection
        lost = connection.dialect.is_disconnect(error, driver, cursor)
        if lost:
            connection.invalidate(error)
        if isinstance(statement, bytes):
            statement = statement.decode("utf-8", "replace")
        raise DBAPIError.instance(
            statement, parameters, error, dbapi.Error, connection_invalidated=lost
        ) from error


HELD = "quotaflow.held_statements"  # connection.info: statements held to go with the next


def send_held(connection: Connection) -> None:
    """Send the statements held on this PostgreSQL connection (together.hold) before one
    that goes to the driver another way."""
    if connection.info.get(HELD):
        from quotaflow.together import send_together

        send_together(connection)


def _note_writes(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    if not conn.info.get(WROTE) and (_WRITES.match(statement) or _LOCKS.match(statement)):
        conn.info[WROTE] = True


def _transaction_ended(conn: Any, *_args: Any) -> None:
    if not conn.invalidated:  # a lost connection has no info left to clear
        conn.info.pop(WROTE, None)


def read_only(session: Session) -> bool:
    """True when the session's open transaction has only read: nothing pending, nothing
    written, no error."""
    transaction = session.get_transaction()
    if transaction is None or not transaction.is_active:
        return False
    if session.new or session.deleted or any(session.is_modified(o) for o in session.dirty):
        return False
    return not session.connection().info.get(WROTE)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (views render after saving)."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits on success and rolls back whole on any error."""
    with factory() as session, session.begin():
        yield session


# --- migrations ------------------------------------------------------------------------------


def alembic_config(url: str) -> Config:
    """Alembic configured from code: no alembic.ini to find, works from a wheel."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Bring the database at `url` to `revision` (creating the SQLite file if needed)."""
    engine = make_engine(url)
    try:
        cfg = alembic_config(url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest migrations the code knows (several branches are joined with '+')."""
    return "+".join(sorted(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads()))


def current_revision(engine: Engine) -> str | None:
    """The migrations the database is at, or None for an empty database."""
    with engine.connect() as conn:
        heads = MigrationContext.configure(conn).get_current_heads()
    return "+".join(sorted(heads)) if heads else None


def ensure_migrated(engine: Engine) -> None:
    """Refuse to run on a database that is empty or behind the code."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    where = engine.url.render_as_string(hide_password=True)
    if current is None:
        raise DatabaseNotMigrated(
            f"The database at {where} has no Quotaflow tables yet. Run: quotaflow db upgrade"
        )
    raise DatabaseNotMigrated(
        f"The database at {where} is at migration {current}, the code needs {head}. "
        "Run: quotaflow db upgrade"
    )


def open_sessions(url: str) -> sessionmaker[Session]:
    """Sessions on a migrated database (for the CLI); refuses an un-migrated one."""
    engine = make_engine(url)
    ensure_migrated(engine)
    return make_sessionmaker(engine)


def insert_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Many rows into one table in the session's transaction: COPY on PostgreSQL (several
    times faster than INSERT for imports), one executemany elsewhere.

    Every row has the same keys and gives every column that has no server-side default:
    COPY applies no Python-side defaults. It bypasses SQLAlchemy's events: callers writing
    records keep the KPI cache and roll-ups in step themselves (records.services does).
    """
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(table), list(rows))
        return
    from psycopg.types.json import Jsonb

    session.flush()  # rows the COPY refers to (a new user, a team) must be in the database
    send_held(session.connection())
    columns = list(rows[0])
    documents = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Jsonb(row[c]) if c in documents else row[c] for c in columns])
