"""Web area: blueprints, per-request session, error pages."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, has_request_context, request
from sqlalchemy.orm import Session

from quotaflow import config_cache
from quotaflow.db import read_only


def init_app(app: Flask) -> None:
    """Register blueprints and the one-session-per-request lifecycle."""
    from quotaflow.web import views

    app.register_blueprint(views.bp)
    from quotaflow.pipelines import views as pipeline_views

    app.register_blueprint(pipeline_views.bp)  # board, moves, approvals, funnel
    from htmx_flask import Htmx

    from quotaflow.records import views as record_views

    Htmx(app)  # request.htmx
    app.register_blueprint(record_views.bp)  # generated forms: list, create, view, edit
    from quotaflow.leaderboards import views as leaderboard_views

    app.register_blueprint(leaderboard_views.bp)  # rankings with awards
    from quotaflow.scorecards import views as appraisal_views

    app.register_blueprint(appraisal_views.bp)  # the appraisal cycle
    from quotaflow.targets import views as target_views

    app.register_blueprint(target_views.bp)  # target splits and adjustments
    from quotaflow.records import import_views

    app.register_blueprint(import_views.bp)  # /admin/import: upload, map, check, import
    from quotaflow.records import export_views

    app.register_blueprint(export_views.bp)  # a list as .xlsx / .csv
    app.teardown_appcontext(_close_session)
    app.wsgi_app = _StampAsker(app, app.extensions["quotaflow.engine"])  # type: ignore[method-assign]
    _init_foundation(app)


STAMP_ASKED = "quotaflow.config_stamp_asked"  # WSGI environ: the ticket of config_cache.ask_ahead


class _StampAsker:
    """Asks the database for the config stamp as a request arrives (config_cache.ask_ahead),
    so that the request's preamble runs while the answer travels; static files need none."""

    def __init__(self, app: Flask, engine: Any) -> None:
        self.wsgi_app = app.wsgi_app
        self.engine = engine
        self.asks = engine.dialect.name == "postgresql"
        self.static = f"{app.static_url_path}/"

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.asks and not environ.get("PATH_INFO", "").startswith(self.static):
            environ[STAMP_ASKED] = config_cache.ask_ahead(self.engine)
        return self.wsgi_app(environ, start_response)


# --- foundation: security, i18n, sign-in, error pages, org admin (issue 4) -------------------
def _init_foundation(app: Flask) -> None:
    from quotaflow import auth
    from quotaflow.org import views as org_views
    from quotaflow.web import errors, i18n, pagecache, security

    security.init_app(app)  # CSRF on every POST, cookie flags, security headers
    i18n.init_app(app)  # catalogs, locale per request, date/money filters, label()
    pagecache.init_app(app)  # flashed messages in pages kept whole
    auth.init_app(app)  # Flask-Login and the sign-in gate in front of every page
    errors.init_app(app)  # friendly 400/403/404/405/429/500 pages
    app.register_blueprint(org_views.bp)  # /admin/users, /admin/teams
    app.register_blueprint(org_views.account_bp)  # /account: one's own
    from quotaflow.audit import views as audit_views

    app.register_blueprint(audit_views.bp)  # /admin/audit: the audit log
    from quotaflow.packs import views as pack_views

    app.register_blueprint(pack_views.bp)  # /admin/packs: installed packs and versions
    from quotaflow.org import import_views as org_import_views

    app.register_blueprint(org_import_views.bp)  # /admin/org-import: people and teams


# --- end foundation --------------------------------------------------------------------------


def request_session() -> Session:
    """The request's database session, opened on first use and closed at teardown."""
    from flask import current_app

    found: Session | None = g.get("db_session")  # one look through Flask's proxy, not two
    if found is not None:
        return found
    session = g.db_session = current_app.extensions["quotaflow.sessions"]()
    asked = request.environ.pop(STAMP_ASKED, None) if has_request_context() else None
    if asked is not None:
        session.info[config_cache.ASKED] = asked
    return session


def _close_session(exc: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is None:
        return
    if exc is None and session.get_bind().dialect.name == "postgresql" and read_only(session):
        # End a reading transaction with COMMIT, not ROLLBACK: the same one round trip, and
        # no rollback for anything to react to (psycopg's own preparing used to deallocate
        # every prepared statement on one; it is off now, see together.py)
        session.commit()
    session.close()  # anything written but not committed is rolled back here
