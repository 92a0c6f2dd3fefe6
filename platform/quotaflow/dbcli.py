"""`quotaflow db upgrade`, `quotaflow serve`, `quotaflow demo`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import click
from sqlalchemy import select

from quotaflow import db
from quotaflow.config import settings_from_env
from quotaflow.errors import QuotaflowError
from quotaflow.resources import stock_pack_dir


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="heads", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the database (DATABASE_URL, default SQLite in the instance folder)."""
    settings = settings_from_env()
    db.upgrade(settings.database_url, revision)
    click.echo(f"Database is at migration {revision}.")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1))
@click.option(
    "--timeout",
    default=300,
    show_default=True,
    type=click.IntRange(min=1),
    help="Seconds a request may take (a large import through the admin page takes minutes).",
)
def serve_command(host: str, port: int, workers: int, timeout: int) -> None:
    """Serve the app with gunicorn's sync workers, as in production and in bench/forms.py."""
    from quotaflow.app import create_app

    # Built once here first: a database that is not ready is reported, with its fix, before
    # any worker starts (each worker then builds its own app and connections after the fork).
    create_app().extensions["quotaflow.engine"].dispose()
    run_gunicorn(
        create_app,
        {"bind": f"{host}:{port}", "workers": workers, "worker_class": "sync", "timeout": timeout},
    )


def run_gunicorn(factory: Callable[[], Any], options: dict[str, Any]) -> None:
    """gunicorn from our own command rather than its command line (imported only here: the
    other commands need none of it)."""
    from gunicorn.app.base import BaseApplication

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)
            if "control_socket_disable" in self.cfg.settings:  # gunicorn 25+: no socket in ~
                self.cfg.set("control_socket_disable", True)

        def load(self) -> Any:
            return factory()

    Server().run()


DEMO_ACTOR = "demo"


def refreshed_stock_pack(session: Any) -> list[str]:
    """Bring a demo database's stock pack up to the one this Quotaflow ships, when nobody has
    installed or published another version since the demo did; what happened, in lines.

    Without it a demo database made by an older Quotaflow kept serving the older stock pack
    (labels, formulas) after an update, and nothing said why. A version someone else
    published is never replaced: that is their pack now."""
    from quotaflow.packs.install import InstallRefused, install_pack
    from quotaflow.packs.models import Pack
    from quotaflow.packs.validate import load_pack

    pack = load_pack(stock_pack_dir())
    installed = session.get(Pack, pack.id)
    current = installed.active_version if installed is not None else None
    if current is None or current.content_hash == pack.content_hash:
        return []
    if current.published_by != DEMO_ACTOR:
        return [
            f"The stock pack {pack.id} shipped with this Quotaflow differs from the installed "
            f"version {current.version} (published by {current.published_by}); it is left as "
            f"it is. To take the shipped one: quotaflow pack install {stock_pack_dir()}"
        ]
    try:
        plan = install_pack(session, pack, actor=DEMO_ACTOR)
    except InstallRefused as refused:
        return [
            f"The stock pack {pack.id} shipped with this Quotaflow could not replace the "
            "installed one; the demo keeps the installed version.",
            str(refused),
        ]
    return ["Updated the demo's stock pack to the one this Quotaflow ships:", *plan.lines()]


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when a pack is already installed.")
@click.option("--seed", default=2027, show_default=True, type=int)
@click.option(
    "--today",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Pretend today is this date (default: today).",
)
def demo_command(if_empty: bool, seed: int, today: datetime | None) -> None:
    """Install the stock pack and reproducible demo data: org, logins, activity since January
    of last year."""
    from quotaflow.demo import DEMO_PASSWORD, load_demo_data, rep_count
    from quotaflow.org.models import User
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.services import active_pack, active_version, installed_packs
    from quotaflow.packs.validate import load_pack

    sessions = db.open_sessions(settings_from_env().database_url)
    with db.transaction(sessions) as session:
        has_users = session.scalar(select(User.id).limit(1)) is not None
        if if_empty and (installed_packs(session) or has_users):
            click.echo("The database already has data; demo not loaded again.")
            for line in refreshed_stock_pack(session):
                click.echo(line)
            if session.scalar(select(User.id).where(User.username == "admin")) is not None:
                click.echo(
                    f"Demo logins: admin, head.of.sales, wang.fang (manager), li.wei (rep); "
                    f"password {DEMO_PASSWORD}"
                )
            return
        if has_users:
            raise QuotaflowError(
                "The database already has users; demo data goes into an empty database "
                "(point DATABASE_URL at a new one)."
            )
        pack = load_pack(stock_pack_dir())
        install_pack(session, pack, actor=DEMO_ACTOR)
        version = active_version(session, pack.id)
        from quotaflow.kpis import rollups

        compiled = active_pack(session, pack.id)
        with (
            click.progressbar(length=rep_count(), label="Demo reps") as bar,
            rollups.deferred(session, compiled),
        ):
            result = load_demo_data(
                session,
                pack_id=pack.id,
                pack_version_id=version.id,
                seed=seed,
                today=(today or datetime.now()).date(),
                progress=bar.update,
            )
        from quotaflow.scorecards.demo import load_demo_appraisal

        appraisal = load_demo_appraisal(session, pack, (today or datetime.now()).date(), seed)
    click.echo(f"Installed {pack.summary()}")
    click.echo(
        f"Demo data: {result.deals} deals, {result.visits} visits, {result.payments} payments."
    )
    click.echo(f"Demo appraisal: {appraisal.period}, rated, closed and published.")
    click.echo(f"Demo logins (password for all: {DEMO_PASSWORD}):")
    for login in result.logins[:6]:
        click.echo(f"  {login.username:<16} {login.role:<16} {login.team}")
    click.echo(f"  ... and {len(result.logins) - 6} more (managers and reps)")
