"""Admin user pages: moving a user between teams from a day on, and setting their password."""

from __future__ import annotations

import re
from datetime import date

import pytest
from flask import Flask
from sqlalchemy import select

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.org.models import Membership, Team, User
from quotaflow.org.services import OrgError, change_team, move_user, team_on
from tests.conftest import TEST_PASSWORD, AuthActions


@pytest.fixture
def org(app: Flask, make_user) -> dict[str, int]:  # type: ignore[no-untyped-def]
    ids = {
        "boss": make_user("boss", is_admin=True).id,
        "li": make_user("li.wei", team="east", role="account_manager").id,
        "ann": make_user("ann", team="west", role="sales_manager").id,
    }
    with app.extensions["quotaflow.sessions"]() as session:
        for key in ("east", "west"):
            ids[key] = session.scalars(select(Team.id).where(Team.key == key)).one()
    return ids


def spans(app: Flask, user_id: int) -> list[tuple[str, str, date, date | None]]:
    with app.extensions["quotaflow.sessions"]() as session:
        rows = session.execute(
            select(Team.key, Membership.role, Membership.valid_from, Membership.valid_to)
            .join(Team, Team.id == Membership.team_id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.valid_from)
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_move_ends_the_running_membership_and_keeps_the_past(app: Flask, org) -> None:  # type: ignore[no-untyped-def]
    sessions = app.extensions["quotaflow.sessions"]
    june = date(2026, 6, 1)
    with db.transaction(sessions) as session:
        li, west = session.get(User, org["li"]), session.get(Team, org["west"])
        move_user(session, li, team=west, role="account_manager", on=june)  # type: ignore[arg-type]
    assert spans(app, org["li"]) == [
        ("east", "account_manager", date(2020, 1, 1), june),
        ("west", "account_manager", june, None),
    ]
    with sessions() as session:
        assert team_on(session, org["li"], date(2026, 5, 31)) == org["east"]
        assert team_on(session, org["li"], june) == org["west"]
    # moved again the same day: replaced, not a membership of no days
    with db.transaction(sessions) as session:
        li, east = session.get(User, org["li"]), session.get(Team, org["east"])
        move_user(session, li, team=east, role="sales_manager", on=june)  # type: ignore[arg-type]
    assert spans(app, org["li"])[-1] == ("east", "sales_manager", june, None)
    assert len(spans(app, org["li"])) == 2
    # a move before a membership that starts later would overlap it: refused, nothing changed
    with pytest.raises(OrgError, match="starting 2026-06-01"), db.transaction(sessions) as session:
        li, west = session.get(User, org["li"]), session.get(Team, org["west"])
        move_user(session, li, team=west, role="account_manager", on=date(2026, 3, 1))  # type: ignore[arg-type]
    assert len(spans(app, org["li"])) == 2


def test_admin_moves_a_user_on_their_page(app: Flask, auth: AuthActions, org) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    page = auth.client.get(f"/admin/users/{org['li']}").get_data(as_text=True)
    assert 'data-testid="memberships"' in page and 'data-team="east"' in page
    assert f'value="{date.today().isoformat()}"' in page  # the move starts today unless told
    bad = auth.post(
        f"/admin/users/{org['li']}/move",
        {"team": str(org["west"]), "role": "account_manager", "valid_from": "next tuesday"},
    )
    assert bad.status_code == 400
    text = bad.get_data(as_text=True)
    assert re.search(rf'<option selected value="{org["west"]}">West</option>', text)  # kept
    assert 'value="next tuesday"' in text and 'aria-invalid="true"' in text
    assert len(spans(app, org["li"])) == 1
    done = auth.post(
        f"/admin/users/{org['li']}/move",
        {"team": str(org["west"]), "role": "account_manager", "valid_from": "2026-06-01"},
        follow_redirects=True,
    )
    assert "li.wei is in West from 2026-06-01." in done.get_data(as_text=True)
    assert spans(app, org["li"])[-1] == ("west", "account_manager", date(2026, 6, 1), None)
    with app.extensions["quotaflow.sessions"]() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user_move")).one()
        assert event.actor == "boss" and event.object_id == "li.wei"
        assert event.details == {"team": "west", "role": "account_manager",
                                 "valid_from": "2026-06-01"}  # fmt: skip
    users = auth.client.get("/admin/users").get_data(as_text=True)
    assert f'href="/admin/users/{org["li"]}"' in users


def test_admin_sets_a_password_and_the_old_one_stops_working(
    app: Flask, auth: AuthActions, org
) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    differ = auth.post(
        f"/admin/users/{org['li']}/password",
        {"password": "brand-new-pass-1", "confirm": "brand-new-pass-2"},
    )
    assert differ.status_code == 400 and "The passwords differ." in differ.get_data(as_text=True)
    short = auth.post(f"/admin/users/{org['li']}/password", {"password": "x", "confirm": "x"})
    assert short.status_code == 400
    done = auth.post(
        f"/admin/users/{org['li']}/password",
        {"password": "brand-new-pass-1", "confirm": "brand-new-pass-1"},
        follow_redirects=True,
    )
    assert "New password set for li.wei." in done.get_data(as_text=True)
    auth.logout()
    assert auth.login("li.wei", TEST_PASSWORD).status_code == 200  # refused: the form again
    assert auth.login("li.wei", "brand-new-pass-1").status_code == 302
    with app.extensions["quotaflow.sessions"]() as session:
        actions = set(session.scalars(select(AuditEvent.action)))
    assert "user_password" in actions


def test_roles_are_offered_and_shown_by_the_packs_labels(
    app: Flask, auth: AuthActions, org
) -> None:  # type: ignore[no-untyped-def]
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.validate import load_pack
    from quotaflow.resources import stock_pack_dir

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
    auth.login("boss")
    page = auth.client.get(f"/admin/users/{org['li']}").get_data(as_text=True)
    assert "<td>Account manager</td>" in page  # li.wei's membership, by the pack's label
    offered = dict(re.findall(r'<option value="([a-z_]+)">([^<]+)</option>', page))
    assert offered["account_manager"] == "Account manager"
    assert offered["sales_manager"] == "Sales manager"
    assert "sales_admin" not in offered  # its capability is admin: a user flag, not a team role
    assert "head_of_sales" not in offered  # the built-in names: not beside the pack's own
    assert "(Account manager)" in auth.client.get("/admin/users").get_data(as_text=True)
    assert "(Sales manager)" in auth.client.get("/admin/teams").get_data(as_text=True)
    auth.post("/locale", {"locale": "zh", "next": "/"})
    page = auth.client.get(f"/admin/users/{org['li']}").get_data(as_text=True)
    assert "<td>客户经理</td>" in page and '<option value="sales_manager">销售经理</option>' in page


def test_admin_adds_a_team_and_moves_it_under_another(app: Flask, auth: AuthActions, org) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    added = auth.post(
        "/admin/teams", {"key": "North", "name": "North", "parent": str(org["east"])},
        follow_redirects=True,
    )  # fmt: skip
    assert "Team North added." in added.get_data(as_text=True)
    with app.extensions["quotaflow.sessions"]() as session:
        north = session.scalars(select(Team).where(Team.key == "north")).one()  # key lower-cased
        assert north.parent_id == org["east"]
    for key, message in (("north", "already exists"), ("no spaces", "is not a team key")):
        refused = auth.post("/admin/teams", {"key": key, "name": "Again", "parent": ""})
        text = refused.get_data(as_text=True)
        assert refused.status_code == 400 and message in text and 'value="Again"' in text
    auth.post("/locale", {"locale": "zh", "next": "/"})  # and said in the reader's language
    refused = auth.post("/admin/teams", {"key": "north", "name": "Again", "parent": ""})
    assert "标识为“north”的团队已存在" in refused.get_data(as_text=True)
    auth.post("/locale", {"locale": "en", "next": "/"})
    page = auth.client.get(f"/admin/teams/{org['east']}").get_data(as_text=True)
    members = re.search(r'<ul data-testid="members">(.*?)</ul>', page, re.S)
    assert members is not None and f'href="/admin/users/{org["li"]}"' in members.group(1)
    assert f'href="/admin/users/{org["ann"]}"' not in members.group(1)  # ann is in west
    offered = re.findall(r'<option[^>]*value="(\d+)"', page)
    assert str(org["west"]) not in offered and str(north.id) not in offered  # its own sub-teams
    moved = auth.post(
        f"/admin/teams/{north.id}", {"name": "North Region", "parent": str(org["west"])},
        follow_redirects=True,
    )  # fmt: skip
    assert "Team North Region saved." in moved.get_data(as_text=True)
    with app.extensions["quotaflow.sessions"]() as session:
        north = session.get(Team, north.id)  # type: ignore[assignment]
        assert (north.name, north.parent_id) == ("North Region", org["west"])
        actions = list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "team"))
        )
    assert actions == ["team_add", "team_change"]
    cycle = auth.post(f"/admin/teams/{org['east']}", {"name": "East", "parent": str(north.id)})
    assert cycle.status_code == 400  # a team under its own sub-team is not even offered


def test_a_team_cannot_go_under_its_own_sub_team(app: Flask, org) -> None:  # type: ignore[no-untyped-def]
    with (
        pytest.raises(OrgError, match="cannot go under West"),
        db.transaction(app.extensions["quotaflow.sessions"]) as session,
    ):
        east, west = session.get(Team, org["east"]), session.get(Team, org["west"])
        change_team(session, east, name="East", parent=west)  # type: ignore[arg-type]


def test_a_user_is_added_only_with_an_address_that_looks_like_one(
    app: Flask, auth: AuthActions, org
) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    form = {
        "username": "new.rep", "display_name": "New Rep", "email": "not-an-email",
        "password": "new-rep-pass-1", "confirm": "new-rep-pass-1", "team": str(org["east"]),
        "role": "account_manager", "locale": "en",
    }  # fmt: skip
    refused = auth.post("/admin/users", form)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "Enter an e-mail address like name@example.com." in page
    assert 'value="new.rep"' in page and 'value="New Rep"' in page  # nothing typed is lost
    added = auth.post("/admin/users", {**form, "email": "new.rep@example.com"})
    assert added.status_code == 302
    with app.extensions["quotaflow.sessions"]() as session:
        emails = {name: email for name, email in session.execute(select(User.username, User.email))}
        assert emails["new.rep"] == "new.rep@example.com"
        from quotaflow.org.services import add_user

        with pytest.raises(OrgError, match="not an e-mail address"):  # every other way in too
            add_user(session, username="x.y", display_name="X", email="x@y")


def test_admin_changes_a_users_details_and_it_is_audited(
    app: Flask, auth: AuthActions, org
) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    url = f"/admin/users/{org['li']}/details"
    bad = auth.post(url, {"display_name": "Li Wei (KA)", "email": "li@", "locale": "zh"})
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Enter an e-mail address like name@example.com." in page
    assert 'value="Li Wei (KA)"' in page and 'value="li@"' in page  # what was typed stays
    saved = auth.post(
        url, {"display_name": "Li Wei (KA)", "email": "li.wei@example.com", "locale": "zh"}
    )
    assert saved.status_code == 302
    with app.extensions["quotaflow.sessions"]() as session:
        li = session.get(User, org["li"])
        assert li is not None
        assert (li.display_name, li.email, li.locale, li.is_admin) == (
            "Li Wei (KA)", "li.wei@example.com", "zh", False,
        )  # fmt: skip
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user_change")).one()
        assert event.details is not None and event.details["locale"] == ["en", "zh"]
    # an administrator cannot take their own rights (nobody would be left to give them back)
    own = auth.post(f"/admin/users/{org['boss']}/details", {"display_name": "Boss", "locale": "en"})
    assert own.status_code == 400
    assert "you cannot take away your own administrator rights" in own.get_data(as_text=True)
    with app.extensions["quotaflow.sessions"]() as session:
        boss = session.get(User, org["boss"])
        assert boss is not None and boss.is_admin
    # the rep signs in and reads the app in the language the admin chose
    auth.logout()
    auth.login("li.wei")
    assert 'lang="zh' in auth.client.get("/").get_data(as_text=True)


def test_admin_records_that_someone_left_and_their_past_stays(
    app: Flask, auth: AuthActions, org
) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    url = f"/admin/users/{org['li']}/leave"
    assert auth.post(url, {"left_on": "someday"}).status_code == 400
    left = auth.post(url, {"left_on": "2026-07-01"})
    assert left.status_code == 302
    assert spans(app, org["li"]) == [
        ("east", "account_manager", date(2020, 1, 1), date(2026, 7, 1))
    ]
    with app.extensions["quotaflow.sessions"]() as session:
        assert team_on(session, org["li"], date(2026, 6, 30)) == org["east"]  # the past stays
        assert team_on(session, org["li"], date(2026, 7, 1)) is None
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user_leave")).one()
        assert event.details == {"left_on": "2026-07-01"}
    again = auth.post(url, {"left_on": "2026-08-01"})
    assert again.status_code == 400
    assert "They are in no team on that day." in again.get_data(as_text=True)


def test_deactivating_someone_still_in_a_team_says_so_until_the_day_they_left_is_set(
    app: Flask, auth: AuthActions, org
) -> None:  # type: ignore[no-untyped-def]
    auth.login("boss")
    assert "is deactivated but still in" not in auth.client.get("/").get_data(as_text=True)
    done = auth.post(f"/admin/users/{org['li']}/deactivate", {})
    assert done.headers["Location"] == f"/admin/users/{org['li']}"  # where the day is set
    page = auth.client.get(done.headers["Location"]).get_data(as_text=True)
    assert "Deactivated, but still in East: they count in its targets." in page
    assert '<a href="#leave">Set the day they left</a>' in page and 'id="leave"' in page
    assert f'value="{date.today().isoformat()}"' in page  # the day they left: today, to start
    todo = f'<a href="/admin/users/{org["li"]}">Li.Wei is deactivated but still in East: set the day they left</a>'
    assert todo in auth.client.get("/").get_data(as_text=True)
    # someone in no team is simply deactivated
    nobody = auth.post(f"/admin/users/{org['li']}/leave", {"left_on": date.today().isoformat()})
    assert nobody.status_code == 302
    assert "is deactivated but still in" not in auth.client.get("/").get_data(as_text=True)
    page = auth.client.get(f"/admin/users/{org['li']}").get_data(as_text=True)
    assert 'data-testid="still-in-team"' not in page
    # reactivated from their own page, back on it; from the list, back on the list
    back = auth.post(f"/admin/users/{org['li']}/activate", {"from": "page"})
    assert back.headers["Location"] == f"/admin/users/{org['li']}"
    assert (
        auth.post(f"/admin/users/{org['li']}/deactivate", {}).headers["Location"] == "/admin/users"
    )
