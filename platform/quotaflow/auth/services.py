"""Sign-in: password check, rate limiting in the database, audit, safe redirects (no Flask)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.auth.models import LoginAttempt
from quotaflow.org.models import User
from quotaflow.org.services import hash_password, password_matches, set_password
from quotaflow.timeutil import utcnow

# A real scrypt hash to check against when the username is unknown, so that a wrong username
# takes as long as a wrong password (no user enumeration by timing).
_DUMMY_HASH = hash_password("not-a-real-password")


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    """How many failures are allowed in the window, per username+address and per address."""

    max_failures: int = 5
    max_failures_per_ip: int = 50
    window: timedelta = timedelta(minutes=15)


class Outcome(StrEnum):
    OK = "ok"
    BAD_CREDENTIALS = "bad_credentials"
    INACTIVE = "inactive"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What happened; `retry_after` (seconds) is set when throttled."""

    outcome: Outcome
    user: User | None = None
    retry_after: int = 0


def authenticate(
    session: Session,
    username: str,
    password: str,
    ip: str,
    *,
    policy: LoginPolicy = LoginPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
    now: datetime | None = None,
) -> LoginResult:
    """Check a sign-in; records failures and audit events in the session (the caller commits)."""
    now = now or utcnow()
    name = username.strip().lower()
    ip = ip[:45]
    retry_after = seconds_until_allowed(session, name, ip, policy, now)
    if retry_after:
        _audit(session, name, "login_throttled", ip)
        return LoginResult(Outcome.THROTTLED, retry_after=retry_after)
    user = session.scalar(select(User).where(func.lower(User.username) == name))
    if user is None:
        password_matches(User(password_hash=_DUMMY_HASH), password)
        return _failed(session, name, ip, now, "unknown user")
    if not password_matches(user, password):
        return _failed(session, name, ip, now, "wrong password")
    if not user.is_active:
        _audit(session, name, "login_failed", ip, reason="inactive")
        return LoginResult(Outcome.INACTIVE, user=user)
    session.execute(
        delete(LoginAttempt).where(LoginAttempt.username == name, LoginAttempt.ip == ip)
    )
    _audit(session, user.username, "login", ip)
    return LoginResult(Outcome.OK, user=user)


def change_own_password(
    session: Session,
    user: User,
    current: str,
    new: str,
    ip: str,
    *,
    policy: LoginPolicy = LoginPolicy(),  # noqa: B008 - frozen dataclass, safe as a default
    now: datetime | None = None,
) -> LoginResult:
    """A signed-in person replaces their own password. The current one is checked as a sign-in
    checks it, failures counted with sign-in failures (a session left open on a shared computer
    cannot be used to guess it); a new password that breaks the rules raises OrgError. The
    caller commits, and signs this session in again: other sessions end (see session_token)."""
    now = now or utcnow()
    name, ip = user.username.lower(), ip[:45]
    retry_after = seconds_until_allowed(session, name, ip, policy, now)
    if retry_after:
        _audit(session, name, "password_change_throttled", ip)
        return LoginResult(Outcome.THROTTLED, retry_after=retry_after)
    if not password_matches(user, current):
        return _failed(session, name, ip, now, "wrong current password")
    set_password(user, new)
    _audit(session, user.username, "password_change", ip)
    return LoginResult(Outcome.OK, user=user)


def seconds_until_allowed(
    session: Session, username: str, ip: str, policy: LoginPolicy, now: datetime
) -> int:
    """0 when a sign-in may be tried now, else seconds until the oldest counted failure ages out."""
    since = now - policy.window
    for where, limit in (
        ((LoginAttempt.username == username, LoginAttempt.ip == ip), policy.max_failures),
        ((LoginAttempt.ip == ip,), policy.max_failures_per_ip),
    ):
        times = session.scalars(
            select(LoginAttempt.at)
            .where(*where, LoginAttempt.at > since)
            .order_by(LoginAttempt.at.desc())
            .limit(limit)
        ).all()
        if len(times) >= limit:
            oldest = _aware(times[-1])
            return max(1, int((oldest + policy.window - now).total_seconds()) + 1)
    return 0


def record_logout(session: Session, username: str, ip: str) -> None:
    """Audit a sign-out."""
    _audit(session, username, "logout", ip)


def session_token(user: User) -> str:
    """Part of the login cookie's id: changes when the password does, ending older sessions."""
    return hashlib.sha256((user.password_hash or "").encode()).hexdigest()[:16]


def safe_next(target: str | None) -> str | None:
    """`target` when it is a same-site relative path (no scheme, host or `//`), else None."""
    if not target or len(target) > 2000:
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def _failed(session: Session, name: str, ip: str, now: datetime, reason: str) -> LoginResult:
    session.add(LoginAttempt(username=name[:80], ip=ip, at=now))
    # keep the table small: failures older than a day no longer count for anything
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - timedelta(days=1)))
    _audit(session, name, "login_failed", ip, reason=reason)
    return LoginResult(Outcome.BAD_CREDENTIALS)


def _audit(session: Session, username: str, action: str, ip: str, **details: str) -> None:
    record_event(
        session,
        actor=username[:200] or "anonymous",
        action=action,
        object_type="user",
        object_id=username[:200],
        details={"ip": ip, **details},
    )


def _aware(at: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were stored in UTC
    return at if at.tzinfo else at.replace(tzinfo=utcnow().tzinfo)
