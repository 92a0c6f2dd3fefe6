"""The new-record form is rendered once per person and kept while the set-up holds: the kept
page must be exactly the page rendered afresh, carry the asking session's own CSRF token, show
each person their own name, follow a change made through another worker, and still show a
message waiting to be flashed (once)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from flask import Flask, template_rendered
from sqlalchemy import select

from quotaflow import db
from quotaflow.org.models import User
from quotaflow.web import pagecache
from tests.conftest import AuthActions
from tests.test_config_cache import other_worker  # noqa: F401  (a fixture)
from tests.test_forms_web import make_installer, make_people, version_id

NEW_DEAL = "/forms/acme/deal/new"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def reps(app: Flask, tmp_path: Path, make_user) -> tuple[AuthActions, AuthActions]:  # type: ignore[no-untyped-def]
    make_people(app, make_user)
    make_installer(app, tmp_path)()
    signed_in = []
    for username in ("li.wei", "zhang.min"):
        auth = AuthActions(app.test_client())
        assert auth.login(username).status_code == 302
        signed_in.append(auth)
    return signed_in[0], signed_in[1]


@contextmanager
def renders(app: Flask) -> Iterator[list[str]]:
    """The templates rendered inside the block."""
    names: list[str] = []

    def note(_sender: Flask, template: object, **_extra: object) -> None:
        names.append(getattr(template, "name", ""))

    template_rendered.connect(note, app)
    try:
        yield names
    finally:
        template_rendered.disconnect(note, app)


def page(auth: AuthActions) -> str:
    response = auth.client.get(NEW_DEAL)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def signed_in_as(html: str) -> str:
    found = re.search(r'<a class="who"[^>]*>([^<]*)</a>', html)
    assert found, "the top bar names who is signed in"
    return found.group(1)


def tokens(html: str) -> set[str]:
    return set(TOKEN.findall(html)) | set(re.findall(r'name="csrf-token" content="([^"]+)"', html))


def test_a_kept_page_is_the_page_rendered_afresh(
    app: Flask, reps: tuple[AuthActions, AuthActions], monkeypatch: pytest.MonkeyPatch
) -> None:
    rep, _ = reps
    page(rep)
    with renders(app) as rendered:
        kept = page(rep)
    assert "records/form.html" not in rendered  # served from the memo
    monkeypatch.setattr(pagecache, "_TOKEN", re.compile("(?!)"))  # no token fits: not kept
    with renders(app) as rendered:
        fresh = page(rep)
    assert "records/form.html" in rendered
    (token,) = tokens(fresh)
    assert len(tokens(kept)) == 1
    assert kept.replace(tokens(kept).pop(), token) == fresh


def test_each_session_gets_its_own_token_and_each_person_their_name(
    app: Flask, reps: tuple[AuthActions, AuthActions]
) -> None:
    rep, mate = reps
    again = AuthActions(app.test_client())  # the same rep signed in on a second device
    assert again.login("li.wei").status_code == 302
    pages = [page(rep), page(again), page(mate)]
    assert len({frozenset(tokens(p)) for p in pages}) == 3
    assert [signed_in_as(p) for p in pages] == ["Li.Wei", "Li.Wei", "Zhang.Min"]
    for auth, html in zip((rep, again, mate), pages, strict=True):
        (token,) = tokens(html)
        saved = auth.client.post(
            NEW_DEAL,
            data={
                "csrf_token": token,
                "pack_version_id": version_id(html),
                "f-customer": "Kept page",
                "f-amount": "100",
            },
        )
        assert saved.status_code == 302, "the token in a kept page is this session's"


def test_a_name_changed_through_another_worker_shows_on_the_next_open(
    app: Flask,
    reps: tuple[AuthActions, AuthActions],
    other_worker: Flask,  # noqa: F811
) -> None:
    rep, _ = reps
    assert signed_in_as(page(rep)) == "Li.Wei"
    with db.transaction(other_worker.extensions["quotaflow.sessions"]) as session:
        user = session.scalars(select(User).where(User.username == "li.wei")).one()
        user.display_name = "Wei Li (renamed)"
    assert signed_in_as(page(rep)) == "Wei Li (renamed)"


def test_a_message_waiting_is_shown_once_on_a_kept_page(
    reps: tuple[AuthActions, AuthActions],
) -> None:
    rep, _ = reps
    page(rep)  # the page is kept
    with rep.client.session_transaction() as cookie:
        cookie["_flashes"] = [("success", "Imported 3 deals.")]
    assert "Imported 3 deals." in page(rep)
    assert "Imported 3 deals." not in page(rep)


def test_the_language_switch_is_not_served_the_other_language(
    reps: tuple[AuthActions, AuthActions],
) -> None:
    rep, _ = reps
    assert 'lang="en"' in page(rep)
    assert rep.post("/locale", {"locale": "zh", "next": NEW_DEAL}).status_code == 302
    html = page(rep)
    assert 'lang="zh"' in html and "保存" in html
    assert rep.post("/locale", {"locale": "en", "next": NEW_DEAL}).status_code == 302
    assert 'lang="en"' in page(rep)


def test_a_query_string_is_served_afresh_and_not_kept(
    app: Flask, reps: tuple[AuthActions, AuthActions]
) -> None:
    rep, _ = reps
    for _ in range(2):
        with renders(app) as rendered:
            assert rep.client.get(f"{NEW_DEAL}?made-up=1").status_code == 200
        assert "records/form.html" in rendered
    assert not [k for k in pagecache._PAGES if "made-up" in str(k)]


def test_the_prefix_the_app_is_mounted_under_gets_its_own_page(
    reps: tuple[AuthActions, AuthActions],
) -> None:
    rep, _ = reps
    under_a = rep.client.get(NEW_DEAL, environ_overrides={"SCRIPT_NAME": "/a"})
    under_b = rep.client.get(NEW_DEAL, environ_overrides={"SCRIPT_NAME": "/b"})
    assert 'action="/a/forms/acme/deal/new"' in under_a.get_data(as_text=True)
    assert 'action="/b/forms/acme/deal/new"' in under_b.get_data(as_text=True)


def test_a_message_is_escaped_in_a_kept_page(reps: tuple[AuthActions, AuthActions]) -> None:
    rep, _ = reps
    page(rep)
    with rep.client.session_transaction() as cookie:
        cookie["_flashes"] = [("success", "<script>alert(1)</script> saved")]
    html = page(rep)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; saved" in html and "<script>alert" not in html
