"""Session cookies with their signing remembered: a cookie seen before opens without a new
signature check, yet a changed byte or an expired cookie is still refused, and a cookie sent
again for the same content is one any other worker (plain Flask) accepts."""

from __future__ import annotations

import re
import time

import pytest
from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from quotaflow.web.cookie_session import REUSE_S, KeptCookieSessionInterface
from tests.conftest import AuthActions
from tests.test_config_cache import rep  # noqa: F401  (a fixture: li.wei signed in)

HOME = "/forms/acme/deal/new"


def cookie(auth: AuthActions) -> str:
    found = auth.client.get_cookie("session")
    assert found is not None
    return found.value


def signed_in(auth: AuthActions) -> bool:
    return auth.client.get(HOME).status_code == 200


def later(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    now = time.time() + seconds
    monkeypatch.setattr(time, "time", lambda: now)


def test_the_app_uses_the_remembering_interface(app: Flask) -> None:
    assert isinstance(app.session_interface, KeptCookieSessionInterface)


def test_a_changed_byte_is_refused_after_the_genuine_cookie_was_opened(
    rep: AuthActions,  # noqa: F811
) -> None:
    assert signed_in(rep)  # the genuine cookie is now remembered
    genuine = cookie(rep)
    rep.client.set_cookie("session", forged(genuine))
    assert not signed_in(rep)
    rep.client.set_cookie("session", genuine)
    assert signed_in(rep)


def test_an_expired_cookie_is_refused_though_remembered(
    app: Flask,
    rep: AuthActions,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app.permanent_session_lifetime = 600  # type: ignore[assignment]
    assert signed_in(rep)
    later(monkeypatch, 300)
    assert signed_in(rep)
    later(monkeypatch, 601)
    assert not signed_in(rep)


def test_a_cookie_sent_again_is_genuine_and_renewed_after_a_while(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = app.session_interface.get_signing_serializer(app)
    plain = SecureCookieSessionInterface().get_signing_serializer(app)
    assert plain is not None
    content = {"_user_id": "4:abc", "csrf_token": "f" * 40}
    first = kept.dumps(content)
    assert kept.dumps(dict(content)) == first  # the same content, signed moments ago
    assert plain.loads(first) == content  # any worker accepts it
    assert kept.dumps({**content, "_fresh": False}) != first
    later(monkeypatch, REUSE_S + 1)
    renewed = kept.dumps(content)
    assert renewed != first and plain.loads(renewed) == content


def test_a_cookie_signed_with_a_retired_key_is_signed_anew(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = SecureCookieSessionInterface().get_signing_serializer(app)
    assert old is not None
    content = {"_user_id": "4:abc"}
    from_client = old.dumps(content)
    app.config["SECRET_KEY_FALLBACKS"] = [app.secret_key]
    app.secret_key = "a new secret key, the old one retired"
    kept = app.session_interface.get_signing_serializer(app)
    assert kept.loads(from_client) == content  # still accepted under the fallback
    resent = kept.dumps(content)
    assert resent != from_client
    app.config["SECRET_KEY_FALLBACKS"] = []
    current = SecureCookieSessionInterface().get_signing_serializer(app)
    assert current is not None and current.loads(resent) == content


def test_a_short_session_lifetime_is_never_shortened_by_a_resent_cookie(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.permanent_session_lifetime = 30  # type: ignore[assignment]
    kept = app.session_interface.get_signing_serializer(app)
    content = {"_user_id": "4:abc"}
    first = kept.dumps(content)
    later(monkeypatch, 5)
    assert kept.dumps(content) != first  # under 10 x REUSE_S of lifetime: always signed anew


def page_token(auth: AuthActions) -> str:
    page = auth.client.get(HOME).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def forged(token: str) -> str:
    """`token` with its signature's first character changed: all six of its bits count (the
    last one's low bits are padding: changing A to B there can leave the same signature)."""
    head, _, signature = token.rpartition(".")
    return f"{head}.{'A' if signature[0] != 'A' else 'B'}{signature[1:]}"


def saves(auth: AuthActions, token: str) -> bool:
    """A POST carrying `token` passes the CSRF check (the language switch answers 302)."""
    form = {"csrf_token": token, "locale": "en", "next": HOME}
    return auth.client.post("/locale", data=form).status_code == 302


def test_a_pages_csrf_token_is_sent_again_for_a_while_and_each_is_accepted(
    rep: AuthActions,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = page_token(rep)
    later(monkeypatch, 5)
    assert page_token(rep) == first  # the same session token, signed moments ago
    assert saves(rep, first)
    later(monkeypatch, REUSE_S + 1)
    renewed = page_token(rep)
    assert renewed != first and saves(rep, renewed)
    assert not saves(rep, forged(renewed))


def test_a_csrf_token_is_never_sent_again_to_another_session(
    app: Flask,
    rep: AuthActions,  # noqa: F811
) -> None:
    mine = page_token(rep)  # the session holds its raw token from the first page on
    other = AuthActions(app.test_client())
    assert other.login("li.wei").status_code == 302  # the same rep in a second browser
    page_token(other)
    theirs = page_token(other)  # the one kept last
    assert page_token(rep) == mine != theirs and not saves(rep, theirs)


def test_a_short_csrf_time_limit_gets_a_new_signature_on_every_page(
    app: Flask,
    rep: AuthActions,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app.config["WTF_CSRF_TIME_LIMIT"] = 300
    first = page_token(rep)
    later(monkeypatch, 31)  # a tenth of the limit: a token this old is not sent again
    assert page_token(rep) != first


def test_a_remembered_cookie_opens_to_its_own_content_each_time(app: Flask) -> None:
    """What one request does to its session never reaches the next opening of that cookie,
    whether the content is plain scalars (copied) or tagged values (decoded afresh)."""
    from datetime import UTC, datetime

    kept = app.session_interface.get_signing_serializer(app)
    plain = {"_user_id": "4:abc", "_fresh": True, "n": 3, "share": 0.5, "none": None}
    tagged = {"_flashes": [("info", "Saved.")], "at": datetime(2026, 11, 29, tzinfo=UTC)}
    for content in (plain, tagged):
        cookie = kept.dumps(content)
        for _ in range(2):  # the second time from what was remembered
            opened = kept.loads(cookie)
            assert opened == content
            opened["_user_id"] = "changed"
            opened.setdefault("_flashes", []).append(("error", "x"))


class CountedChecks:
    """Counts Flask-WTF's full CSRF checks (signature and all)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import flask_wtf.csrf

        self.count = 0
        check = flask_wtf.csrf.validate_csrf

        def counted(*args: object, **kwargs: object) -> None:
            self.count += 1
            check(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(flask_wtf.csrf, "validate_csrf", counted)


def _signed_elsewhere() -> None:
    """As if another worker had signed the tokens: this process forgets its own."""
    from quotaflow.web import cookie_session

    cookie_session._CSRF_SIGNED.clear()
    cookie_session._CSRF_CHECKED.clear()


def test_a_token_this_process_signed_or_checked_is_not_checked_again(
    rep: AuthActions,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checks = CountedChecks(monkeypatch)
    token = page_token(rep)
    assert saves(rep, token) and checks.count == 0  # signed here moments ago
    _signed_elsewhere()
    assert saves(rep, token) and checks.count == 1  # checked in full once...
    assert saves(rep, token) and checks.count == 1  # ...and then known
    assert not saves(rep, forged(token)) and checks.count == 2


def test_a_known_token_is_refused_past_the_time_limit_or_under_a_new_secret(
    app: Flask,
    rep: AuthActions,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    signed_here = page_token(rep)
    _signed_elsewhere()
    checked = page_token(rep)
    assert saves(rep, checked)  # now known as checked; signed_here is not known at all
    _signed_elsewhere()
    kept = page_token(rep)  # known as signed here
    later(monkeypatch, 3601)
    assert not saves(rep, kept) and not saves(rep, checked) and not saves(rep, signed_here)
    monkeypatch.undo()
    app.config["WTF_CSRF_TIME_LIMIT"] = 3600
    fresh = page_token(rep)
    assert saves(rep, fresh)
    app.config["WTF_CSRF_SECRET_KEY"] = "another secret: every token signed before is void"
    assert not saves(rep, fresh)


def test_a_token_known_for_one_session_is_refused_in_another(
    app: Flask,
    rep: AuthActions,  # noqa: F811
) -> None:
    other = AuthActions(app.test_client())
    assert other.login("li.wei").status_code == 302  # the same rep in a second browser
    theirs = page_token(other)
    _signed_elsewhere()
    assert saves(other, theirs)  # checked in full, known for their session
    page_token(rep)
    assert not saves(rep, theirs)
