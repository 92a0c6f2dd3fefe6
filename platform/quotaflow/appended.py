"""Insert-only rows written past the unit of work: history, stage moves, audit events.

Nothing reads them back in the transaction that writes them, so a save may hold them and
send them together when it is done (`appended_together`): on PostgreSQL in one round trip
(psycopg's pipeline mode), where one INSERT each cost a round trip and SQLAlchemy's
per-statement work each — together a tenth of a deal save in the worker. Outside such a
block `append_rows` writes at once, as before. Either way the rows commit or roll back with
the transaction they were written in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, exc, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from quotaflow.db import WROTE

PENDING = "quotaflow.appended_rows"  # session.info: rows held until the block ends
Rows = list[Mapping[str, Any]]


def append_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows nothing reads back in this transaction; inside `appended_together` they
    are written when the block ends. Rows of one call give the same columns."""
    if not rows:
        return
    pending: list[tuple[Table, Rows]] | None = session.info.get(PENDING)
    if pending is None:
        _write(session.connection(), [(table, list(rows))])
    else:
        pending.append((table, list(rows)))


@contextmanager
def appended_together(session: Session) -> Iterator[None]:
    """Hold the rows appended inside the block and write them all when it ends without an
    error (an error drops them: its transaction is rolled back). Nested blocks join the
    outer one."""
    if PENDING in session.info:
        yield
        return
    session.info[PENDING] = []
    try:
        yield
    except BaseException:
        session.info.pop(PENDING, None)
        raise
    pending = session.info.pop(PENDING)
    if pending:
        _write(session.connection(), pending)


def _write(connection: Connection, batches: list[tuple[Table, Rows]]) -> None:
    if connection.dialect.name != "postgresql":
        for table, rows in batches:
            connection.execute(insert(table), rows)
        return
    sent = [(_kept_insert(connection, table, tuple(rows[0])), rows) for table, rows in batches]
    if any(kept is None for kept, _rows in sent):  # a column with a Python-side default
        for table, rows in batches:
            connection.execute(insert(table), rows)
        return
    driver = connection.connection.driver_connection
    assert driver is not None
    statement = ""
    try:
        with driver.pipeline(), driver.cursor() as cursor:
            for kept, rows in sent:
                assert kept is not None
                statement = kept.sql
                for row in rows:
                    cursor.execute(kept.sql, kept.parameters(row))
    except connection.dialect.loaded_dbapi.Error as error:
        # as SQLAlchemy would have raised it, so callers and error pages see one kind
        raise exc.DBAPIError.instance(
            statement, None, error, connection.dialect.loaded_dbapi.Error
        ) from error
    connection.info[WROTE] = True


@dataclass(frozen=True)
class _KeptInsert:
    """An INSERT as SQLAlchemy compiles it for psycopg, with its columns' bind processors."""

    sql: str
    processors: tuple[tuple[str, Callable[[Any], Any] | None], ...]

    def parameters(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {c: (row[c] if p is None else p(row[c])) for c, p in self.processors}


_KEPT: dict[tuple[Any, ...], _KeptInsert | None] = {}


def _kept_insert(connection: Connection, table: Table, columns: tuple[str, ...]) -> Any:
    """The INSERT of these columns as the driver gets it; None when SQLAlchemy would add
    parameters of its own (a Python-side default), which only its own execution fills in."""
    dialect = connection.dialect
    key = (table, columns, dialect.name, dialect.driver)
    if key not in _KEPT:
        compiled = insert(table).compile(dialect=dialect, column_keys=list(columns))
        if set(compiled.params) != set(columns):
            _KEPT[key] = None
        else:
            processors = tuple(
                (c, table.c[c].type.dialect_impl(dialect).bind_processor(dialect)) for c in columns
            )
            _KEPT[key] = _KeptInsert(compiled.string, processors)
    return _KEPT[key]
