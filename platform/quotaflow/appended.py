"""Insert-only rows written past the unit of work: history, stage moves, audit events.

Nothing reads them back in the transaction that writes them, so a save may hold them and
send them together when it is done (`appended_together`): on PostgreSQL as one statement
(one multi-row INSERT per table, all but one in data-modifying WITH queries), where one
INSERT each cost a round trip and SQLAlchemy's per-statement work each. Outside such a block
`append_rows` writes at once. Either way the rows commit or roll back with the transaction
they were written in.

`insert_returning_ids` is the same past-the-unit-of-work path for a save's one new row that
must be read back (a record and its data stamp row, one statement on PostgreSQL): the ORM's
flush was a fifth of a save's time in the worker."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from quotaflow.db import execute_on_driver
from quotaflow.together import Prepared, hold, numbered, prepared, send_together

PENDING = "quotaflow.appended_rows"  # session.info: rows held until the block ends
Rows = list[Mapping[str, Any]]
MAX_PARAMETERS = 10_000  # in one statement (PostgreSQL takes 65,535); more go one table each
KEEP_UP_TO_ROWS = 16  # statements of at most this many rows are kept, one per shape


def append_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows nothing reads back in this transaction; inside `appended_together` they
    are written when the block ends. Rows of one call give the same columns."""
    if not rows:
        return
    pending: list[tuple[Table, Rows]] | None = session.info.get(PENDING)
    if pending is None:
        _write(session.connection(), [(table, list(rows))])
    else:
        session.connection()  # held in a transaction begun now, whose end ends them
        pending.append((table, list(rows)))


@contextmanager
def appended_together(session: Session) -> Iterator[None]:
    """Hold the rows appended inside the block and write them all when it ends without an
    error (an error drops them: its transaction is rolled back). Nested blocks join the
    outer one. Held rows belong to their transaction: a commit inside the block writes them
    first, a rollback drops them (savepoints are not expected inside a block)."""
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


@event.listens_for(Session, "before_commit")
def _write_before_commit(session: Session) -> None:
    pending = session.info.get(PENDING)
    if pending:
        session.info[PENDING] = []
        _write(session.connection(), pending)


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    if session.info.get(PENDING):
        session.info[PENDING] = []


def _write(connection: Connection, batches: list[tuple[Table, Rows]]) -> None:
    groups: dict[_KeptInsert, Rows] = {}  # one INSERT a table, its rows in order (so its ids)
    for table, rows in batches:
        kept = _kept_insert(connection, table, tuple(sorted(rows[0])))
        if kept is None or any(k.table is table and k is not kept for k in groups):
            # a column left to a Python-side default (SQLAlchemy fills it in), or one table
            # with two sets of columns (two INSERTs whose order one statement would not keep)
            groups.clear()
            break
        groups.setdefault(kept, []).extend(rows)
    if not groups or sum(len(rows) * len(rows[0]) for rows in groups.values()) > MAX_PARAMETERS:
        for table, rows in batches:
            connection.execute(insert(table), rows)
        return
    if connection.dialect.name == "postgresql":
        shape = tuple((kept, len(rows)) for kept, rows in groups.items())
        statement, parameters = _together(shape), _parameters(list(groups.items()))
        if sum(count for _kept, count in shape) <= KEEP_UP_TO_ROWS:  # a save's: prepared once,
            hold(connection, _bound(statement, parameters))  # held to go with COMMIT or next
        else:  # a batch's statement, sent once: not prepared (it would stay on the server)
            execute_on_driver(connection, statement, parameters)
        return
    for kept, rows in groups.items():  # SQLite: in process, no round trip to save
        parameters_of_rows = [kept.parameters(row) for row in rows]
        execute_on_driver(connection, kept.head + kept.row, parameters_of_rows, many=True)


def insert_returning_ids(
    session: Session, rows: Sequence[tuple[Table, Mapping[str, Any]]]
) -> list[int] | None:
    """Insert one row in each table (each with an `id` key column), in order, past the unit of
    work, and return their ids: on PostgreSQL in one statement, on SQLite one statement a row.
    None when a row cannot be sent as given (a column left to a Python-side default): the
    caller takes SQLAlchemy's path. Whatever is pending in the session is flushed first, so
    the rows may refer to it."""
    session.flush()
    connection = session.connection()
    kept = [_kept_insert(connection, table, tuple(sorted(row))) for table, row in rows]
    if not rows or any(k is None or "id" not in k.table.c for k in kept):
        return None
    inserts = [(k, [row]) for k, (_table, row) in zip(kept, rows, strict=True) if k is not None]
    if connection.dialect.name == "postgresql":  # with what is held (BEGIN, the lock)
        statement = _together(tuple((k, 1) for k, _rows in inserts), returning=True)
        ((found,),) = send_together(connection, [_bound(statement, _parameters(inserts))])
        ids = [int(str(value)) for value in found]
        return [*ids[1:], ids[0]]  # the main statement's id comes first
    return [
        execute_on_driver(
            connection, k.head + k.row + " RETURNING id", k.parameters(r), fetch=True
        )[0]
        for k, (r,) in inserts
    ]


def _parameters(inserts: Sequence[tuple[_KeptInsert, Rows]]) -> dict[str, Any]:
    """The parameters of `_together`'s statement: row j of the i-th INSERT as q{i}_{j}_name."""
    return {
        f"q{i}_{j}_{name}": value
        for i, (kept, rows) in enumerate(inserts)
        for j, row in enumerate(rows)
        for name, value in zip(kept.names, kept.parameters(row), strict=True)
    }


_NUMBERED: dict[str, tuple[Prepared, tuple[str, ...]]] = {}


def _bound(statement: str, parameters: Mapping[str, Any]) -> tuple[Prepared, list[Any]]:
    """`_together`'s statement to send by name, with its parameters in their order."""
    found = _NUMBERED.get(statement)
    if found is None:
        text, names = numbered(statement)
        found = (prepared(text), names)
        if len(_NUMBERED) < 256:  # a save's shapes, a handful
            _NUMBERED[statement] = found
    return found[0], [parameters[name] for name in found[1]]


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")
_TOGETHER: dict[tuple[tuple[tuple[_KeptInsert, int], ...], bool], str] = {}


def _together(inserts: tuple[tuple[_KeptInsert, int], ...], *, returning: bool = False) -> str:
    """One statement of several INSERTs (each of that many rows): all but the last as
    data-modifying WITH queries, which PostgreSQL runs to completion whether or not the main
    statement reads them (in no set order: so each table gets one INSERT, its rows in the
    order given). The parameter `name` of row j of the i-th is q{i}_{j}_name. `returning`
    (one row each): the statement returns one row, the last INSERT's id, then the others'."""
    found = _TOGETHER.get((inserts, returning))
    if found is None:
        parts = [
            kept.head
            + ", ".join(_PLACEHOLDER.sub(rf"%(q{i}_{j}_\1)s", kept.row) for j in range(count))
            for i, (kept, count) in enumerate(inserts)
        ]
        if returning:
            others = "".join(f", (SELECT id FROM q{i})" for i in range(len(parts) - 1))
            parts = [part + " RETURNING id" for part in parts[:-1]] + [
                f"{parts[-1]} RETURNING id{others}"
            ]
        withs = ", ".join(f"q{i} AS ({part})" for i, part in enumerate(parts[:-1]))
        found = f"WITH {withs} {parts[-1]}" if withs else parts[-1]
        if sum(count for _kept, count in inserts) <= KEEP_UP_TO_ROWS:  # a save's, not a batch's
            _TOGETHER[(inserts, returning)] = found
    return found


@dataclass(frozen=True, eq=False)  # one per (table, columns): compared by identity
class _KeptInsert:
    """An INSERT as SQLAlchemy compiles it for the driver ("INSERT INTO t (a, b) VALUES " and
    "(%(a)s, %(b)s::JSONB)" for psycopg, "(?, ?)" for SQLite), its parameters in order with
    their columns' bind processors."""

    table: Table
    head: str
    row: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]

    def parameters(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(
            row[c] if p is None else p(row[c])
            for c, p in zip(self.names, self.processors, strict=True)
        )


_KEPT: dict[tuple[Any, ...], _KeptInsert | None] = {}


def _kept_insert(
    connection: Connection, table: Table, columns: tuple[str, ...]
) -> _KeptInsert | None:
    """The INSERT of these columns as the driver gets it; None when SQLAlchemy would add
    parameters of its own (a Python-side default), which only its own execution fills in."""
    dialect = connection.dialect
    key = (table, columns, dialect.name, dialect.driver)
    if key not in _KEPT:
        compiled = insert(table).compile(  # (as for executemany: no RETURNING of the id)
            dialect=dialect, column_keys=list(columns), for_executemany=True
        )
        head, values, row = compiled.string.partition(" VALUES ")
        one_row = row.startswith("(") and row.endswith(")") and " RETURNING " not in row
        names = tuple(compiled.positiontup or columns)
        if set(compiled.params) != set(columns) or set(names) != set(columns) or not one_row:
            _KEPT[key] = None
        else:
            processors = tuple(
                table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in names
            )
            _KEPT[key] = _KeptInsert(table, head + values, row, names, processors)
    return _KEPT[key]
