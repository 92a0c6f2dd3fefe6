"""Security: every route for every role, CSRF, security headers, error pages, escaping."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.exceptions import TooManyRequests
from werkzeug.test import TestResponse

from quotaflow.web.security import CSP, HEADERS, add_security_headers
from tests.conftest import TEST_PASSWORD, AuthActions, csrf_token

ROLES = ("anonymous", "rep", "manager", "admin")
OK, LOGIN, FORBIDDEN = "ok", "login", "403"
TODAY = date.today().isoformat()


def everyone(outcome: str) -> dict[str, str]:
    return dict.fromkeys(ROLES, outcome)


SIGNED_IN = {"anonymous": LOGIN, "rep": OK, "manager": OK, "admin": OK}
ADMIN_ONLY = {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": OK}
MANAGERS = {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": OK, "admin": OK}

# Every route the app has: (endpoint, method) -> (how to call it, expected outcome per role).
# A route missing here fails test_every_route_is_in_the_table: add it when you add a route.
# `call(ids)` returns (url, form data); ids maps sample names to database ids.
Call = Callable[[dict[str, int]], tuple[str, dict[str, str]]]
ROUTES: dict[tuple[str, str], tuple[Call, dict[str, str]]] = {
    ("static", "GET"): (lambda ids: ("/static/css/app.css", {}), everyone(OK)),
    ("core.healthz", "GET"): (lambda ids: ("/healthz", {}), everyone(OK)),
    ("core.home", "GET"): (lambda ids: ("/", {}), SIGNED_IN),
    ("auth.login", "GET"): (lambda ids: ("/login", {}), everyone(OK)),
    ("auth.login", "POST"): (
        lambda ids: ("/login", {"username": "nobody", "password": "wrong-password"}),
        everyone(OK),
    ),
    ("i18n.set_locale", "POST"): (lambda ids: ("/locale", {"locale": "en"}), everyone(OK)),
    ("account.account", "GET"): (lambda ids: ("/account", {}), SIGNED_IN),
    # one's own new password: this session stays signed in for the routes after it
    ("account.change_password", "POST"): (
        lambda ids: (
            "/account/password",
            {"current": TEST_PASSWORD, "password": "walked-pass-3", "confirm": "walked-pass-3"},
        ),
        SIGNED_IN,
    ),
    ("admin.users", "GET"): (lambda ids: ("/admin/users", {}), ADMIN_ONLY),
    ("admin.add", "POST"): (
        lambda ids: (
            "/admin/users",
            {
                "username": "walked",
                "display_name": "Walked",
                "password": "walked-pass-1",
                "confirm": "walked-pass-1",
                "team": "",
                "role": "",
                "locale": "en",
            },
        ),
        ADMIN_ONLY,
    ),
    ("admin.deactivate", "POST"): (
        lambda ids: (f"/admin/users/{ids['target']}/deactivate", {}),
        ADMIN_ONLY,
    ),
    ("admin.activate", "POST"): (
        lambda ids: (f"/admin/users/{ids['target']}/activate", {}),
        ADMIN_ONLY,
    ),
    ("admin.user_page", "GET"): (lambda ids: (f"/admin/users/{ids['target']}", {}), ADMIN_ONLY),
    ("admin.move", "POST"): (
        lambda ids: (
            f"/admin/users/{ids['target']}/move",
            {"team": str(ids["east"]), "role": "account_manager", "valid_from": TODAY},
        ),
        ADMIN_ONLY,
    ),
    ("admin.password", "POST"): (
        lambda ids: (
            f"/admin/users/{ids['target']}/password",
            {"password": "walked-pass-2", "confirm": "walked-pass-2"},
        ),
        ADMIN_ONLY,
    ),
    ("admin.leave", "POST"): (
        lambda ids: (f"/admin/users/{ids['target']}/leave", {"left_on": "not a day"}),
        {**ADMIN_ONLY, "admin": "status 400"},
    ),
    ("admin.details", "POST"): (
        lambda ids: (
            f"/admin/users/{ids['target']}/details",
            {"display_name": "Walked Target", "email": "", "locale": "en"},
        ),
        ADMIN_ONLY,
    ),
    ("admin.teams", "GET"): (lambda ids: ("/admin/teams", {}), ADMIN_ONLY),
    ("admin.add_team_view", "POST"): (
        lambda ids: ("/admin/teams", {"key": "walked", "name": "Walked", "parent": ""}),
        ADMIN_ONLY,
    ),
    ("admin.team_page", "GET"): (lambda ids: (f"/admin/teams/{ids['east']}", {}), ADMIN_ONLY),
    ("admin.change_team_view", "POST"): (
        lambda ids: (f"/admin/teams/{ids['east']}", {"name": "East", "parent": ""}),
        ADMIN_ONLY,
    ),
    ("pipelines.board", "GET"): (lambda ids: ("/pipelines/b2b", {}), SIGNED_IN),
    ("pipelines.funnel_page", "GET"): (lambda ids: ("/pipelines/b2b/funnel", {}), SIGNED_IN),
    ("pipelines.approvals", "GET"): (lambda ids: ("/approvals", {}), SIGNED_IN),
    ("leaderboards.index", "GET"): (lambda ids: ("/leaderboards", {}), SIGNED_IN),
    ("leaderboards.show", "GET"): (
        lambda ids: ("/leaderboards/b2b_manufacturer/top_sellers", {}),
        SIGNED_IN,
    ),
    # the import page (admins); a made-up upload name is not found
    ("audit.log", "GET"): (lambda ids: ("/admin/audit?action=x&actor=y&about=z", {}), ADMIN_ONLY),
    ("packs.index", "GET"): (lambda ids: ("/admin/packs", {}), ADMIN_ONLY),
    ("packs.download", "GET"): (lambda ids: ("/admin/packs/b2b_manufacturer.zip", {}), ADMIN_ONLY),
    ("org_import.start", "GET"): (lambda ids: ("/admin/org-import", {}), ADMIN_ONLY),
    ("org_import.upload", "POST"): (lambda ids: ("/admin/org-import", {}), ADMIN_ONLY),
    ("org_import.check", "GET"): (
        lambda ids: ("/admin/org-import/" + "a" * 32 + ".csv", {}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 404"},
    ),
    ("org_import.run", "POST"): (
        lambda ids: ("/admin/org-import/" + "a" * 32 + ".csv", {}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 404"},
    ),
    ("imports.start", "GET"): (lambda ids: ("/admin/import", {}), ADMIN_ONLY),
    ("imports.upload", "POST"): (
        lambda ids: ("/admin/import", {"form": "b2b_manufacturer:deal"}),
        ADMIN_ONLY,
    ),
    ("imports.mapping", "GET"): (
        lambda ids: ("/admin/import/" + "a" * 32 + ".csv?pack=b2b_manufacturer&form=deal", {}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 404"},
    ),
    ("imports.rejected", "GET"): (
        lambda ids: ("/admin/import/" + "a" * 32 + "/rejected", {}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 404"},
    ),
    ("imports.rejected_sheet", "GET"): (
        lambda ids: ("/admin/import/" + "a" * 32 + "/rejected.xlsx", {}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 404"},
    ),
    ("imports.run", "POST"): (
        lambda ids: (
            "/admin/import/" + "a" * 32 + ".csv",
            {"pack": "b2b_manufacturer", "form": "deal"},
        ),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 404"},
    ),
    # target splits: managers move target inside their teams (`target` is a rep of east)
    ("targets.plan_page", "GET"): (
        lambda ids: ("/targets/b2b_manufacturer/revenue_fy2026", {}),
        MANAGERS,
    ),
    ("targets.adjust", "POST"): (
        lambda ids: (
            "/targets/b2b_manufacturer/revenue_fy2026/adjust",
            {"node": "nobody", "amount": "1", "reason": "test"},  # refused: 400 for managers
        ),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": "status 400", "admin": "status 400"},
    ),
    ("targets.resplit", "POST"): (
        lambda ids: ("/targets/b2b_manufacturer/revenue_fy2026/resplit", {"reason": ""}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": FORBIDDEN, "admin": "status 400"},
    ),
    # the appraisal cycle: `target` is another rep of the team (their manager rates them)
    ("appraisals.index", "GET"): (lambda ids: ("/appraisals", {}), SIGNED_IN),
    ("appraisals.open_period", "POST"): (
        lambda ids: ("/appraisals/open", {"scorecard": "b2b_manufacturer:nope", "period": "x"}),
        {**ADMIN_ONLY, "admin": "status 400"},  # refused, said next to the field
    ),
    ("appraisals.overview", "GET"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}", {}),
        SIGNED_IN,
    ),
    ("appraisals.rate", "GET"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}/rate/{ids['target']}", {}),
        MANAGERS,
    ),
    ("appraisals.rate", "POST"): (
        lambda ids: (
            f"/appraisals/{ids['appraisal']}/rate/{ids['target']}",
            {"rating-training": "3"},
        ),
        MANAGERS,
    ),
    ("appraisals.scorecard", "GET"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}/reps/{ids['target']}", {}),
        MANAGERS,
    ),
    ("appraisals.printable", "GET"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}/reps/{ids['target']}/print", {}),
        MANAGERS,
    ),
    ("appraisals.note", "POST"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}/reps/{ids['target']}/notes", {"text": "Hi"}),
        MANAGERS,
    ),
    ("appraisals.export", "GET"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}/export.xlsx", {}),
        MANAGERS,
    ),
    ("appraisals.change", "POST"): (
        lambda ids: (f"/appraisals/{ids['appraisal']}/publish", {}),  # refused: still open
        ADMIN_ONLY,
    ),
    # the rep asked for this approval: they may not decide it; their manager and admins may
    ("pipelines.decide", "POST"): (
        lambda ids: (f"/approvals/{ids['approval']}", {"decision": "approve"}),
        {"anonymous": LOGIN, "rep": FORBIDDEN, "manager": OK, "admin": OK},
    ),
    ("pipelines.move", "POST"): (
        lambda ids: (
            f"/records/{ids['deal']}/move",
            {"to": "lost", "version": str(ids["deal_version"]), "field_lost_reason": "price"},
        ),
        SIGNED_IN,
    ),
    # generated forms and records: `theirs` is a deal of another rep of the same team
    ("records.index", "GET"): (
        lambda ids: ("/forms/b2b_manufacturer/deal/records?sort=title&q=walk", {}),
        SIGNED_IN,
    ),
    ("record_exports.download", "GET"): (
        lambda ids: ("/forms/b2b_manufacturer/deal/records.csv?sort=title", {}),
        SIGNED_IN,
    ),
    ("records.new", "GET"): (lambda ids: ("/forms/b2b_manufacturer/deal/new", {}), SIGNED_IN),
    ("records.create", "POST"): (
        lambda ids: (
            "/forms/b2b_manufacturer/deal/new",
            {"pack_version_id": str(ids["version"]), "f-customer": "Walked"},
        ),
        SIGNED_IN,
    ),
    ("records.preview", "POST"): (
        lambda ids: (
            "/forms/b2b_manufacturer/deal/preview",
            {"pack_version_id": str(ids["version"]), "f-discount": "20"},
        ),
        SIGNED_IN,
    ),
    ("records.reference_search", "POST"): (
        lambda ids: (
            "/forms/b2b_manufacturer/visit/choices/deal",
            {"pack_version_id": str(ids["version"]), "x-find": "a"},
        ),
        SIGNED_IN,
    ),
    ("records.view", "GET"): (lambda ids: (f"/records/{ids['theirs']}", {}), MANAGERS),
    ("records.edit", "GET"): (lambda ids: (f"/records/{ids['theirs']}/edit", {}), MANAGERS),
    ("records.update", "POST"): (
        lambda ids: (
            f"/records/{ids['theirs']}/edit",
            {"pack_version_id": str(ids["version"]), "version_no": "1", "f-customer": "W"},
        ),
        MANAGERS,
    ),
    ("records.delete", "POST"): (lambda ids: (f"/records/{ids['theirs']}/delete", {}), MANAGERS),
    ("records.restore", "POST"): (
        lambda ids: (f"/records/{ids['theirs']}/restore", {}),
        MANAGERS,
    ),
    # signs the person out, so it is walked last
    ("auth.logout", "POST"): (lambda ids: ("/logout", {}), SIGNED_IN),
}


def outcome(response: TestResponse) -> str:
    if response.status_code == 403:
        return FORBIDDEN
    if (
        response.status_code in (301, 302, 303)
        and response.headers["Location"].startswith("/login")
        and response.request.path != "/logout"
    ):
        return LOGIN
    if response.status_code == 302 and response.request.path == "/logout":
        return OK if response.headers["Location"] == "/login" else LOGIN
    return OK if 200 <= response.status_code < 400 else f"status {response.status_code}"


@pytest.fixture
def people(app: Flask, make_user) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ids = {
        "admin": make_user("boss", is_admin=True).id,
        "manager": make_user("wang.fang", team="east", role="sales_manager").id,
        "rep": make_user("li.wei", team="east", role="account_manager").id,
        "target": make_user("target", team="east", role="account_manager").id,
    }
    ids = {**ids, **sample_deal(app, ids["rep"]), **others_deal(app, ids["target"])}
    return {**ids, "appraisal": open_appraisal(app), "east": team_id(app, "east")}


def team_id(app: Flask, key: str) -> int:
    from sqlalchemy import select

    from quotaflow.org.models import Team

    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalars(select(Team.id).where(Team.key == key)).one()


def open_appraisal(app: Flask) -> int:
    """This month's appraisal on the stock scorecard, open."""
    from datetime import date

    from quotaflow import db
    from quotaflow.scorecards.models import AppraisalPeriod

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        row = AppraisalPeriod(
            pack_id="b2b_manufacturer",
            scorecard_id="account_manager_monthly",
            period=date.today().strftime("%Y-%m"),
            status="open",
        )
        session.add(row)
        session.flush()
        return row.id


def others_deal(app: Flask, owner_id: int) -> dict[str, int]:
    """A deal of another rep of the team (their manager and admins may see it, the rep not)."""
    from sqlalchemy import select

    from quotaflow import db
    from quotaflow.org.models import Membership
    from quotaflow.packs.services import active_version
    from quotaflow.records.services import create_record

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        version = active_version(session, "b2b_manufacturer").id
        team_id = session.scalar(select(Membership.team_id).where(Membership.user_id == owner_id))
        record = create_record(
            session, pack_id="b2b_manufacturer", pack_version_id=version, form_id="deal",
            owner_id=owner_id, team_id=team_id, values={"customer": "Theirs Ltd"},
            actor_id=owner_id, stage="initial_contact",
        )  # fmt: skip
        return {"theirs": record.id, "version": version}


def sample_deal(app: Flask, rep_id: int) -> dict[str, int]:
    """The stock pack, a deal of the rep's in their team, and an approval the rep asked for."""
    from datetime import date

    from sqlalchemy import select

    from quotaflow import db
    from quotaflow.org.models import Membership
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.services import active_version
    from quotaflow.packs.validate import load_pack
    from quotaflow.pipelines.models import Approval
    from quotaflow.records.services import create_record
    from quotaflow.resources import stock_pack_dir

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
        team_id = session.scalars(
            select(Membership.team_id).where(Membership.user_id == rep_id)
        ).one()
        record = create_record(
            session,
            pack_id="b2b_manufacturer",
            pack_version_id=active_version(session, "b2b_manufacturer").id,
            form_id="deal",
            owner_id=rep_id,
            team_id=team_id,
            values={"customer": "Walk Ltd"},
            actor_id=rep_id,
            stage="initial_contact",
            record_date=date.today(),
        )
        approval = Approval(
            record_id=record.id,
            pipeline_id="b2b",
            from_stage="initial_contact",
            to_stage="quotation",
            approver_role="sales_manager",
            requested_by=rep_id,
            values={},
        )
        session.add(approval)
        session.flush()
        return {"deal": record.id, "deal_version": record.version_no, "approval": approval.id}


def test_every_route_is_in_the_table(app: Flask) -> None:
    registered = {
        (rule.endpoint, method)
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    missing = sorted(registered - set(ROUTES))
    assert not missing, f"add these routes to ROUTES in tests/test_security.py: {missing}"
    assert not sorted(set(ROUTES) - registered), "ROUTES lists routes the app no longer has"


@pytest.mark.parametrize("role", ROLES)
def test_every_route_for_every_role(app: Flask, people: dict[str, int], role: str) -> None:
    client = app.test_client()
    auth = AuthActions(client)
    if role != "anonymous":
        username = {"admin": "boss", "manager": "wang.fang", "rep": "li.wei"}[role]
        assert auth.login(username).status_code == 302
    seen = {}
    for (endpoint, method), (call, expected) in ROUTES.items():
        url, data = call(people)
        if method == "GET":
            response = client.get(url)
        else:
            response = client.post(url, data={**data, "csrf_token": csrf_token(client)})
        seen[(endpoint, method)] = (outcome(response), expected[role])
    wrong = {key: got for key, got in seen.items() if got[0] != got[1]}
    assert not wrong, f"{role}: (got, expected) {wrong}"


JUNK = (
    "page=-1&sort=%00&from=9999-99-99&to=x&q=%3Cscript%3E",
    "page=99999999999999999999&owner=-3&team=abc&stage=%27",
    "rep=%00&q=%00&stage=%00&sort=%00",
    "from=2026-02-30&to=2025-01-01&deleted=1&format=xlsx",
    "period=2026-Q9&by=nonsense&fmt=zzz&q=" + "x" * 5000,
)


@pytest.mark.parametrize("role", ROLES[1:])
def test_no_page_answers_junk_in_its_address_with_a_server_error(
    app: Flask, people: dict[str, int], role: str
) -> None:
    # a NUL byte reached PostgreSQL from a filter (its driver raised: a 500) before the guard
    client = app.test_client()
    AuthActions(client).login({"admin": "boss", "manager": "wang.fang", "rep": "li.wei"}[role])
    failed = []
    for (endpoint, method), (call, _expected) in ROUTES.items():
        if method == "GET" and endpoint != "static":
            url, _data = call(people)
            for junk in JUNK:
                response = client.get(url + ("&" if "?" in url else "?") + junk)
                if response.status_code >= 500:
                    failed.append((url, junk[:40], response.status_code))
    assert not failed


ODD_VALUES = ("", " ", "99999999999999999999", "x" * 3000, "2026-13-45", "😀")
# posts whose success would end the walk's session, or another person's
NOT_WALKED = {"auth.logout", "account.change_password", "admin.password", "admin.deactivate"}


@pytest.mark.parametrize("role", ROLES[1:])
def test_no_form_answers_odd_values_with_a_server_error(
    app: Flask, people: dict[str, int], role: str
) -> None:
    # a version number of ' ' (int() raised) or of 20 digits (SQLite cannot hold it) was a 500
    client = app.test_client()
    auth = AuthActions(client)
    username = {"admin": "boss", "manager": "wang.fang", "rep": "li.wei"}[role]
    auth.login(username)
    failed = []
    for (endpoint, method), (call, _expected) in ROUTES.items():
        if method != "POST" or endpoint in NOT_WALKED:
            continue
        url, data = call(people)
        for key in data:
            for value in ODD_VALUES:
                response = auth.post(url, {**data, key: value})
                if response.status_code >= 500:
                    failed.append((url, key, value[:20], response.status_code))
        if client.get("/").status_code == 302:  # signed out by the walk (a sign-in post)
            auth.login(username)
    assert not failed


def test_reopening_a_forms_address_leads_to_its_page_not_an_error(
    auth: AuthActions, people: dict[str, int]
) -> None:
    # after a refusal the browser shows the address the form posted to; reloaded, it was a 405
    auth.login("li.wei")
    for posted, page in (
        (f"/records/{people['deal']}/move", f"/records/{people['deal']}"),
        (f"/records/{people['deal']}/delete", f"/records/{people['deal']}"),
        ("/account/password", "/account"),
    ):
        response = auth.client.get(posted)
        assert response.status_code == 303 and response.headers["Location"] == page
    nowhere = auth.client.get("/forms/b2b_manufacturer/deal/preview")  # no page above it
    assert nowhere.status_code == 405 and "Allow" in nowhere.headers
    odd = auth.client.get("/account/password/%E4%B8%AD")  # no such page: a 404, not a 500
    assert odd.status_code == 404
    # an id no database column holds is an unknown page, not an overflow in the driver
    assert auth.client.get("/records/99999999999999999999").status_code == 404


def test_a_nul_character_is_refused_in_words_before_anything_reads_it(
    app: Flask, auth: AuthActions, people: dict[str, int]
) -> None:
    refused = auth.post("/login", {"username": "li\x00wei", "password": "x"})
    assert refused.status_code == 400
    assert "NUL character" in refused.get_data(as_text=True)
    shouted = auth.client.post(  # werkzeug reads a form whatever the case of its type
        "/login",
        data=f"csrf_token={csrf_token(auth.client)}&username=a%00&password=x",
        headers={"Content-Type": "APPLICATION/X-WWW-FORM-URLENCODED"},
    )
    assert shouted.status_code == 400
    auth.login("li.wei")
    page = auth.client.get("/forms/b2b_manufacturer/deal/records?q=a%00b")
    assert page.status_code == 400 and 'data-testid="error-detail"' in page.get_data(as_text=True)


# --- CSRF -------------------------------------------------------------------------------------


def test_every_post_route_refuses_a_missing_token(app: Flask, auth: AuthActions, people) -> None:
    auth.login("boss")
    for (_endpoint, method), (call, _expected) in ROUTES.items():
        if method == "POST":
            url, data = call(people)
            assert auth.client.post(url, data=data).status_code == 400, url


def test_htmx_requests_send_the_token_in_a_header(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    # the page's own token (a page signs its token anew, so two pages a second apart differ)
    page = auth.client.get("/__no_such_page__").get_data(as_text=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert found is not None
    token = found.group(1)
    assert f'<body hx-headers=\'{{"X-CSRFToken": "{token}"}}\'>' in page
    response = auth.client.post("/locale", data={"locale": "zh"}, headers={"X-CSRFToken": token})
    assert response.status_code == 302


# --- headers ----------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/login", "/healthz", "/static/css/app.css", "/nope"])
def test_security_headers_on_every_response(client: FlaskClient, url: str) -> None:
    headers = client.get(url).headers
    assert headers["Content-Security-Policy"] == CSP
    assert "'unsafe-inline'" not in CSP and "script-src 'self'" in CSP
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "same-origin"


def test_a_security_header_a_view_set_itself_is_kept_and_none_is_sent_twice(app: Flask) -> None:
    from werkzeug.wrappers import Response

    with app.test_request_context("/login"):
        response = add_security_headers(Response("x", headers={"x-frame-options": "SAMEORIGIN"}))
    assert response.headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert all(len(response.headers.getlist(name)) == 1 for name in HEADERS)


def test_signed_in_pages_are_not_cached(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    assert "Cache-Control" not in auth.client.get("/login").headers
    auth.login("li.wei")
    assert auth.client.get("/").headers["Cache-Control"] == "no-store"


def test_templates_have_no_inline_script_or_style(auth: AuthActions, make_user) -> None:
    make_user("boss", is_admin=True)
    auth.login("boss")
    for url in ["/admin/users", "/admin/teams", "/nope"]:
        page = auth.client.get(url).get_data(as_text=True)
        assert "<script>" not in page and " style=" not in page and "<style" not in page
        assert " on" + "click=" not in page


# --- error pages ------------------------------------------------------------------------------


def test_friendly_404_and_405(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    missing = auth.client.get("/nope", headers={"Referer": "http://localhost/admin/teams"})
    assert missing.status_code == 404
    page = missing.get_data(as_text=True)
    assert "Page not found" in page and 'href="/admin/teams"' in page
    wrong_method = auth.client.get("/logout")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert "Not allowed here" in wrong_method.get_data(as_text=True)


def test_back_link_never_leaves_the_site(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    page = auth.client.get("/nope", headers={"Referer": "https://evil.example/x"})
    assert "evil" not in page.get_data(as_text=True)


def test_403_page_for_a_rep_on_admin_pages(auth: AuthActions, make_user) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    response = auth.client.get("/admin/users")
    assert response.status_code == 403
    assert "You do not have permission" in response.get_data(as_text=True)


def test_500_and_429_pages_never_show_a_traceback(app: Flask, make_user) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def boom():
        raise RuntimeError("secret internals")

    def busy():
        raise TooManyRequests()

    app.add_url_rule("/boom", "boom", boom)
    app.add_url_rule("/busy", "busy", busy)
    make_user("li.wei")
    auth = AuthActions(app.test_client())
    auth.login("li.wei")
    response = auth.client.get("/boom")
    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "Something went wrong" in page
    assert "secret internals" not in page and "Traceback" not in page
    assert response.headers["X-Frame-Options"] == "DENY"
    busy_page = auth.client.get("/busy")
    assert busy_page.status_code == 429 and "Too many requests" in busy_page.get_data(as_text=True)


def test_a_failed_save_still_gets_the_whole_error_page(app: Flask, make_user) -> None:
    """A write that fails in the database leaves the request's session unusable; the 500 page
    (which shows the navigation, read through that session) still renders in full."""
    from quotaflow.org.models import Team
    from quotaflow.web import request_session

    app.config["PROPAGATE_EXCEPTIONS"] = False

    def duplicate():
        session = request_session()
        session.add_all([Team(key="twin", name="A"), Team(key="twin", name="B")])
        session.flush()

    app.add_url_rule("/duplicate", "duplicate", duplicate)
    make_user("li.wei")
    auth = AuthActions(app.test_client())
    auth.login("li.wei")
    response = auth.client.get("/duplicate")
    page = response.get_data(as_text=True)
    assert response.status_code == 500 and "Something went wrong" in page
    assert 'name="csrf-token"' in page  # the layout, not the bare fallback
    assert "IntegrityError" not in page and "Traceback" not in page


def test_a_400_page(app: Flask, client: FlaskClient) -> None:
    from werkzeug.exceptions import BadRequest

    def bad():
        raise BadRequest()

    app.add_url_rule("/bad", "bad", bad)
    # /bad needs sign-in; the gate sends anonymous visitors away, so call the handler directly
    with app.test_request_context("/bad"):
        from quotaflow.web.errors import http_error

        response = http_error(BadRequest())
    assert response.status_code == 400 and "Bad request" in response.get_data(as_text=True)


# --- escaping ---------------------------------------------------------------------------------


def test_names_are_escaped(auth: AuthActions, make_user) -> None:
    make_user("boss", is_admin=True, display_name="<script>alert(1)</script>")
    make_user("x.y", team="<b>east</b>", display_name="<img src=x onerror=alert(1)>")
    auth.login("boss")
    for url in ["/", "/admin/users", "/admin/teams"]:
        page = auth.client.get(url).get_data(as_text=True)
        assert "<script>alert(1)" not in page and "<img src=x" not in page, url
        assert "<b>east</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in auth.client.get("/").get_data(as_text=True)


def test_an_error_page_that_cannot_render_still_shows_plain_html(app: Flask, monkeypatch) -> None:
    from quotaflow.web import errors

    def broken(*_args: object, **_kw: object) -> str:
        raise RuntimeError("database is down")

    monkeypatch.setattr(errors, "render_template", broken)
    response = app.test_client().get("/nope")
    assert response.status_code == 404
    assert "Something went wrong" in response.get_data(as_text=True)
