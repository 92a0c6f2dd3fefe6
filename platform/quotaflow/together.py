"""PostgreSQL: a save's statements sent together, in as few round trips as their order allows.

Under the forms benchmark's load a round trip to PostgreSQL cost the worker ~0.1 ms of CPU
(the driver, the kernel's loopback, a wake-up) and the server about half as much again: more
than most of a save's statements take to run, and a save made six. PostgreSQL's simple query
protocol takes several statements in one message (its extended protocol, which carries
parameters, takes one), so:

- `send_together(connection, parts, commit=...)` sends statements in one simple query: plain
  SQL as it is; a statement with parameters as EXECUTE of a statement prepared once per
  connection (SQL PREPARE, which outlives a rollback: noted as prepared once the server has
  answered it), its parameters rendered as literals by psycopg's own literal rendering (the
  driver's quoting; its renderer kept per connection, so what it looked up for a type — which
  dumper, which cast — is looked up once, not on every save). The transaction's BEGIN goes
  along when nothing was sent yet (psycopg would send it alone), COMMIT when asked. Rows come
  back as text.
- `hold(connection, part)`: a statement that must run before anything after it, but whose
  answer nobody waits for now, is held on the connection and sent with whatever goes next:
  with the next `send_together`, before any statement SQLAlchemy or `execute_on_driver`
  runs there, or with COMMIT (the connection's commit event sends the held statements and
  COMMIT as one query; psycopg then has nothing left to commit). A rollback drops them. An
  error is raised where the statement is sent, as SQLAlchemy raises the driver's.

A save is then three round trips: the config stamp (its own connection), BEGIN with the
roll-ups' lock and the record's insert, and the roll-up delta with the history, stage and
audit rows and COMMIT.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, event

from quotaflow.db import HELD, WROTE, as_sqlalchemy_errors, send_held

PREPARED = "quotaflow.prepared_statements"  # connection.info: names this connection knows
LITERALS = "quotaflow.literals"  # connection.info: the driver's literal renderer, kept
MAX_KEPT = 1024  # prepared statements kept per process (one per statement shape: a handful)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A statement with numbered placeholders ($1 ...), prepared by name on each connection
    the first time it is sent there."""

    name: str
    text: str
    execute: bytes  # EXECUTE name, without its arguments


Rows = list[tuple[str | None, ...]]
Part = str | tuple[Prepared, Sequence[Any]]
_KEPT: dict[str, Prepared] = {}
PLACEHOLDER = re.compile(r"\$(\d+)")  # a numbered placeholder; group 1 its number


def prepared(text: str) -> Prepared:
    """The statement `text` (placeholders $1 ... $n) to send by name."""
    found = _KEPT.get(text)
    if found is None:
        name = "qf_" + hashlib.sha1(text.encode()).hexdigest()[:24]
        found = Prepared(name, text, f"EXECUTE {name}".encode())
        if len(_KEPT) < MAX_KEPT:
            _KEPT[text] = found
    return found


_NAMED = re.compile(r"%%|%\((\w+)\)s")  # psycopg's named placeholders and escaped percent


def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """psycopg's `%(name)s` placeholders as `$1 ...` (a name used twice keeps its number),
    with the names in their numbers' order; `%%` back to `%`."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) is None:
            return "%"
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return _NAMED.sub(number, sql), tuple(names)


def sql_literal(connection: Connection, value: Any) -> str:
    """`value` as an SQL literal, as psycopg renders it."""
    driver: Any = connection.connection.driver_connection
    return _literal(_renderer(connection), value).decode(driver.info.encoding)


def _renderer(connection: Connection) -> Any:
    """psycopg's Transformer for this connection, kept with it: a new one (as each client-side
    cursor makes) looks up every parameter's dumper and type cast again, which was most of
    rendering a save's ~60 parameters."""
    renderer = connection.info.get(LITERALS)
    if renderer is None:
        from psycopg.adapt import Transformer

        renderer = connection.info[LITERALS] = Transformer(connection.connection.driver_connection)
    return renderer


def _literal(renderer: Any, value: Any) -> bytes:
    return b"NULL" if value is None else bytes(renderer.as_literal(value))


def hold(connection: Connection, part: Part, on_rows: Callable[[Rows], None] | None = None) -> None:
    """Send `part` with whatever is next sent on this connection in this transaction (it runs
    first); `on_rows` gets its rows then."""
    if not connection.in_transaction():
        connection.begin()
    connection.info.setdefault(HELD, []).append((part, on_rows))


def has_held(connection: Connection) -> bool:
    return bool(connection.info.get(HELD))


def send_together(
    connection: Connection, parts: Sequence[Part] = (), *, commit: bool = False
) -> list[Rows]:
    """Send the held statements and then `parts` in one round trip (BEGIN first when the
    transaction has sent nothing; COMMIT last when `commit`); each part's rows, as text."""
    from psycopg import errors, generators, pq

    held: list[tuple[Part, Callable[[Rows], None] | None]] = connection.info.pop(HELD, [])
    todo = [*held, *((part, None) for part in parts)]
    if not todo and not commit:
        return []
    if not connection.in_transaction():
        connection.begin()  # so that its rollback reaches the server
    driver: Any = connection.connection.driver_connection
    known: set[str] = connection.info.setdefault(PREPARED, set())
    encoding = driver.info.encoding
    statements: list[bytes] = []
    if driver.pgconn.transaction_status == pq.TransactionStatus.IDLE:
        statements.append(b"BEGIN")
    preparing: dict[int, str] = {}  # position of a PREPARE -> its name
    places: list[int] = []  # position of each part's statement
    renderer: Any = None
    for part, _on_rows in todo:
        if isinstance(part, str):
            places.append(len(statements))
            statements.append(part.encode(encoding))
            continue
        statement, parameters = part
        if statement.name not in known and statement.name not in preparing.values():
            preparing[len(statements)] = statement.name
            statements.append(f"PREPARE {statement.name} AS {statement.text}".encode(encoding))
        sql = statement.execute
        if parameters:
            renderer = renderer or _renderer(connection)
            sql += b"(" + b", ".join([_literal(renderer, p) for p in parameters]) + b")"
        places.append(len(statements))
        statements.append(sql)
    if commit:
        statements.append(b"COMMIT")
    query = b";\n".join(statements)
    with as_sqlalchemy_errors(connection, query, None):
        driver.pgconn.send_query(query)
        results = driver.wait(generators.execute(driver.pgconn))
        for position, name in preparing.items():
            if position < len(results) and results[position].status == pq.ExecStatus.COMMAND_OK:
                known.add(name)  # prepared, whatever became of the transaction
        for result in results:
            if result.status == pq.ExecStatus.FATAL_ERROR:
                raise errors.error_from_result(result, encoding=encoding)
    connection.info[WROTE] = True
    rows = [_text_rows(results[position], encoding) for position in places]
    for (_part, on_rows), found in zip(todo, rows, strict=True):
        if on_rows is not None:
            on_rows(found)
    return rows[len(held) :]


def _text_rows(result: Any, encoding: str) -> Rows:
    return [
        tuple(
            None if value is None else value.decode(encoding)
            for value in (result.get_value(i, j) for j in range(result.nfields))
        )
        for i in range(result.ntuples)
    ]


def watch(engine: Engine) -> None:
    """Send held statements before SQLAlchemy's own and with COMMIT; drop them on rollback."""
    event.listen(engine, "before_cursor_execute", _before_statement)
    event.listen(engine, "commit", _with_commit)
    event.listen(engine, "rollback", _drop)
    event.listen(engine, "rollback_savepoint", _drop_since_savepoint)


def _before_statement(conn: Connection, *_args: Any) -> None:
    send_held(conn)


def _with_commit(conn: Connection) -> None:
    if conn.info.get(HELD):
        try:
            send_together(conn, commit=True)
        except Exception:
            # as a COMMIT that fails: the transaction is over, rolled back (SQLAlchemy has
            # already let go of it, so its rollback would not reach the server)
            if not conn.invalidated:
                conn.connection.driver_connection.rollback()  # type: ignore[union-attr]
            raise


def _drop_since_savepoint(conn: Connection, *_args: Any) -> None:
    # SAVEPOINT went through SQLAlchemy, so what was held before it was sent first: what is
    # held now came after it
    _drop(conn)


def _drop(conn: Connection) -> None:
    if not conn.invalidated:
        conn.info.pop(HELD, None)
