"""Row-level permissions: who sees and edits which record, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.org.models import Team, User
from quotaflow.org.roles import (
    Capability,
    capabilities_of,
    capability_of_role,
    check_role_capabilities,
    main_capability,
)
from quotaflow.org.services import add_membership, add_user, ensure_team
from quotaflow.packs.models import Pack, PackVersion
from quotaflow.records.access import can_edit, can_view, visible_records
from quotaflow.records.models import Record

START = date(2024, 1, 1)
HANDOVER = date(2025, 7, 1)  # east_a changes manager
MOVE = date(2025, 6, 1)  # "mover" moves from east_a to south_a


class Org:
    """A small hand-built company; users and records by short name."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.users: dict[str, User] = {}
        self.teams: dict[str, Team] = {}
        self.records: dict[str, int] = {}
        session.add(Pack(id="p"))
        session.flush()
        version = PackVersion(
            pack_id="p", version="1", content={}, content_hash="x", published_by="test"
        )
        session.add(version)
        session.flush()
        self.version_id = version.id

    def team(self, key: str, parent: str | None = None) -> None:
        self.teams[key] = ensure_team(
            self.session, key=key, name=key, parent=self.teams[parent] if parent else None
        )

    def user(self, name: str, *memberships: tuple[str, str, date, date | None], **kw) -> None:
        active = kw.pop("is_active", True)
        user = add_user(self.session, username=name, display_name=name, **kw)
        user.is_active = active
        for team, role, start, end in memberships:
            add_membership(
                self.session,
                user=user,
                team=self.teams[team],
                role=role,
                valid_from=start,
                valid_to=end,
            )
        self.users[name] = user

    def record(self, name: str, owner: str, team: str, day: date | None, **kw) -> None:
        record = Record(
            pack_id="p",
            pack_version_id=self.version_id,
            form_id="deal",
            owner_id=self.users[owner].id,
            team_id=self.teams[team].id,
            record_date=day,
            values={},
            **kw,
        )
        self.session.add(record)
        self.session.flush()
        self.records[name] = record.id

    def names(self, ids) -> set[str]:
        by_id = {v: k for k, v in self.records.items()}
        return {by_id[i] for i in ids}


@pytest.fixture
def org(sessions: sessionmaker[Session]):
    with db.transaction(sessions) as session:
        o = Org(session)
        o.team("company")
        o.team("east", "company")
        o.team("east_a", "east")
        o.team("east_b", "east")
        o.team("south", "company")
        o.team("south_a", "south")
        o.user("admin", is_admin=True)
        o.user("head", ("company", "head_of_sales", START, None))
        o.user("mgr_east", ("east", "sales_manager", START, None))
        o.user("mgr_a_old", ("east_a", "manager", START, HANDOVER))
        o.user("mgr_a_new", ("east_a", "manager", HANDOVER, None))
        o.user("mgr_south", ("south_a", "sales_manager", START, None))
        o.user("rep1", ("east_a", "account_manager", START, None))
        o.user("rep2", ("east_b", "rep", START, None))
        o.user("rep3", ("south_a", "rep", START, None))
        o.user("mover", ("east_a", "rep", START, MOVE), ("south_a", "rep", MOVE, None))
        o.user("director", ("south", "regional_director", START, None))
        o.user("gone", ("company", "head_of_sales", START, None), is_active=False, is_admin=True)
        o.record("r1", "rep1", "east_a", date(2025, 3, 1))
        o.record("r2", "rep1", "east_a", date(2025, 9, 1))
        o.record("r3", "rep2", "east_b", date(2025, 3, 1))
        o.record("r4", "rep3", "south_a", date(2025, 3, 1))
        o.record("r5", "mover", "east_a", date(2025, 5, 1))
        o.record("r6", "mover", "south_a", date(2025, 8, 1))
        o.record(
            "r7", "rep1", "east_a", date(2025, 4, 1), deleted_at=datetime(2025, 4, 2, tzinfo=UTC)
        )
        # no date of its own: counts on the day it was created (after the handover)
        o.record("r8", "rep1", "east_a", None, created_at=datetime(2025, 8, 15, 12, tzinfo=UTC))
    with sessions() as session:
        o.session = session
        yield o


ALL = {"r1", "r2", "r3", "r4", "r5", "r6", "r8"}
EXPECTED = {
    "admin": ALL,
    "head": ALL,
    "mgr_east": {"r1", "r2", "r3", "r5", "r8"},
    "mgr_a_old": {"r1", "r5"},  # east_a before the handover only
    "mgr_a_new": {"r2", "r8"},  # east_a from the handover on
    "mgr_south": {"r4", "r6"},
    "rep1": {"r1", "r2", "r8"},  # own records; r7 is deleted
    "rep2": {"r3"},
    "rep3": {"r4"},
    "mover": {"r5", "r6"},  # own records in both teams
    "director": set(),  # regional_director is not a role the default mapping knows
    "gone": set(),  # inactive: nothing, even as admin
}


def visible(org: Org, name: str, **kw) -> set[str]:
    query = visible_records(org.session, org.users[name], **kw)
    return org.names(r.id for r in org.session.scalars(query))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_who_sees_what(org: Org, name: str) -> None:
    assert visible(org, name) == EXPECTED[name]


def test_membership_judged_on_a_fixed_day(org: Org) -> None:
    later = date(2025, 12, 1)
    assert visible(org, "mgr_a_old", on=later) == set()
    assert visible(org, "mgr_a_new", on=later) == {"r1", "r2", "r5", "r8"}
    assert visible(org, "mgr_a_old", on=date(2025, 1, 1)) == {"r1", "r2", "r5", "r8"}
    assert visible(org, "rep1", on=later) == {"r1", "r2", "r8"}


def test_deleted_records_only_when_asked(org: Org) -> None:
    assert visible(org, "rep1", include_deleted=True) == {"r1", "r2", "r7", "r8"}
    assert "r7" in visible(org, "admin", include_deleted=True)
    assert "r7" not in visible(org, "mgr_a_new", include_deleted=True)  # before the handover


def test_a_pack_can_map_its_own_role_names(org: Org) -> None:
    mapping = {"regional_director": "manager", "rep": "rep"}
    assert visible(org, "director", role_capabilities=mapping) == {"r4", "r6"}
    # with that mapping sales_manager means nothing: mgr_south only sees own records (none)
    assert visible(org, "mgr_south", role_capabilities=mapping) == set()


def test_the_query_composes_with_filters_counts_and_paging(org: Org) -> None:
    query = visible_records(org.session, org.users["mgr_east"])
    count = org.session.scalar(select(func.count()).select_from(query.subquery()))
    assert count == 5
    page = query.where(Record.record_date >= date(2025, 3, 1)).order_by(
        Record.record_date, Record.id
    )
    ids = list(org.session.scalars(page.limit(2).offset(1)))
    assert [org.names([r.id]).pop() for r in ids] == ["r3", "r5"]


def test_can_view_and_can_edit(org: Org) -> None:
    s, u = org.session, org.users

    def rec(name: str) -> Record:
        record = s.get(Record, org.records[name])
        assert record is not None
        return record

    assert can_edit(s, u["rep1"], rec("r1")) and not can_edit(s, u["rep1"], rec("r3"))
    assert not can_edit(s, u["rep1"], rec("r7")) and can_view(s, u["rep1"], rec("r7"))
    assert can_edit(s, u["mgr_east"], rec("r3")) and not can_edit(s, u["mgr_east"], rec("r4"))
    assert not can_edit(s, u["mgr_a_old"], rec("r2")) and can_edit(s, u["mgr_a_new"], rec("r2"))
    assert can_edit(s, u["admin"], rec("r4")) and not can_edit(s, u["admin"], rec("r7"))
    assert not can_view(s, u["gone"], rec("r1"))


def test_a_cycle_in_the_team_tree_does_not_hang(org: Org) -> None:
    s = org.session
    loop_a = Team(key="loop_a", name="a")
    loop_b = Team(key="loop_b", name="b")
    s.add_all([loop_a, loop_b])
    s.flush()
    loop_a.parent_id, loop_b.parent_id = loop_b.id, loop_a.id
    add_membership(s, user=org.users["rep2"], team=loop_a, role="manager", valid_from=START)
    s.flush()
    assert visible(org, "rep2") == {"r3"}


def test_capabilities_from_flag_and_roles(org: Org) -> None:
    s, u = org.session, org.users
    on = date(2025, 8, 1)
    assert capabilities_of(s, u["admin"], on) == {Capability.ADMIN}
    assert capabilities_of(s, u["mgr_a_old"], on) == frozenset()
    assert capabilities_of(s, u["mgr_a_old"], date(2025, 1, 1)) == {Capability.MANAGER}
    assert capabilities_of(s, u["rep1"], on) == {Capability.REP}
    assert main_capability(frozenset({Capability.REP, Capability.MANAGER})) is Capability.MANAGER
    assert main_capability(frozenset()) is None
    assert capability_of_role("account_manager") is Capability.REP
    assert capability_of_role("unknown") is None


def test_a_team_role_cannot_grant_admin() -> None:
    with pytest.raises(ValueError, match="admin is a user flag"):
        check_role_capabilities({"boss": "admin"})
    check_role_capabilities({"boss": "manager", "seller": "rep"})
