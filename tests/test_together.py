"""PostgreSQL: statements sent together (together.py) — held ones before whatever is sent
next, BEGIN and COMMIT in the same round trip, parameters as literals that come back exactly
as given, prepared once per connection, errors as SQLAlchemy's, nothing left behind by a
rollback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb
from sqlalchemy import Engine, exc, text

from quotaflow import db
from quotaflow.together import hold, numbered, prepared, send_together
from tests.conftest import _create_pg_database, _drop_pg_database
from tests.pgserver import PostgresServer


@pytest.fixture
def engine(pg_server: PostgresServer) -> Iterator[Engine]:
    name = _create_pg_database(pg_server)
    engine = db.make_engine(pg_server.url(name))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (n bigint, s text)"))
    yield engine
    engine.dispose()
    _drop_pg_database(pg_server, name)


class RoundTrips:
    """Counts the waits for the server on one driver connection that did any I/O."""

    def __init__(self, driver: Any) -> None:
        self.count = 0
        wait = driver.wait

        def counted(gen: Any, *args: Any, **kwargs: Any) -> Any:
            return wait(self._spy(gen), *args, **kwargs)

        driver.wait = counted

    def _spy(self, gen: Any) -> Any:
        try:
            request = next(gen)
        except StopIteration as stop:
            return stop.value
        self.count += 1
        while True:
            ready = yield request
            try:
                request = gen.send(ready)
            except StopIteration as stop:
                return stop.value


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM probe")).scalar_one())


def test_held_statements_go_with_the_next_and_with_commit_in_one_round_trip(
    engine: Engine,
) -> None:
    insert = prepared("INSERT INTO probe VALUES ($1, $2) RETURNING n, s")
    with engine.connect() as conn:
        trips = RoundTrips(conn.connection.driver_connection)
        hold(conn, "INSERT INTO probe VALUES (1, 'held')")
        assert trips.count == 0  # nothing sent yet
        rows = send_together(conn, [(insert, [2, "sent"])])
        assert rows == [[("2", "sent")]]  # the part's rows, as text
        assert trips.count == 1  # BEGIN, the held insert and this one
        hold(conn, (insert, [3, "at commit"]))
        assert _count(engine) == 0  # another connection sees nothing yet
        conn.commit()
        assert trips.count == 2  # the held insert and COMMIT: psycopg sent nothing more
    assert _count(engine) == 3


def test_a_held_statement_runs_before_sqlalchemys_next_and_a_rollback_drops_it(
    engine: Engine,
) -> None:
    with engine.connect() as conn:
        hold(conn, "INSERT INTO probe VALUES (1, 'a')")
        assert conn.execute(text("SELECT count(*) FROM probe")).scalar() == 1
        hold(conn, "INSERT INTO probe VALUES (2, 'b')")
        conn.rollback()  # the first was sent and is undone; the second is dropped
        assert conn.execute(text("SELECT count(*) FROM probe")).scalar() == 0
        conn.commit()
        send_together(conn, ["INSERT INTO probe VALUES (3, 'c')"])
        db.execute_on_driver(conn, "INSERT INTO probe VALUES (4, 'd')", None)
        hold(conn, "INSERT INTO probe VALUES (5, 'e')")
        db.execute_on_driver(conn, "INSERT INTO probe SELECT 6, s FROM probe WHERE n = 5", None)
        conn.commit()
    with engine.connect() as conn:
        found = conn.execute(text("SELECT n, s FROM probe ORDER BY n")).all()
    assert found == [(3, "c"), (4, "d"), (5, "e"), (6, "e")]


def test_statements_with_begin_stay_in_the_transaction_whether_or_not_it_had_begun(
    engine: Engine,
) -> None:
    show = "SHOW statement_timeout"
    with engine.connect() as conn:
        for already_begun in (False, True):
            if already_begun:
                conn.execute(text("SELECT 1"))  # psycopg has sent BEGIN itself
            rows = send_together(
                conn,
                ["SET LOCAL statement_timeout = '4321ms'", "INSERT INTO probe VALUES (7)", show],
            )
            assert rows == [[], [], [("4321ms",)]]
            assert conn.execute(text("SELECT count(*) FROM probe")).scalar() == 1
            conn.rollback()
            assert conn.execute(text(show)).scalar() != "4321ms"
            assert conn.execute(text("SELECT count(*) FROM probe")).scalar() == 0
            conn.rollback()


def test_a_refused_statement_fails_as_sqlalchemys_error_where_it_is_sent(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("ALTER TABLE probe ADD CONSTRAINT small CHECK (n < 100)"))
        conn.commit()
        with pytest.raises(exc.DataError):
            send_together(conn, ["SELECT 1 / 0"])
        conn.rollback()
        hold(conn, "INSERT INTO probe VALUES (1, 'ok')")
        hold(conn, (prepared("INSERT INTO probe VALUES ($1, $2)"), [500, "refused"]))
        with pytest.raises(exc.IntegrityError):
            conn.commit()  # sent with COMMIT, which did not happen
        conn.rollback()
        assert conn.execute(text("SELECT count(*) FROM probe")).scalar() == 0
        assert send_together(conn, ["SELECT 'ok', NULL"]) == [[("ok", None)]]
    assert _count(engine) == 0


def test_a_statement_is_prepared_once_per_connection_even_when_its_transaction_failed(
    engine: Engine,
) -> None:
    insert = prepared("INSERT INTO probe VALUES ($1, 'p')")
    with engine.connect() as conn:
        with pytest.raises(exc.DataError):
            send_together(conn, [(insert, [1]), "SELECT 1 / 0"])  # PREPARE ran, outlives it
        conn.rollback()
        send_together(conn, [(insert, [2])])  # not prepared again: that would fail
        conn.commit()
        fresh = prepared("INSERT INTO probe VALUES ($1, 'twice')")
        send_together(conn, [(fresh, [4]), (fresh, [5])])  # prepared once in one batch too
        conn.rollback()
    with engine.connect() as conn:
        send_together(conn, [(insert, [3])])  # the pooled connection still knows it
        conn.commit()
    assert _count(engine) == 2


def test_named_placeholders_are_numbered_in_order_of_first_use() -> None:
    sql = "SELECT %(b)s, %(a)s, %(b)s || '%%'"
    assert numbered(sql) == ("SELECT $1, $2, $1 || '%'", ("b", "a"))


# jsonb holds any character but NUL in its strings
json_texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | json_texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(json_texts, inner),
    max_leaves=12,
)
# PostgreSQL text holds any character but NUL; quotes, backslashes, $ and % are the risky ones
texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))) | (
    st.sampled_from(["'", "''", "\\", "\\'", "$1", "$$", "%s", "%(x)s", "'); DROP TABLE probe; --"])
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    words=st.lists(texts, min_size=1, max_size=3),
    document=json_values,
    number=st.integers(-(2**63), 2**63 - 1) | st.none(),
    moment=st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    day=st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)),
    flag=st.booleans(),
    ids=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=5),
)
def test_any_parameters_come_back_exactly_as_given(
    engine: Engine,
    words: list[str],
    document: Any,
    number: int | None,
    moment: datetime,
    day: date,
    flag: bool,
    ids: list[int],
) -> None:
    """Parameters travel as literals psycopg renders: whatever the values, the statement
    gets them as given and nothing else runs."""
    word = "".join(words)
    moment = moment.replace(tzinfo=UTC)
    statement = prepared(
        "SELECT $1::text, $2::jsonb, $3::bigint, $4::timestamptz, $5::date, $6::boolean,"
        " $7::bigint[]"
    )
    with engine.connect() as conn:
        [[row]] = send_together(
            conn, [(statement, [word, Jsonb(document), number, moment, day, flag, ids])]
        )
        typed = conn.execute(
            text("SELECT CAST(:t AS timestamptz), CAST(:d AS date), CAST(:i AS bigint[])"),
            {"t": row[3], "d": row[4], "i": row[6]},
        ).one()
        conn.rollback()
    assert row[0] == word
    assert json.loads(str(row[1])) == document
    assert row[2] == (None if number is None else str(number))
    assert typed[0] == moment and typed[1] == day and typed[2] == ids
    assert row[5] == ("t" if flag else "f")
    assert _count(engine) == 0


def test_prepared_statements_outlive_a_rollback_of_other_work(engine: Engine) -> None:
    """Nothing else deallocates them: a rollback after statements SQLAlchemy ran many times
    (which psycopg would otherwise have prepared, and then deallocated all) leaves ours."""
    insert = prepared("INSERT INTO probe VALUES ($1, 'kept')")
    with engine.connect() as conn:
        send_together(conn, [(insert, [1])])
        conn.commit()
        for _ in range(8):
            conn.execute(text("SELECT count(*) FROM probe WHERE n > :n"), {"n": 0})
        conn.rollback()
        conn.execute(text("DROP TABLE IF EXISTS nothing_here"))
        conn.commit()
        send_together(conn, [(insert, [2])])
        conn.commit()
    assert _count(engine) == 2
