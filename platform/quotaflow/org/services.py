"""Org services: users with hashed passwords, the team tree, dated memberships."""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from quotaflow.errors import QuotaflowError
from quotaflow.org.models import Membership, Team, User


class OrgError(QuotaflowError):
    """A user or team change that cannot be made as asked."""


def hash_password(password: str) -> str:
    """A salted scrypt hash (werkzeug's default, a memory-hard current algorithm)."""
    return generate_password_hash(password, method="scrypt")


def password_matches(user: User, password: str) -> bool:
    """True when `password` is the user's password."""
    return bool(user.password_hash) and check_password_hash(user.password_hash or "", password)


def add_user(
    session: Session, *, username: str, display_name: str, password: str | None = None,
    email: str | None = None, is_admin: bool = False, locale: str = "en",
) -> User:
    """Create a user; usernames are unique."""
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise OrgError(f"a user named '{username}' already exists")
    user = User(
        username=username, display_name=display_name, email=email, is_admin=is_admin,
        locale=locale, password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    return user


def ensure_team(session: Session, *, key: str, name: str, parent: Team | None = None) -> Team:
    """The team with this key, created under `parent` when missing."""
    team = session.scalar(select(Team).where(Team.key == key))
    if team is None:
        team = Team(key=key, name=name, parent_id=parent.id if parent else None)
        session.add(team)
        session.flush()
    return team


def add_membership(
    session: Session, *, user: User, team: Team, role: str, valid_from: date,
    valid_to: date | None = None,
) -> Membership:
    """Put a user in a team with a role from `valid_from` until (excluding) `valid_to`."""
    if valid_to is not None and valid_to <= valid_from:
        raise OrgError(f"membership of {user.username} in {team.key} ends before it starts")
    membership = Membership(user_id=user.id, team_id=team.id, role=role,
                            valid_from=valid_from, valid_to=valid_to)
    session.add(membership)
    session.flush()
    return membership


def membership_on(session: Session, user_id: int, on: date) -> Membership | None:
    """The user's membership valid on a day (the latest-starting one if several)."""
    return session.scalar(
        select(Membership)
        .where(Membership.user_id == user_id, Membership.valid_from <= on,
               or_(Membership.valid_to.is_(None), Membership.valid_to > on))
        .order_by(Membership.valid_from.desc())
        .limit(1)
    )
