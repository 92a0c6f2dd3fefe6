"""Shared fixtures: real SQLite and a real PostgreSQL server, app, client, CLI runner.

Every test that takes `db_url`, `db_engine`, `app` or `client` runs once per backend.
With CI=true a missing PostgreSQL or chromium is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.app import create_app
from quotaflow.config import settings_from_env
from quotaflow.packs.services import active_version
from quotaflow.pipelines.services import record_first_stage
from quotaflow.records.services import create_record
from tests.pgserver import PostgresServer, PostgresUnavailable, start_server

IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgresql"]
REPO = Path(__file__).resolve().parent.parent


def missing_component(what: str) -> None:
    """Fail under CI (everything must be installed there); skip on a developer machine."""
    if IN_CI:
        pytest.fail(f"{what} is required when CI=true", pytrace=False)
    pytest.skip(f"{what} not available")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session."""
    try:
        server = start_server()
    except PostgresUnavailable as exc:
        missing_component(str(exc))
    yield server
    server.stop()


# --- empty databases -------------------------------------------------------------------------


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a brand-new empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = _create_pg_database(server)
    yield server.url(name)
    _drop_pg_database(server, name)


@pytest.fixture
def db_engine(empty_db_url: str) -> Iterator[Engine]:
    """An engine on an empty database (SQLite file or PostgreSQL database)."""
    engine = db.make_engine(empty_db_url)
    yield engine
    engine.dispose()


# --- migrated databases ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; tests copy it."""
    path = tmp_path_factory.mktemp("template") / "migrated.db"
    db.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    """A PostgreSQL database migrated to head once; tests clone it with CREATE DATABASE TEMPLATE."""
    name = _create_pg_database(pg_server, "qf_template")
    db.upgrade(pg_server.url(name))
    return name


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh database at the newest migration, on each backend."""
    if request.param == "sqlite":
        path = tmp_path / "quotaflow.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    name = _create_pg_database(server, template=request.getfixturevalue("pg_template"))
    yield server.url(name)
    _drop_pg_database(server, name)


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on a migrated database."""
    engine = db.make_engine(db_url)
    yield db.make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """The app on a migrated database, its instance folder in tmp_path."""
    monkeypatch.setenv("QUOTAFLOW_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    return create_app({"TESTING": True}, settings=settings_from_env())


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def cli_env(db_url: str, tmp_path: Path) -> dict[str, str]:
    """Environment for running `quotaflow` against the test database."""
    return {"DATABASE_URL": db_url, "QUOTAFLOW_INSTANCE_PATH": str(tmp_path / "instance")}


@pytest.fixture
def runner(cli_env: dict[str, str]) -> CliRunner:
    """A click runner whose commands use the test database."""
    return CliRunner(env=cli_env)


# --- helpers ---------------------------------------------------------------------------------


def _create_pg_database(
    server: PostgresServer, name: str | None = None, template: str | None = None
) -> str:
    name = name or f"t_{uuid.uuid4().hex[:12]}"
    engine = db.make_engine(server.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        clause = f" TEMPLATE {template}" if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
    engine.dispose()
    return name


def _drop_pg_database(server: PostgresServer, name: str) -> None:
    engine = db.make_engine(server.url(), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


# --- sign-in helpers (issue 4 foundation): users, CSRF tokens, an `auth` fixture ------------

TEST_PASSWORD = "test-password-1"


def csrf_token(client: FlaskClient) -> str:
    """A valid CSRF token for the client's session, read from a page's <meta name=csrf-token>.

    A missing page is used because it renders the full layout for anyone, signed in or not.
    """
    import re

    page = client.get("/__no_such_page__").get_data(as_text=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found, "the layout carries no CSRF token"
    return found.group(1)


@pytest.fixture
def make_user(app: Flask):  # type: ignore[no-untyped-def]
    """Factory: make_user('li', team='east', role='sales_manager', is_admin=False) -> User.

    Teams named by key are created on first use (under the first team, or as the root).
    """
    from datetime import date

    from quotaflow.org.models import Team
    from quotaflow.org.services import add_membership, add_user, ensure_team

    def make(
        username: str,
        *,
        password: str = TEST_PASSWORD,
        display_name: str | None = None,
        team: str | None = None,
        role: str | None = None,
        valid_from: date = date(2020, 1, 1),
        **fields: object,
    ):  # type: ignore[no-untyped-def]
        with db.transaction(app.extensions["quotaflow.sessions"]) as session:
            user = add_user(
                session,
                username=username,
                display_name=display_name or username.title(),
                password=password,
                **fields,  # type: ignore[arg-type]
            )
            if team:
                root = session.query(Team).filter(Team.parent_id.is_(None)).first()
                unit = ensure_team(session, key=team, name=team.title(), parent=root)
                add_membership(
                    session, user=user, team=unit, role=role or "rep", valid_from=valid_from
                )
            return user

    return make


class AuthActions:
    """Sign in and out through the real forms (with CSRF tokens), like a browser would."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def login(self, username: str, password: str = TEST_PASSWORD, next: str = ""):  # type: ignore[no-untyped-def]
        data = {"username": username, "password": password, "next": next}
        return self.client.post("/login", data={**data, "csrf_token": csrf_token(self.client)})

    def logout(self):  # type: ignore[no-untyped-def]
        return self.client.post("/logout", data={"csrf_token": csrf_token(self.client)})

    def post(self, url: str, data: dict[str, object] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
        """POST with a valid CSRF token added to the form."""
        form = {**(data or {}), "csrf_token": csrf_token(self.client)}
        return self.client.post(url, data=form, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    return AuthActions(client)


def stock_deal(
    session: Session, owner_id: int, team_id: int | None, stage: str, values: dict[str, str]
) -> int:
    """A deal on the installed stock pack, owned by `owner_id`, in `stage` with its first
    stage move recorded; its id."""
    record = create_record(
        session,
        pack_id="b2b_manufacturer",
        pack_version_id=active_version(session, "b2b_manufacturer").id,
        form_id="deal",
        owner_id=owner_id,
        team_id=team_id,
        actor_id=owner_id,
        stage=stage,
        values=values,
        record_date=date.today(),
    )
    record_first_stage(session, record, "b2b", owner_id)
    return record.id
