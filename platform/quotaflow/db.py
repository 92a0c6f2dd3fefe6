"""Database wiring: declarative base, engines, sessions, and the migration gate."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import JSON, Engine, MetaData, Table, create_engine, event, insert
from sqlalchemy.dialects.postgresql import JSONB
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
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (several workers)
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
    from quotaflow.expressions.sql import local_day_text

    dbapi_conn.create_function("qf_local_day", 2, local_day_text, deterministic=True)


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
    columns = list(rows[0])
    documents = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(f'"{c}"' for c in columns)
    raw = session.connection().connection.driver_connection
    with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row([Jsonb(row[c]) if c in documents else row[c] for c in columns])
