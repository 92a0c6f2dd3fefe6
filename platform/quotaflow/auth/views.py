"""Sign-in and sign-out pages."""

from __future__ import annotations

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user, logout_user

from quotaflow.auth import SignedInUser
from quotaflow.auth.forms import LoginForm
from quotaflow.auth.services import LoginPolicy, Outcome, authenticate, record_logout, safe_next
from quotaflow.web import request_session
from quotaflow.web.i18n import LANGUAGES

bp = Blueprint("auth", __name__)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """Show the sign-in form; on a good password, sign in and go where the person was heading."""
    form = LoginForm(next=request.args.get("next", ""))
    target = safe_next(form.next.data) or url_for("core.home")
    if current_user.is_authenticated and request.method == "GET":
        return redirect(target)
    if not form.validate_on_submit():
        return render_template("auth/login.html", form=form)
    db = request_session()
    result = authenticate(
        db, form.username.data or "", form.password.data or "", client_ip(), policy=policy()
    )
    chosen = session.get("locale")
    if result.outcome is Outcome.OK and result.user is not None and chosen in LANGUAGES:
        result.user.locale = chosen  # the language picked on this page is their choice now
    db.commit()
    if result.outcome is Outcome.OK and result.user is not None:
        session.clear()  # a fresh session (and CSRF token) for the signed-in person
        login_user(SignedInUser.of(result.user))
        return redirect(target)
    form.password.data = ""
    status = 200
    if result.outcome is Outcome.THROTTLED:
        minutes = max(1, (result.retry_after + 59) // 60)
        error = _("Too many failed attempts. Try again in %(minutes)d minutes.", minutes=minutes)
        status = 429
    elif result.outcome is Outcome.INACTIVE:
        error = _("This account has been deactivated. Ask an administrator.")
    else:
        error = _("Wrong username or password.")
    response = current_app.make_response(
        (render_template("auth/login.html", form=form, error=error), status)
    )
    if result.outcome is Outcome.THROTTLED:
        response.headers["Retry-After"] = str(result.retry_after)
    return response


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Sign out (POST only, CSRF-protected, so a link on another site cannot sign anyone out)."""
    db = request_session()
    record_logout(db, current_user.username, client_ip())
    db.commit()
    logout_user()
    session.clear()
    flash(_("You have signed out."), "info")
    return redirect(url_for("auth.login"))


def client_ip() -> str:
    """The client's address (behind a proxy, wrap the app in werkzeug's ProxyFix)."""
    return request.remote_addr or "unknown"


def policy() -> LoginPolicy:
    """Rate-limit settings (QUOTAFLOW_LOGIN_MAX_FAILURES, QUOTAFLOW_LOGIN_WINDOW_MINUTES)."""
    from datetime import timedelta

    cfg = current_app.config
    return LoginPolicy(
        max_failures=int(cfg.get("LOGIN_MAX_FAILURES", 5)),
        max_failures_per_ip=int(cfg.get("LOGIN_MAX_FAILURES_PER_IP", 50)),
        window=timedelta(minutes=float(cfg.get("LOGIN_WINDOW_MINUTES", 15))),
    )
