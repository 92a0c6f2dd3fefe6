"""Sign-in: passwords, inactive users, database rate limiting, audit, redirects, sign-out."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.auth.models import LoginAttempt
from quotaflow.auth.services import LoginPolicy, Outcome, authenticate, safe_next
from quotaflow.org.models import User
from quotaflow.org.services import set_active, set_password
from quotaflow.timeutil import utcnow
from tests.conftest import TEST_PASSWORD, AuthActions, csrf_token


def _events(app: Flask, action: str) -> list[AuditEvent]:
    with app.extensions["quotaflow.sessions"]() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def _failures(app: Flask) -> int:
    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalar(select(func.count()).select_from(LoginAttempt)) or 0


def test_anonymous_visitor_is_sent_to_sign_in_with_next(client: FlaskClient) -> None:
    response = client.get("/admin/users?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/admin/users?page%3D2"


def test_login_page_has_form_with_csrf_and_no_inline_script(client: FlaskClient) -> None:
    page = client.get("/login").get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page
    assert 'name="csrf_token"' in page
    assert "<script>" not in page and " style=" not in page


def test_sign_in_goes_to_next_and_is_audited(app: Flask, auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    response = auth.login("li.wei", next="/admin/teams")
    assert response.status_code == 302 and response.headers["Location"] == "/admin/teams"
    assert auth.client.get("/__no_such_page__").status_code == 404  # signed in: no redirect
    (event,) = _events(app, "login")
    assert event.actor == "li.wei" and event.details["ip"] == "127.0.0.1"


def test_username_is_not_case_sensitive(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    assert auth.login("  Li.Wei ").headers["Location"] == "/"


@pytest.mark.parametrize("username", ["li.wei", "nobody"])
def test_wrong_password_or_unknown_user_get_the_same_message(
    app: Flask, auth: AuthActions, make_user, username: str
) -> None:
    make_user("li.wei")
    response = auth.login(username, "wrong-password")
    assert response.status_code == 200
    assert "Wrong username or password." in response.get_data(as_text=True)
    assert 'value="wrong-password"' not in response.get_data(as_text=True)
    (event,) = _events(app, "login_failed")
    assert event.object_id == username
    assert _failures(app) == 1


def test_inactive_user_is_refused(app: Flask, auth: AuthActions, make_user) -> None:
    make_user("gone", is_admin=False)
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        set_active(session.scalars(select(User).where(User.username == "gone")).one(), False)
    response = auth.login("gone")
    assert response.status_code == 200
    assert "deactivated" in response.get_data(as_text=True)
    assert auth.client.get("/").status_code == 302


def test_five_failures_lock_that_username_from_that_address(
    app: Flask, auth: AuthActions, make_user
) -> None:
    make_user("li.wei")
    make_user("zhang.min")
    for _ in range(5):
        assert auth.login("li.wei", "bad-password").status_code == 200
    locked = auth.login("li.wei")  # even the right password is not checked now
    assert locked.status_code == 429
    assert "Too many failed attempts" in locked.get_data(as_text=True)
    assert 800 < int(locked.headers["Retry-After"]) <= 901
    assert _events(app, "login_throttled")
    assert auth.login("zhang.min").status_code == 302  # another account is not affected


def test_the_lock_is_shared_through_the_database(app: Flask, make_user) -> None:
    """Two apps (two workers) on one database see the same failures."""
    make_user("li.wei")
    other_worker = app.test_client()
    for _ in range(5):
        AuthActions(app.test_client()).login("li.wei", "bad-password")
    assert AuthActions(other_worker).login("li.wei").status_code == 429


def test_failures_age_out_and_success_resets_them(sessions, app: Flask, make_user) -> None:
    make_user("li.wei")
    policy = LoginPolicy(max_failures=3, window=timedelta(minutes=15))
    start = utcnow()
    with db.transaction(sessions) as session:
        for minute in range(3):
            result = authenticate(
                session,
                "li.wei",
                "bad",
                "10.0.0.1",
                policy=policy,
                now=start + timedelta(minutes=minute),
            )
            assert result.outcome is Outcome.BAD_CREDENTIALS
    with db.transaction(sessions) as session:
        later = start + timedelta(minutes=10)
        throttled = authenticate(
            session, "li.wei", TEST_PASSWORD, "10.0.0.1", policy=policy, now=later
        )
        assert throttled.outcome is Outcome.THROTTLED
        assert throttled.retry_after == 301  # the first failure ages out at start + 15 min
        elsewhere = authenticate(session, "li.wei", "bad", "10.0.0.2", policy=policy, now=later)
        assert elsewhere.outcome is Outcome.BAD_CREDENTIALS
    with db.transaction(sessions) as session:
        after = start + timedelta(minutes=15, seconds=1)
        ok = authenticate(session, "li.wei", TEST_PASSWORD, "10.0.0.1", policy=policy, now=after)
        assert ok.outcome is Outcome.OK
        left = session.scalar(
            select(func.count()).select_from(LoginAttempt).where(LoginAttempt.ip == "10.0.0.1")
        )
        assert left == 0


def test_many_usernames_from_one_address_are_throttled_too(sessions, make_user) -> None:
    policy = LoginPolicy(max_failures=5, max_failures_per_ip=4)
    now = utcnow()
    with db.transaction(sessions) as session:
        outcomes = [
            authenticate(session, f"guess{i}", "x", "10.9.9.9", policy=policy, now=now).outcome
            for i in range(5)
        ]
    assert outcomes == [Outcome.BAD_CREDENTIALS] * 4 + [Outcome.THROTTLED]


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "javascript:alert(1)",
        "http:/evil.example",
        "/%0d%0aSet-Cookie:x=1",  # harmless (still a path) but must not become a header
        "\t//evil.example",
        "evil.example",
        "",
    ],
)
def test_no_open_redirect_after_sign_in(auth: AuthActions, make_user, target: str) -> None:
    make_user("li.wei")
    location = auth.login("li.wei", next=target).headers["Location"]
    assert location in {"/", target}
    assert location.startswith("/") and not location.startswith("//")
    assert "\r" not in location and "\n" not in location


def test_safe_next_accepts_only_same_site_paths() -> None:
    assert safe_next("/admin/users?page=2#x") == "/admin/users?page=2#x"
    for bad in ["//x.example", "/\\x.example", "https://x.example", "x", "/a\nb", None, "/" * 3000]:
        assert safe_next(bad) is None


def test_signed_in_visit_to_login_page_goes_home(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    assert auth.client.get("/login").headers["Location"] == "/"


def test_logout_needs_post_and_a_csrf_token(app: Flask, auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    assert auth.client.get("/logout").status_code == 405
    forged = auth.client.post("/logout")  # what a cross-site form could send
    assert forged.status_code == 400
    assert "This form has expired" in forged.get_data(as_text=True)
    assert auth.client.get("/__no_such_page__").status_code == 404  # still signed in
    response = auth.logout()
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "You have signed out." in auth.client.get("/login").get_data(as_text=True)
    assert auth.client.get("/").status_code == 302
    assert _events(app, "logout")[0].actor == "li.wei"


def test_login_post_without_csrf_token_is_refused(client: FlaskClient, make_user) -> None:
    make_user("li.wei")
    response = client.post("/login", data={"username": "li.wei", "password": TEST_PASSWORD})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "This form has expired" in page and "Go back" in page
    assert client.get("/").status_code == 302  # not signed in


def test_token_from_another_session_is_refused(app: Flask, client: FlaskClient, make_user) -> None:
    make_user("li.wei")
    stolen = csrf_token(app.test_client())
    data = {"username": "li.wei", "password": TEST_PASSWORD, "csrf_token": stolen}
    client.get("/login")
    assert client.post("/login", data=data).status_code == 400


def test_deactivating_a_user_ends_their_session(app: Flask, auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        set_active(session.scalars(select(User).where(User.username == "li.wei")).one(), False)
    assert auth.client.get("/").status_code == 302


def test_changing_the_password_ends_other_sessions(
    app: Flask, auth: AuthActions, make_user
) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        user = session.scalars(select(User).where(User.username == "li.wei")).one()
        set_password(user, "a-new-password")
    assert auth.client.get("/").status_code == 302


def test_session_cookie_is_httponly_and_samesite_lax(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    cookie = auth.login("li.wei").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_secure_cookies_can_be_required(db_url: str, tmp_path, monkeypatch) -> None:
    from quotaflow.app import create_app
    from quotaflow.config import settings_from_env

    monkeypatch.setenv("QUOTAFLOW_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("QUOTAFLOW_SECURE_COOKIES", "true")
    app = create_app({"TESTING": True}, settings=settings_from_env())
    assert app.config["SESSION_COOKIE_SECURE"] is True
    cookie = app.test_client().get("/login").headers["Set-Cookie"]
    assert "Secure" in cookie


def test_htmx_request_without_sign_in_asks_htmx_to_navigate(client: FlaskClient) -> None:
    response = client.get("/", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_behind_a_trusted_proxy_the_client_address_is_used(app: Flask, make_user) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # what QUOTAFLOW_TRUSTED_PROXIES=1 does
    make_user("li.wei")
    for _ in range(5):
        client = app.test_client()
        client.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
        AuthActions(client).login("li.wei", "bad-password")
    other = app.test_client()
    other.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.8"
    assert AuthActions(other).login("li.wei").status_code == 302
    (event, *_) = _events(app, "login_failed")
    assert event.details["ip"] == "203.0.113.7"


def test_trusted_proxies_setting_installs_proxy_fix(db_url: str, tmp_path, monkeypatch) -> None:
    from werkzeug.middleware.proxy_fix import ProxyFix

    from quotaflow.app import create_app
    from quotaflow.config import settings_from_env

    monkeypatch.setenv("QUOTAFLOW_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("QUOTAFLOW_TRUSTED_PROXIES", "1")
    app = create_app({"TESTING": True}, settings=settings_from_env())
    assert isinstance(app.wsgi_app, ProxyFix)
