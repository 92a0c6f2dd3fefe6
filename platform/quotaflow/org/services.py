"""Org services: users with hashed passwords, the team tree, dated memberships."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from quotaflow.config_cache import remembered
from quotaflow.messages import N_, LocalizedError
from quotaflow.org.models import Membership, Team, User


class OrgError(LocalizedError):
    """A user or team change that cannot be made as asked."""


def hash_password(password: str) -> str:
    """A salted scrypt hash (werkzeug's default, a memory-hard current algorithm)."""
    return generate_password_hash(password, method="scrypt")


def password_matches(user: User, password: str) -> bool:
    """True when `password` is the user's password."""
    return bool(user.password_hash) and check_password_hash(user.password_hash or "", password)


def add_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    password: str | None = None,
    email: str | None = None,
    is_admin: bool = False,
    locale: str = "en",
) -> User:
    """Create a user; usernames are unique, an e-mail address must look like one."""
    if session.scalar(select(User.id).where(func.lower(User.username) == username.lower())):
        raise OrgError(N_("a user named '{username}' already exists"), username=username)
    user = User(
        username=username,
        display_name=display_name,
        email=check_email(email or None),
        is_admin=is_admin,
        locale=locale,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


TEAM_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")


def add_team(session: Session, *, key: str, name: str, parent: Team | None) -> Team:
    """A new team under `parent` (None: a top-level unit); keys are unique and stay as given."""
    if not TEAM_KEY_RE.match(key):
        raise OrgError(
            N_(
                "'{key}' is not a team key: use lower-case letters, digits, '.', '_' or '-' "
                "(starting with a letter or digit, at most 80)"
            ),
            key=key,
        )
    if team_by_key(session, key) is not None:
        raise OrgError(N_("a team with the key '{key}' already exists"), key=key)
    if not name.strip():
        raise OrgError(N_("a team needs a name"))
    team = Team(key=key, name=name.strip(), parent_id=parent.id if parent else None)
    session.add(team)
    session.flush()
    return team


def change_team(session: Session, team: Team, *, name: str, parent: Team | None) -> None:
    """Rename a team or put it under another (its sub-teams go with it). Who sees a team's
    records follows the tree as it is now, so the new parent's managers see them from then
    on. A team cannot go under itself or one of its own sub-teams."""
    if parent is not None and parent.id in team_and_subteams(session, team.id):
        cycle = N_("{team} cannot go under {parent}: that is part of {team}")
        raise OrgError(cycle, team=team.name, parent=parent.name)
    if not name.strip():
        raise OrgError(N_("a team needs a name"))
    team.name = name.strip()
    team.parent_id = parent.id if parent else None
    session.flush()


def ensure_team(session: Session, *, key: str, name: str, parent: Team | None = None) -> Team:
    """The team with this key, created under `parent` when missing."""
    team = session.scalar(select(Team).where(Team.key == key))
    if team is None:
        team = Team(key=key, name=name, parent_id=parent.id if parent else None)
        session.add(team)
        session.flush()
    return team


def add_membership(
    session: Session,
    *,
    user: User,
    team: Team,
    role: str,
    valid_from: date,
    valid_to: date | None = None,
) -> Membership:
    """Put a user in a team with a role from `valid_from` until (excluding) `valid_to`."""
    if valid_to is not None and valid_to <= valid_from:
        backwards = N_("membership of {user} in {team} ends before it starts")
        raise OrgError(backwards, user=user.username, team=team.key)
    membership = Membership(
        user_id=user.id, team_id=team.id, role=role, valid_from=valid_from, valid_to=valid_to
    )
    session.add(membership)
    session.flush()
    return membership


def move_user(session: Session, user: User, *, team: Team, role: str, on: date) -> Membership:
    """From `on`, the user is in `team` with `role` and nowhere else: the memberships running
    that day end there (one starting that very day is replaced), and what came before stays as
    it was, so older records keep the team they were made in. A membership starting after
    `on` is refused: the move would overlap it."""
    end_memberships(session, user, on)
    return add_membership(session, user=user, team=team, role=role, valid_from=on)


def end_memberships(session: Session, user: User, on: date) -> int:
    """From `on`, the user is in no team (they left, or move elsewhere that day): the
    memberships running that day end there, one starting that very day is dropped, what came
    before stays. Their records keep the teams they were made in; no target split counts them
    from then on. A membership starting after `on` is refused. Returns how many ended."""
    later = session.scalars(
        select(Membership)
        .where(Membership.user_id == user.id, Membership.valid_from > on)
        .order_by(Membership.valid_from)
    ).first()
    if later is not None:
        raise OrgError(
            N_(
                "{user} already has a membership starting {later}, after {on}: choose a date "
                "from {later} on"
            ),
            user=user.username,
            later=later.valid_from.isoformat(),
            on=on.isoformat(),
        )
    ended = 0
    for running in session.scalars(select(Membership).where(*_valid_on(user.id, on))):
        if running.valid_from == on:
            session.delete(running)
        else:
            running.valid_to = on
        ended += 1
    session.flush()
    return ended


def memberships_of(session: Session, user: User) -> list[Membership]:
    """All of a user's memberships, newest first."""
    return list(
        session.scalars(
            select(Membership)
            .where(Membership.user_id == user.id)
            .order_by(Membership.valid_from.desc(), Membership.id.desc())
        )
    )


def _valid_on(user_id: int, on: date) -> list[ColumnElement[bool]]:
    """The user's memberships valid on a day."""
    return [
        Membership.user_id == user_id,
        Membership.valid_from <= on,
        or_(Membership.valid_to.is_(None), Membership.valid_to > on),
    ]


def team_on(session: Session, user_id: int, on: date) -> int | None:
    """The team of the user's membership valid on a day (the latest-starting one), if any."""
    return remembered(session, ("team_on", user_id, on), lambda: _team_on(session, user_id, on))


def _team_on(session: Session, user_id: int, on: date) -> int | None:
    return session.scalar(
        select(Membership.team_id)
        .where(*_valid_on(user_id, on))
        .order_by(Membership.valid_from.desc())
        .limit(1)
    )


def membership_on(session: Session, user_id: int, on: date) -> Membership | None:
    """The user's membership valid on a day (the latest-starting one if several)."""
    return session.scalar(
        select(Membership)
        .where(*_valid_on(user_id, on))
        .order_by(Membership.valid_from.desc())
        .limit(1)
    )


# --- user administration (CLI and admin pages) ----------------------------------------------

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,79}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD_LENGTH = 8


def check_username(username: str) -> str:
    """The username when it is 2-80 lower-case letters, digits, '.', '_' or '-'; else OrgError."""
    if not USERNAME_RE.match(username):
        raise OrgError(
            N_(
                "username '{username}' must be 2-80 characters: lower-case letters, digits, "
                "'.', '_' or '-', starting with a letter or digit"
            ),
            username=username,
        )
    return username


def check_email(email: str | None) -> str | None:
    """The e-mail address (or None when blank) when it looks like one; else OrgError."""
    if not email:
        return None
    if not EMAIL_RE.match(email):
        raise OrgError(N_("'{email}' is not an e-mail address"), email=email)
    return email


def check_password(password: str) -> str:
    """The password when long enough; else OrgError."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OrgError(N_("a password needs at least {n} characters"), n=MIN_PASSWORD_LENGTH)
    return password


def user_by_username(session: Session, username: str) -> User | None:
    """The user with this username (any case)."""
    return session.scalar(select(User).where(func.lower(User.username) == username.lower()))


def set_password(user: User, password: str) -> None:
    """Replace the user's password (this also ends their other signed-in sessions)."""
    user.password_hash = hash_password(check_password(password))


def change_details(
    user: User,
    *,
    display_name: str,
    email: str | None,
    locale: str,
    is_admin: bool,
    by: User | None = None,
) -> dict[str, list[Any]]:
    """Change a user's name, e-mail, language and administrator flag; what changed (field ->
    [old, new]). `by`, the administrator doing it, cannot take their own administrator flag:
    the last one would lock everybody out of the admin pages."""
    if not display_name.strip():
        raise OrgError(N_("a person needs a name"))
    if by is not None and by.id == user.id and user.is_admin and not is_admin:
        raise OrgError(N_("you cannot take away your own administrator rights"))
    wanted = {
        "display_name": display_name.strip(),
        "email": check_email((email or "").strip() or None),
        "locale": locale,
        "is_admin": is_admin,
    }
    changes = {k: [getattr(user, k), v] for k, v in wanted.items() if getattr(user, k) != v}
    for key, (_old, new) in changes.items():
        setattr(user, key, new)
    return changes


def set_active(user: User, active: bool) -> None:
    """Deactivate (cannot sign in, signed out at their next request) or reactivate a user."""
    user.is_active = active


def inactive_in_teams(
    session: Session, on: date, user_id: int | None = None
) -> list[tuple[User, list[str]]]:
    """Deactivated people still in a team on a day (all, or the one `user_id`), with the
    names of their teams: deactivating stops the sign-in, not the membership, which may be a
    pause (a forgotten password, a leave) as well as a leaving."""
    query = (
        select(User, Team.name)
        .join(Membership, Membership.user_id == User.id)
        .join(Team, Team.id == Membership.team_id)
        .where(
            User.is_active.is_(False), Membership.valid_from <= on,
            Membership.valid_to.is_(None) | (Membership.valid_to > on),
        )
        .order_by(User.display_name, User.id, Team.name)
    )  # fmt: skip
    if user_id is not None:
        query = query.where(User.id == user_id)
    found: dict[int, tuple[User, list[str]]] = {}
    for user, team in session.execute(query):
        found.setdefault(user.id, (user, []))[1].append(team)
    return list(found.values())


def team_by_key(session: Session, key: str) -> Team | None:
    """The team with this key."""
    return session.scalar(select(Team).where(Team.key == key))


def current_memberships(session: Session, on: date) -> dict[int, list[Membership]]:
    """Memberships valid on a day, by user id."""
    rows = session.scalars(
        select(Membership)
        .where(
            Membership.valid_from <= on,
            or_(Membership.valid_to.is_(None), Membership.valid_to > on),
        )
        .order_by(Membership.valid_from)
    )
    out: dict[int, list[Membership]] = {}
    for membership in rows:
        out.setdefault(membership.user_id, []).append(membership)
    return out


@dataclass(frozen=True, slots=True)
class TeamNode:
    """A team with its sub-teams and the memberships valid on the day asked for."""

    team: Team
    members: list[Membership]
    children: list[TeamNode]


def team_tree(session: Session, on: date) -> list[TeamNode]:
    """The org as trees (normally one, the company), children sorted by name."""
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    members: dict[int, list[Membership]] = {}
    for memberships in current_memberships(session, on).values():
        for membership in memberships:
            members.setdefault(membership.team_id, []).append(membership)
    by_parent: dict[int | None, list[Team]] = {}
    for team in teams:
        by_parent.setdefault(team.parent_id, []).append(team)

    def build(team: Team, seen: frozenset[int]) -> TeamNode:
        kids = [build(c, seen | {team.id}) for c in by_parent.get(team.id, []) if c.id not in seen]
        return TeamNode(team, members.get(team.id, []), kids)

    return [build(root, frozenset()) for root in by_parent.get(None, [])]


def team_and_subteams(session: Session, team_id: int) -> list[int]:
    """The team's id and the ids of every team below it."""
    children: dict[int | None, list[int]] = {}
    for tid, parent in session.execute(select(Team.id, Team.parent_id)):
        children.setdefault(parent, []).append(tid)
    found, todo = [], [team_id]
    while todo:
        current = todo.pop()
        if current not in found:  # a damaged tree with a cycle still ends
            found.append(current)
            todo.extend(children.get(current, []))
    return found


@dataclass(frozen=True, slots=True)
class ManagerScope:
    """What a manager's pace table shows: the teams looked at (those they manage, or one team
    under them they opened), the teams right below those, and the reps seated directly in
    the teams looked at. A head of sales sees the company, its regions and nobody else's
    reps one by one; a region's row opens the region, a team's its reps."""

    top: tuple[int, ...]
    below: tuple[int, ...]
    reps: tuple[int, ...]
    focus: int | None  # the team opened, when not the ones managed

    @property
    def teams(self) -> list[int]:
        return [*self.top, *self.below]


def manager_scope(
    session: Session,
    manager_id: int,
    manager_roles: list[str],
    rep_roles: list[str],
    on: date,
    focus: int | None = None,
) -> ManagerScope:
    """The manager's scope on a day; `focus` is honoured only for a team at or under one they
    manage (anything else shows their own teams, as if none was asked for)."""
    valid = [
        Membership.valid_from <= on,
        or_(Membership.valid_to.is_(None), Membership.valid_to > on),
    ]
    managed = list(
        session.scalars(
            select(Membership.team_id)
            .where(Membership.user_id == manager_id, Membership.role.in_(manager_roles), *valid)
            .distinct()
        )
    )
    allowed = {t for team in managed for t in team_and_subteams(session, team)}
    top = [focus] if focus is not None and focus in allowed else sorted(set(managed))
    below = [
        tid
        for tid in session.scalars(
            select(Team.id).where(Team.parent_id.in_(top)).order_by(Team.name, Team.id)
        )
        if tid not in top
    ]
    reps = sorted(
        set(
            session.scalars(
                select(Membership.user_id).where(
                    Membership.team_id.in_(top), Membership.role.in_(rep_roles), *valid
                )
            )
        )
    )
    return ManagerScope(
        tuple(top), tuple(below), tuple(reps), top[0] if top == [focus] and focus else None
    )
