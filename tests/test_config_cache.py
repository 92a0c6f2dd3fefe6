"""The per-process memo of people, teams and installed packs: pages stop reading them on every
request, yet what one worker changes — a user switched off, a new pack version, a rep moved to
another team — every other worker sees on its very next request; a transaction's own uncommitted
change never fills the memo; a database made again under the same URL is never taken for the old
one."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from quotaflow import config_cache, create_app, db
from quotaflow.config import settings_from_env
from quotaflow.org.models import Membership, Team, User
from quotaflow.org.services import team_on
from quotaflow.records.models import Record
from tests.conftest import AuthActions
from tests.test_forms_web import acme_files, make_installer, make_people, post_deal, version_id


@pytest.fixture
def rep(app: Flask, tmp_path: Path, make_user) -> AuthActions:  # type: ignore[no-untyped-def]
    make_people(app, make_user)
    make_installer(app, tmp_path)()
    auth = AuthActions(app.test_client())
    assert auth.login("li.wei").status_code == 302
    return auth


@pytest.fixture
def other_worker(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """A second app on the same database, with its own engine: another gunicorn worker."""
    monkeypatch.setenv("QUOTAFLOW_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    return create_app({"TESTING": True}, settings=settings_from_env())


@contextmanager
def statements(app: Flask) -> Iterator[list[str]]:
    """The SQL the app's engine runs inside the block."""
    seen: list[str] = []
    engine: Engine = app.extensions["quotaflow.sessions"].kw["bind"]

    def log(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", log)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", log)


def test_a_repeated_page_reads_the_stamp_not_the_set_up(
    app: Flask, rep: AuthActions, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    stamps_read: list[object] = []  # (on PostgreSQL on a connection outside the engine's pool)
    read_stamp = config_cache._read_stamp
    monkeypatch.setattr(
        config_cache, "_read_stamp", lambda s: stamps_read.append(read_stamp(s)) or stamps_read[-1]
    )
    with statements(app) as seen:
        assert rep.client.get("/forms/acme/deal/new").status_code == 200
    read = [" ".join(s.lower().split()) for s in seen]
    assert len(stamps_read) == 1
    # (the form's user and reference fields still read the people and deals it offers)
    assert not [s for s in read if re.search(r"from users where users.id = \S+$", s)]
    assert not [s for s in read if "from pack_versions" in s]


def test_a_user_switched_off_by_another_worker_is_signed_out_at_once(
    app: Flask, rep: AuthActions, other_worker: Flask
) -> None:
    assert rep.client.get("/forms/acme/deal/new").status_code == 200  # memo filled
    with db.transaction(other_worker.extensions["quotaflow.sessions"]) as session:
        session.scalars(select(User).where(User.username == "li.wei")).one().is_active = False
    response = rep.client.get("/forms/acme/deal/new")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_a_pack_published_through_another_worker_is_served_at_once(
    app: Flask, rep: AuthActions, other_worker: Flask, tmp_path: Path
) -> None:
    first = version_id(rep.client.get("/forms/acme/deal/new").get_data(as_text=True))
    changed = acme_files(pack_yaml=acme_files()["pack.yaml"].replace("1.0.0", "1.1.0"))
    make_installer(other_worker, tmp_path / "elsewhere")(changed)
    second = version_id(rep.client.get("/forms/acme/deal/new").get_data(as_text=True))
    assert int(second) > int(first)


def test_a_rep_moved_to_another_team_saves_into_the_new_team(
    app: Flask, rep: AuthActions, other_worker: Flask
) -> None:
    assert post_deal(rep, {"customer": "Before", "amount": "100"}).status_code == 302
    with db.transaction(other_worker.extensions["quotaflow.sessions"]) as session:
        user = session.scalars(select(User).where(User.username == "li.wei")).one()
        west = session.scalars(select(Team).where(Team.key == "west")).one()
        for membership in session.scalars(select(Membership).where(Membership.user_id == user.id)):
            session.delete(membership)
        session.add(
            Membership(user_id=user.id, team_id=west.id, role="rep", valid_from=date(2000, 1, 1))
        )
    assert post_deal(rep, {"customer": "After", "amount": "100"}).status_code == 302
    with app.extensions["quotaflow.sessions"]() as session:
        teams = {
            r.values["customer"]: session.get(Team, r.team_id).key  # type: ignore[union-attr]
            for r in session.scalars(select(Record))
        }
    assert teams == {"Before": "east", "After": "west"}


def test_an_uncommitted_change_never_fills_the_memo(app: Flask, rep: AuthActions) -> None:
    sessions = app.extensions["quotaflow.sessions"]
    calls: list[str] = []

    def name_of(session: Any) -> Callable[[], str]:
        def compute() -> str:
            calls.append("read")
            return session.scalars(select(User.display_name).where(User.username == "li.wei")).one()

        return compute

    with sessions() as session:
        session.scalars(select(User).where(User.username == "li.wei")).one().display_name = "Typo"
        key = ("display_name", "li.wei")
        assert config_cache.remembered(session, key, name_of(session)) == "Typo"
        session.rollback()
    with sessions() as session:
        assert config_cache.remembered(session, key, name_of(session)) != "Typo"
    with sessions() as session:
        assert config_cache.remembered(session, key, name_of(session)) != "Typo"
    assert calls == ["read", "read"]  # the third session found the second's answer


def test_team_lookups_follow_dated_memberships(app: Flask, rep: AuthActions) -> None:
    with app.extensions["quotaflow.sessions"]() as session:
        user = session.scalars(select(User).where(User.username == "li.wei")).one()
        east = session.scalars(select(Team.id).where(Team.key == "east")).one()
        assert team_on(session, user.id, date(2026, 6, 1)) == east
        assert team_on(session, user.id, date(1990, 6, 1)) is None  # before any membership


def test_a_database_made_again_under_the_same_url_is_not_the_old_one(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'again.db'}"

    def first_user_name() -> str:
        db.upgrade(url)
        engine = db.make_engine(url)
        with db.transaction(db.make_sessionmaker(engine)) as session:
            session.add(User(username=f"user{len(names)}", display_name=f"User {len(names)}"))
        with db.make_sessionmaker(engine)() as session:
            found = config_cache.remembered(
                session, ("first user",), lambda: session.scalars(select(User.username)).first()
            )
        engine.dispose()
        return str(found)

    names: list[str] = []
    names.append(first_user_name())
    for suffix in ("", "-wal", "-shm", "-writers"):
        Path(f"{tmp_path / 'again.db'}{suffix}").unlink(missing_ok=True)
    names.append(first_user_name())
    assert names == ["user0", "user1"]


# --- PostgreSQL: the stamp is read on a connection of its own -----------------------------------


def _reader_backend(app: Flask) -> int:
    engine = app.extensions["quotaflow.sessions"].kw["bind"]
    return int(config_cache._reader(engine).newest_backend_pid())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_stamp_connection_ended_by_the_server_is_replaced_without_an_error(
    app: Flask, rep: AuthActions, other_worker: Flask, db_url: str
) -> None:
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    ended = _reader_backend(app)
    admin = db.make_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # as a server restart or an idle timeout would
        assert conn.execute(select(func.pg_terminate_backend(ended))).scalar()
    admin.dispose()
    with db.transaction(other_worker.extensions["quotaflow.sessions"]) as session:
        session.scalars(select(User).where(User.username == "li.wei")).one().is_active = False
    response = rep.client.get("/forms/acme/deal/new")  # the change is seen, not a 500
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert _reader_backend(app) != ended


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_disposing_the_engine_closes_the_stamp_connection(
    app: Flask, rep: AuthActions, db_url: str
) -> None:
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    pid = _reader_backend(app)
    app.extensions["quotaflow.sessions"].kw["bind"].dispose()
    admin = db.make_engine(db_url)
    alive = 1
    with admin.connect() as conn:
        for _ in range(50):  # a backend leaves pg_stat_activity a moment after its client
            alive = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
            ).scalar_one()
            if alive == 0:
                break
            time.sleep(0.05)
    admin.dispose()
    assert alive == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_forked_worker_reads_the_stamp_on_its_own_connection(
    app: Flask, rep: AuthActions
) -> None:
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    parent = _reader_backend(app)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # as gunicorn forks workers from a master that may have read it
        try:
            os.write(write, str(_reader_backend(app)).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    in_child = int(os.read(read, 32) or b"0")
    os.close(read)
    assert in_child not in (0, parent)
    assert _reader_backend(app) == parent  # the parent's connection still works
    assert rep.client.get("/forms/acme/deal/new").status_code == 200


# --- PostgreSQL: the stamp is asked for as a request arrives ------------------------------------


def _switch_off(worker: Flask, username: str) -> None:
    with db.transaction(worker.extensions["quotaflow.sessions"]) as session:
        session.scalars(select(User).where(User.username == username)).one().is_active = False


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_page_takes_the_answer_to_the_stamp_asked_for_as_it_arrived(
    app: Flask, rep: AuthActions, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = config_cache._reader(app.extensions["quotaflow.engine"])
    asked: list[object | None] = []
    ask = reader.ask
    monkeypatch.setattr(reader, "ask", lambda: asked.append(ask()) or asked[-1])

    def no_second_query() -> None:
        raise AssertionError("the stamp was read again instead of taking the asked answer")

    monkeypatch.setattr(reader, "_newest", no_second_query)
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    assert len(asked) == 1 and asked[0] is not None
    assert rep.client.get("/static/css/app.css").status_code == 200
    assert len(asked) == 1  # a static file asks nothing


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_answer_asked_for_one_request_is_never_taken_by_a_later_one(
    app: Flask, rep: AuthActions, other_worker: Flask
) -> None:
    """A thread may take the connection between another's ask and its answer: the one whose
    answer went to waste reads again, never an answer asked before its request began."""
    engine = app.extensions["quotaflow.engine"]
    reader = config_cache._reader(engine)
    before = reader.newest()
    first = config_cache.ask_ahead(engine)  # request A arrives, then a change commits
    _switch_off(other_worker, "li.wei")
    second = config_cache.ask_ahead(engine)  # request B arrives after the change
    after_b = reader.newest(second)
    after_a = reader.newest(first)  # A's answer was dropped when B asked: read anew
    assert before is not None and after_b is not None and after_a is not None
    assert after_b[0] > before[0] and after_a == after_b


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_answer_nobody_took_does_not_stand_in_for_the_next(
    app: Flask, rep: AuthActions, other_worker: Flask
) -> None:
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    assert rep.client.get("/healthz").status_code == 200  # asked, answer never needed
    _switch_off(other_worker, "li.wei")
    response = rep.client.get("/forms/acme/deal/new")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_stamp_asked_on_a_connection_the_server_ended_is_read_on_a_new_one(
    app: Flask, rep: AuthActions, other_worker: Flask, db_url: str
) -> None:
    engine = app.extensions["quotaflow.engine"]
    reader = config_cache._reader(engine)
    ended = _reader_backend(app)
    admin = db.make_engine(db_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # as a server restart or an idle timeout would
        assert conn.execute(select(func.pg_terminate_backend(ended))).scalar()
    admin.dispose()
    _switch_off(other_worker, "li.wei")
    ticket = config_cache.ask_ahead(engine)  # sent into a closed connection, or refused
    found = reader.newest(ticket)
    with app.extensions["quotaflow.sessions"]() as session:
        newest = session.execute(text(config_cache.NEWEST)).one()
    assert found is not None and found[0] == newest[0]
    assert _reader_backend(app) != ended


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_failure_while_asking_ahead_leaves_the_read_to_the_request(
    app: Flask, rep: AuthActions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Asking runs before Flask's error handling: it must never fail a request itself."""
    reader = config_cache._reader(app.extensions["quotaflow.engine"])
    reader.ask()  # an answer nobody takes: the next ask reads it first
    answer = reader._answer
    failures = [RuntimeError("the server answered something unexpected")]

    def fails_once() -> tuple[int, str] | None:
        if failures:
            raise failures.pop()
        return answer()

    monkeypatch.setattr(reader, "_answer", fails_once)
    assert rep.client.get("/forms/acme/deal/new").status_code == 200
    assert not failures
