"""Web area: blueprints, per-request session, error pages."""

from __future__ import annotations

from flask import Flask, g
from sqlalchemy.orm import Session


def init_app(app: Flask) -> None:
    """Register blueprints and the one-session-per-request lifecycle."""
    from quotaflow.web import views

    app.register_blueprint(views.bp)
    app.teardown_appcontext(_close_session)


def request_session() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    from flask import current_app

    if "db_session" not in g:
        g.db_session = current_app.extensions["quotaflow.sessions"]()
    return g.db_session


def _close_session(_exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()
