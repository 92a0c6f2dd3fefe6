"""Everyone's own account page: their teams and roles, and changing their own password."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from quotaflow.audit.models import AuditEvent
from tests.conftest import TEST_PASSWORD, AuthActions

NEW = "brand-new-pass-1"


def change(auth: AuthActions, current: str, new: str = NEW, confirm: str | None = None):  # type: ignore[no-untyped-def]
    return auth.post(
        "/account/password",
        {"current": current, "password": new, "confirm": new if confirm is None else confirm},
    )


@pytest.fixture
def li(make_user) -> int:  # type: ignore[no-untyped-def]
    return make_user("li.wei", team="east", role="account_manager").id


def test_the_account_page_shows_ones_teams_with_the_packs_role_labels(
    app: Flask, auth: AuthActions, li: int
) -> None:
    from quotaflow import db
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.validate import load_pack
    from quotaflow.resources import stock_pack_dir

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
    auth.login("li.wei")
    home = auth.client.get("/").get_data(as_text=True)
    assert 'href="/account"' in home  # the name in the top bar leads there
    page = auth.client.get("/account").get_data(as_text=True)
    assert "li.wei" in page
    assert 'data-team="east"' in page
    assert "<td>Account manager</td>" in page  # the stock pack's label, not the role's name
    assert "At least 8 characters." in page  # the rule, before anyone breaks it
    auth.post("/locale", {"locale": "zh", "next": "/account"})
    assert "<td>客户经理</td>" in auth.client.get("/account").get_data(as_text=True)


def test_changing_ones_password_keeps_this_session_and_ends_the_others(
    app: Flask, auth: AuthActions, li: int
) -> None:
    other = AuthActions(app.test_client())  # the same person on another device
    assert other.login("li.wei").status_code == 302
    auth.login("li.wei")
    done = change(auth, TEST_PASSWORD)
    assert done.status_code == 302 and done.headers["Location"] == "/account"
    page = auth.client.get("/account")
    assert page.status_code == 200  # still signed in here
    assert "Your password is changed." in page.get_data(as_text=True)
    assert other.client.get("/").status_code == 302  # signed out there: to the sign-in page
    auth.logout()
    assert auth.login("li.wei", TEST_PASSWORD).status_code == 200  # the old one is refused
    assert auth.login("li.wei", NEW).status_code == 302
    with app.extensions["quotaflow.sessions"]() as session:
        assert "password_change" in set(session.scalars(select(AuditEvent.action)))


def test_a_wrong_current_password_or_a_bad_new_one_changes_nothing_and_says_why(
    auth: AuthActions, li: int
) -> None:
    auth.login("li.wei")
    wrong = change(auth, "not-my-password")
    assert wrong.status_code == 400
    assert "This is not your current password." in wrong.get_data(as_text=True)
    differ = change(auth, TEST_PASSWORD, confirm="something-else-1")
    assert differ.status_code == 400 and "The passwords differ." in differ.get_data(as_text=True)
    short = change(auth, TEST_PASSWORD, new="x")
    assert short.status_code == 400
    auth.logout()
    assert auth.login("li.wei", TEST_PASSWORD).status_code == 302  # the password stands


def test_guessing_the_current_password_hits_the_sign_in_limit(
    app: Flask, auth: AuthActions, li: int
) -> None:
    # a session left open on a shared computer must not be a way round the sign-in limit
    app.config["LOGIN_MAX_FAILURES"] = 3
    auth.login("li.wei")
    for _ in range(3):
        assert change(auth, "a-guess-at-it").status_code == 400
    throttled = change(auth, TEST_PASSWORD)  # even the right one, now
    assert throttled.status_code == 429
    assert "Too many failed attempts" in throttled.get_data(as_text=True)
    auth.logout()
    assert auth.login("li.wei", NEW).status_code == 429  # and nothing changed


def test_an_admin_setting_their_own_password_stays_signed_in(auth: AuthActions, make_user) -> None:  # type: ignore[no-untyped-def]
    boss = make_user("boss", is_admin=True).id
    auth.login("boss")
    done = auth.post(f"/admin/users/{boss}/password", {"password": NEW, "confirm": NEW})
    assert done.status_code == 302
    assert auth.client.get(f"/admin/users/{boss}").status_code == 200
