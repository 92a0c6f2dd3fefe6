"""Storage: migrations on both backends, the migration gate, immutable versions, exact money."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.app import create_app
from quotaflow.cli import main
from quotaflow.config import settings_from_env
from quotaflow.org.models import Membership, Team, User
from quotaflow.packs.models import Pack, PackVersion, PublishedVersionImmutable
from quotaflow.records.models import Record
from tests.conftest import _create_pg_database
from tests.pgserver import PostgresServer

TABLES = {
    "packs",
    "pack_versions",
    "users",
    "teams",
    "memberships",
    "records",
    "record_history",
    "audit_log",
}


def test_migrations_run_from_empty_down_and_up_again(empty_db_url: str) -> None:
    db.upgrade(empty_db_url)
    engine = db.make_engine(empty_db_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    assert db.current_revision(engine) == db.head_revision()
    from alembic import command

    cfg = db.alembic_config(empty_db_url)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert not TABLES & set(inspect(engine).get_table_names())
    engine.dispose()
    db.upgrade(empty_db_url)
    engine = db.make_engine(empty_db_url)
    assert TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_app_refuses_an_unmigrated_database_and_names_the_command(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", empty_db_url)
    monkeypatch.setenv("QUOTAFLOW_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(db.DatabaseNotMigrated, match="Run: quotaflow db upgrade"):
        create_app(settings=settings_from_env())


def test_serve_on_an_unmigrated_database_prints_the_fix_without_traceback(
    empty_db_url: str, tmp_path: Path
) -> None:
    env = {"DATABASE_URL": empty_db_url, "QUOTAFLOW_INSTANCE_PATH": str(tmp_path)}
    result = CliRunner(env=env).invoke(main, ["serve", "--port", "0"])
    assert result.exit_code == 1
    assert "quotaflow db upgrade" in result.output
    assert "Traceback" not in result.output


def test_serve_answers_over_http_from_gunicorn_workers_and_stops_on_sigterm(
    cli_env: dict[str, str],
) -> None:
    port = _free_port()
    command = [
        str(Path(sys.executable).parent / "quotaflow"), "serve", "--port", str(port),
        "--workers", "2",
    ]  # fmt: skip
    server = subprocess.Popen(
        command, env={**os.environ, **cli_env}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        answers = {_get_status(f"http://127.0.0.1:{port}/healthz", seconds=30)}
        answers |= {_get_status(f"http://127.0.0.1:{port}/healthz") for _ in range(6)}
        assert answers == {200}
        login = urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=10)
        assert 'name="username"' in login.read().decode()
    finally:
        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
    log = output.decode()
    assert server.returncode == 0, log
    assert log.count("Booting worker") == 2, log  # two gunicorn workers, not Flask's own server
    assert "development server" not in log and "Traceback" not in log


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_status(url: str, seconds: float = 10) -> int:
    """The status of GET `url`, waiting up to `seconds` for the server to listen."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_healthz_reports_ok(client) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_secret_key_is_generated_once_into_the_instance_folder(app, db_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    key_file = tmp_path / "instance" / "secret_key"
    assert key_file.read_text() == app.config["SECRET_KEY"]
    assert len(app.config["SECRET_KEY"]) >= 64
    again = create_app(settings=settings_from_env())
    assert again.config["SECRET_KEY"] == app.config["SECRET_KEY"]


def test_workers_starting_at_once_get_one_whole_secret_key(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """gunicorn starts its workers together on a new instance: each must read the same,
    complete key (an empty one leaves that worker with no sessions, no CSRF)."""
    import multiprocessing

    from quotaflow.config import secret_key

    context = multiprocessing.get_context("fork")
    for attempt in range(10):
        folder = tmp_path / f"instance{attempt}"
        with context.Pool(8) as pool:
            keys = pool.map(secret_key, [folder] * 8)
        assert len(set(keys)) == 1 and len(keys[0]) == 64, keys
        assert (folder / "secret_key").read_text() == keys[0]
        assert [p.name for p in folder.iterdir()] == ["secret_key"]  # no drafts left behind


def test_a_served_worker_freezes_its_startup_objects_after_the_first_request(
    db_url: str, tmp_path: Path
) -> None:
    """Outside tests, a worker moves what its first request loaded into the collector's
    permanent generation, so full collections stop walking it (a ~45 ms stall each)."""
    import subprocess
    import sys

    script = (
        "import gc, sys; from quotaflow import create_app; from quotaflow.config import "
        "settings_from_env; app = create_app(settings=settings_from_env()); "
        "before = gc.get_freeze_count(); app.test_client().get('/healthz'); "
        "print(before, gc.get_freeze_count())"
    )
    env = {"DATABASE_URL": db_url, "QUOTAFLOW_INSTANCE_PATH": str(tmp_path / "instance"),
           "PATH": "/usr/bin:/bin"}  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert int(out[0]) == 0 and int(out[1]) > 10_000


def test_postgres_urls_get_the_psycopg_driver() -> None:
    settings = settings_from_env({"DATABASE_URL": "postgres://u:p@h/d"})
    assert settings.database_url == "postgresql+psycopg://u:p@h/d"
    assert settings_from_env({"QUOTAFLOW_INSTANCE_PATH": "/x"}).database_url == (
        "sqlite:////x/quotaflow.db"
    )


def _publish(session: Session) -> PackVersion:
    pack = Pack(id="acme")
    version = PackVersion(
        pack_id="acme", version="1.0.0", content={"a": 1}, content_hash="h", published_by="test"
    )
    session.add_all([pack, version])
    session.flush()
    pack.active_version_id = version.id
    session.commit()
    return version


def test_a_published_pack_version_cannot_be_changed_or_deleted(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        version = _publish(session)
        version.content = {"a": 2}
        with pytest.raises(PublishedVersionImmutable, match="install a new version"):
            session.flush()
        session.rollback()
        session.delete(session.get(PackVersion, version.id))
        with pytest.raises(PublishedVersionImmutable):
            session.flush()


def test_amounts_are_exact_to_the_cent_when_summed(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        version = _publish(session)
        team = Team(key="t", name="T")
        user = User(username="rep", display_name="Rep")
        session.add_all([team, user])
        session.flush()
        session.add(
            Membership(user_id=user.id, team_id=team.id, role="rep", valid_from=date(2025, 1, 1))
        )
        for _ in range(1000):
            record = Record(
                pack_id="acme",
                pack_version_id=version.id,
                form_id="deal",
                owner_id=user.id,
                team_id=team.id,
            )
            record.amount = Decimal("0.10")
            session.add(record)
        session.commit()
        total = session.scalar(select(func.sum(Record.amount_cents)))
        assert Decimal(total) / 100 == Decimal("100.00")
        assert session.scalars(select(Record)).first().amount == Decimal("0.10")


def test_the_models_and_the_migrations_describe_the_same_schema(db_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from quotaflow.models import Base

    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": False})
            diffs = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert diffs == []


# --- SQLite: writers queue on a file lock ------------------------------------------------------


def test_sqlite_writers_take_turns_and_none_is_lost(tmp_path: Path) -> None:
    """Several workers saving at once on the embedded database: every save lands, none ends in
    'database is locked', and a writer waiting for its turn starts as soon as it is free."""
    import threading
    import time

    from sqlalchemy import text

    url = f"sqlite:///{tmp_path / 'busy.db'}"
    db.upgrade(url)
    engines = [db.make_engine(url) for _ in range(4)]  # one per "worker process"
    errors: list[BaseException] = []

    def save(engine: object, n: int) -> None:
        try:
            for _ in range(25):
                with engine.begin() as conn:  # type: ignore[attr-defined]
                    conn.execute(text("INSERT INTO data_changes (at) VALUES (:at)"), {"at": "x"})
                    conn.execute(text("SELECT COUNT(*) FROM data_changes")).scalar()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(e, n)) for n, e in enumerate(engines)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    with engines[0].connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM data_changes")).scalar() == 100

    # one writer holds its turn for 0.2 s; the next waits in the queue (not inside SQLite's
    # busy handler, which sleeps up to 100 ms at a time) and goes when the turn is given back
    first, second = engines[0].connect(), engines[1].connect()
    second_raw = second.connection.dbapi_connection
    first.execute(text("INSERT INTO data_changes (at) VALUES ('held')"))
    waited: list[float] = []

    def wait_and_write() -> None:
        start = time.monotonic()
        with second.begin():
            second.execute(text("INSERT INTO data_changes (at) VALUES ('next')"))
        waited.append(time.monotonic() - start)

    thread = threading.Thread(target=wait_and_write)
    thread.start()
    time.sleep(0.2)
    assert not waited, "the second writer did not wait for the first"
    assert not second_raw.in_transaction  # type: ignore[union-attr]  # queued before SQLite
    first.commit()
    thread.join(timeout=5)
    assert waited and waited[0] > 0.15
    assert Path(f"{tmp_path / 'busy.db'}-writers").exists()
    first.close()
    second.close()
    for engine in engines:
        engine.dispose()


# --- how a request's transaction ends; pooled connections -----------------------------------


def test_only_a_transaction_that_merely_read_counts_as_read_only(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        session.scalars(select(User)).all()
        assert db.read_only(session)
        session.add(Team(key="north", name="North"))
        assert not db.read_only(session)  # pending
        session.flush()
        assert not db.read_only(session)  # written, not yet committed
        session.rollback()
    with sessions() as session:
        assert not db.read_only(session)  # no transaction at all


def test_a_request_that_wrote_and_then_failed_keeps_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Read-only requests end with COMMIT (psycopg keeps its prepared statements); one that
    flushed a change and then answered an error must still be rolled back."""
    from quotaflow.web import request_session

    @app.get("/__half_written")
    def half_written():  # type: ignore[no-untyped-def]
        session = request_session()
        session.add(Team(key="half", name="Half"))
        session.flush()
        return "refused", 400

    from quotaflow import auth

    auth.PUBLIC_ENDPOINTS = auth.PUBLIC_ENDPOINTS | {"half_written"}
    try:
        assert client.get("/__half_written").status_code == 400
    finally:
        auth.PUBLIC_ENDPOINTS = auth.PUBLIC_ENDPOINTS - {"half_written"}
    with app.extensions["quotaflow.sessions"]() as session:
        assert session.scalar(select(func.count()).where(Team.key == "half")) == 0


def test_a_pooled_postgresql_connection_that_died_while_idle_is_replaced(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    url = pg_server.url(_create_pg_database(pg_server))
    engine = db.make_engine(url, pool_size=1, max_overflow=0)
    killer = db.make_engine(url, isolation_level="AUTOCOMMIT")

    def kill_pooled_connection() -> None:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
        with killer.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    kill_pooled_connection()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # idle long enough to be checked
    with engine.connect() as conn:
        assert conn.execute(text("SELECT 1")).scalar() == 1
    kill_pooled_connection()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)  # in steady use: not checked
    conn = engine.connect()
    with pytest.raises(SQLAlchemyError):  # the one request that meets the dead connection
        conn.execute(text("SELECT 1"))
    conn.invalidate()
    conn.close()
    with engine.connect() as conn:  # and the pool was renewed after that one failure
        assert conn.execute(text("SELECT 1")).scalar() == 1
    engine.dispose()
    killer.dispose()
