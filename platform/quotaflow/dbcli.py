"""`quotaflow db upgrade`, `quotaflow serve`, `quotaflow demo`."""

from __future__ import annotations

import click

from quotaflow import db
from quotaflow.config import settings_from_env


@click.group("db")
def db_group() -> None:
    """Manage the database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Create or migrate the database (DATABASE_URL, default SQLite in the instance folder)."""
    settings = settings_from_env()
    db.upgrade(settings.database_url, revision)
    click.echo(f"Database is at migration {revision}.")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
def serve_command(host: str, port: int) -> None:
    """Serve the app with Flask's server (use gunicorn 'quotaflow:create_app()' in production)."""
    from quotaflow.app import create_app

    app = create_app()
    app.run(host=host, port=port, debug=False, use_reloader=False)


@click.command("demo")
@click.option("--if-empty", is_flag=True, help="Do nothing when a pack is already installed.")
@click.option("--seed", default=2027, show_default=True, type=int)
def demo_command(if_empty: bool, seed: int) -> None:
    """Install the stock pack and reproducible demo data."""
    raise click.ClickException("demo data is not built yet")
