"""The org import page: an administrator uploads people and teams, sees what would change
(nothing written), imports it all or nothing; problems are listed by row; nobody else gets in."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from sqlalchemy import select

from quotaflow.audit.models import AuditEvent
from quotaflow.org.models import Membership, Team, User
from tests.conftest import AuthActions

HEADER = "username,display_name,email,team,team_name,parent_team,role,valid_from,valid_to,is_admin"
SHEET = (
    f"{HEADER}\n"
    ",,,north,North,east,,,,\n"
    "ann.lee,Ann Lee,ann@example.com,north,,,rep,2026-01-01,,\n"
    "bo.chen,Bo Chen,,north,,,manager,2026-01-01,,\n"
)


def upload(auth: AuthActions, text: str, name: str = "org.csv", encoding: str = "utf-8") -> str:
    sent = auth.post(
        "/admin/org-import", {"file": (io.BytesIO(text.encode(encoding)), name)},
        content_type="multipart/form-data",
    )  # fmt: skip
    assert sent.status_code == 302, sent.get_data(as_text=True)[:300]
    return str(sent.headers["Location"])


def names(app: Flask) -> set[str]:
    with app.extensions["quotaflow.sessions"]() as session:
        return set(session.scalars(select(User.username)))


def test_admin_checks_then_imports_people_and_teams(
    app: Flask, auth: AuthActions, make_user
) -> None:  # type: ignore[no-untyped-def]
    make_user("boss", is_admin=True)
    make_user("rep", team="east", role="rep")
    auth.login("rep")
    assert auth.client.get("/admin/org-import").status_code == 403
    auth.logout()
    auth.login("boss")
    assert 'data-testid="org-import-link"' in auth.client.get("/admin/teams").get_data(as_text=True)
    page_url = upload(auth, SHEET)
    assert re.fullmatch(r"/admin/org-import/[0-9a-f]{32}\.csv\?name=org\.csv", page_url)
    checked = auth.client.get(page_url).get_data(as_text=True)
    problems = re.findall(r"<li>(.*?)</li>", checked)
    assert "People: 2 added, 0 updated" in checked, problems
    assert "Teams: 1 created" in checked
    assert "ann.lee" not in names(app)  # a check writes nothing
    done = auth.post(page_url.split("?")[0], {})
    assert done.status_code == 302 and done.headers["Location"] == "/admin/teams"
    assert {"ann.lee", "bo.chen"} <= names(app)
    with app.extensions["quotaflow.sessions"]() as session:
        north = session.scalars(select(Team).where(Team.key == "north")).one()
        rows = session.execute(
            select(User.username, Membership.role).join(Membership, Membership.user_id == User.id)
            .where(Membership.team_id == north.id)
        )  # fmt: skip
        roles = {username: role for username, role in rows}
        assert roles == {"ann.lee": "rep", "bo.chen": "manager"}
        assert session.scalars(select(AuditEvent).where(AuditEvent.action == "org_import")).one()
    assert auth.client.get(page_url).status_code == 404  # the upload is gone once imported


def test_a_bad_sheet_lists_its_problems_by_row_and_changes_nothing(
    app: Flask, auth: AuthActions, make_user
) -> None:  # type: ignore[no-untyped-def]
    make_user("boss", is_admin=True)
    auth.login("boss")
    bad = SHEET + "Bad Name,X,not-an-email,north,,,chief,2026-13-01,,\n"
    checked = auth.client.get(upload(auth, bad))
    text = checked.get_data(as_text=True)
    assert checked.status_code == 400 and "nothing was imported" in text
    assert re.search(r"row 5: ", text) and "chief" in text
    assert "ann.lee" not in names(app)
    assert auth.client.get("/admin/org-import/" + "a" * 32 + ".csv").status_code == 404


@pytest.fixture
def boss(auth: AuthActions, make_user) -> AuthActions:  # type: ignore[no-untyped-def]
    """An administrator signed in, in an org with a team east."""
    make_user("boss", is_admin=True)
    make_user("rep", team="east", role="rep")
    auth.login("boss")
    return auth


def test_a_sheet_not_in_utf8_is_read_and_the_page_says_how(app: Flask, boss: AuthActions) -> None:
    auth = boss
    assert 'data-testid="read-as' not in auth.client.get(upload(auth, SHEET)).get_data(as_text=True)
    western = SHEET.replace("Ann Lee", "Jörg Müller").replace("Bo Chen", "João Conceição")
    page = auth.client.get(upload(auth, western, encoding="cp1252")).get_data(as_text=True)
    assert 'data-testid="read-as-western"' in page and 'data-testid="org-report"' in page
    chinese = SHEET.replace("Ann Lee", "李珺").replace("Bo Chen", "陈昇")
    page_url = upload(auth, chinese, encoding="gbk")
    checked = auth.client.get(page_url).get_data(as_text=True)
    assert 'data-testid="read-as-gbk"' in checked
    # the names themselves, so a sheet read wrong shows before anything is written
    assert re.search(
        r'data-testid="people-added"><strong>People added: </strong>李珺 \(ann\.lee\), 陈昇 \(bo\.chen\)',
        checked,
    )
    assert 'data-testid="teams-created"><strong>Teams created: </strong>North (north)' in checked
    assert auth.post(page_url.split("?")[0], {}).status_code == 302
    with app.extensions["quotaflow.sessions"]() as session:
        shown = set(
            session.scalars(
                select(User.display_name).where(User.username.in_(["ann.lee", "bo.chen"]))
            )
        )
    assert shown == {"李珺", "陈昇"}  # names with rarer characters, read as written


def test_a_problem_is_said_in_the_readers_language(boss: AuthActions) -> None:
    auth = boss
    sheet = f"{HEADER}\nli.jun,Li Jun,,east_a,,,rep,2026-11-01,,\n"
    page = auth.client.get(upload(auth, sheet)).get_data(as_text=True)
    assert "1 problem; nothing was imported." in page
    assert "row 2: there is no team &#39;east_a&#39;: use the key of an existing team" in page
    auth.post("/locale", {"locale": "zh", "next": "/"})
    page = auth.client.get(upload(auth, sheet)).get_data(as_text=True)
    assert "1 个问题；未导入任何数据。" in page
    assert "第 2 行：没有团队“east_a”：请使用已有团队的标识" in page
