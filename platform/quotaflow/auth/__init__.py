"""Sign-in area: Flask-Login wiring, the signed-in user, and the gate in front of every page."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, abort, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import AnonymousUserMixin, LoginManager, current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from quotaflow.org.models import User

# Endpoints anyone may reach without signing in. Everything else needs a signed-in user.
PUBLIC_ENDPOINTS = frozenset({"auth.login", "core.healthz", "static", "i18n.set_locale"})

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class SignedInUser:
    """The signed-in person as Flask-Login sees them: plain values, no database session."""

    id: int
    username: str
    display_name: str
    is_admin: bool
    locale: str
    token: str

    is_authenticated = True
    is_anonymous = False
    is_active = True  # inactive users are never loaded (see load_user)

    def get_id(self) -> str:
        return f"{self.id}:{self.token}"

    @classmethod
    def of(cls, user: User) -> SignedInUser:
        from quotaflow.auth.services import session_token

        return cls(
            user.id,
            user.username,
            user.display_name,
            bool(user.is_admin),
            user.locale or "en",
            session_token(user),
        )


class Anonymous(AnonymousUserMixin):
    id = None
    is_admin = False
    locale = None


def init_app(app: Flask) -> None:
    """Flask-Login, the sign-in gate and the auth blueprint."""
    from quotaflow.auth import views

    manager = LoginManager()
    manager.login_view = "auth.login"
    manager.login_message = _l("Please sign in to see this page.")
    manager.login_message_category = "info"
    manager.anonymous_user = Anonymous
    manager.session_protection = "basic"
    manager.user_loader(load_user)
    manager.init_app(app)
    app.before_request(_require_login)
    app.register_blueprint(views.bp)


def load_user(user_id: str) -> SignedInUser | None:
    """The user a session cookie names, if still active and the password has not changed."""
    from quotaflow.config_cache import remembered
    from quotaflow.web import request_session

    raw_id, _, token = user_id.partition(":")
    if not raw_id.isdigit():
        return None
    session = request_session()
    signed_in = remembered(session, ("signed_in", int(raw_id)), lambda: _active(session, raw_id))
    return signed_in if signed_in is not None and signed_in.token == token else None


def _active(session: Session, raw_id: str) -> SignedInUser | None:
    user = session.get(User, int(raw_id))
    return SignedInUser.of(user) if user is not None and user.is_active else None


def _require_login() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS or current_user.is_authenticated:
        return None
    if request.headers.get("HX-Request"):
        # htmx would swap the login page into a fragment; ask it to navigate instead
        response = Response(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    if request.endpoint is None:  # unknown URL: a 404 tells an anonymous visitor nothing
        return None
    target = request.full_path if request.query_string else request.path
    return redirect(url_for("auth.login", next=target))


def admin_required(view: F) -> F:
    """Only admins; everyone else gets 403 (the gate already sent anonymous visitors away)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]
