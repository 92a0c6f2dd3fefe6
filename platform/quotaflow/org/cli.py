"""`quotaflow user ...` and `quotaflow org ...`: manage people and the team tree."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import click
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from rich.tree import Tree
from sqlalchemy import select
from sqlalchemy.orm import Session

from quotaflow import db
from quotaflow.audit import record_event
from quotaflow.config import settings_from_env
from quotaflow.org.models import User
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES, check_role_capabilities
from quotaflow.org.services import (
    OrgError,
    TeamNode,
    add_membership,
    add_user,
    check_email,
    check_password,
    check_username,
    current_memberships,
    set_active,
    set_password,
    team_by_key,
    team_tree,
    user_by_username,
)
from quotaflow.timeutil import utcnow

PROGRESS_FROM_ROWS = 500  # smaller sheets import in a blink; no bar


@contextmanager
def _transaction() -> Iterator[Session]:
    engine = db.make_engine(settings_from_env().database_url)
    try:
        db.ensure_migrated(engine)
        with db.transaction(db.make_sessionmaker(engine)) as session:
            yield session
    finally:
        engine.dispose()


def _actor() -> str:
    return f"cli:{getpass.getuser()}"


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(
            "Password", hide_input=True, confirmation_prompt="Repeat the password"
        )
    return check_password(password)


# --- quotaflow user ---------------------------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Add, list, deactivate users and set their passwords."""


@user_group.command("add")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="Full name, as people see it.")
@click.option("--email", default=None)
@click.option("--admin", "is_admin", is_flag=True, help="Grant the admin capability.")
@click.option("--team", "team_key", default=None, help="Team key to put the user in.")
@click.option("--role", default=None, help="Role in the team (e.g. account_manager).")
@click.option(
    "--valid-from",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="First day in the team (default: today).",
)
@click.option("--locale", type=click.Choice(["en", "zh"]), default="en", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_add(
    username: str,
    display_name: str,
    email: str | None,
    is_admin: bool,
    team_key: str | None,
    role: str | None,
    valid_from: object,
    locale: str,
    password_stdin: bool,
) -> None:
    """Create a user; asks for the password (twice, not shown) unless --password-stdin."""
    username = check_username(username.strip().lower())
    check_email(email)
    if bool(team_key) != bool(role):
        raise OrgError("--team and --role go together")
    if role and role not in DEFAULT_ROLE_CAPABILITIES:
        known = ", ".join(sorted(DEFAULT_ROLE_CAPABILITIES))
        raise OrgError(f"role '{role}' is unknown (known roles: {known})")
    password = _read_password(password_stdin)
    with _transaction() as session:
        user = add_user(
            session,
            username=username,
            display_name=display_name,
            email=email,
            password=password,
            is_admin=is_admin,
            locale=locale,
        )
        if team_key and role:
            team = team_by_key(session, team_key)
            if team is None:
                raise OrgError(f"there is no team '{team_key}' (see: quotaflow org tree)")
            start = valid_from.date() if valid_from else utcnow().date()  # type: ignore[attr-defined]
            add_membership(session, user=user, team=team, role=role, valid_from=start)
        record_event(
            session,
            actor=_actor(),
            action="user_add",
            object_type="user",
            object_id=username,
            details={"team": team_key or "", "role": role or ""},
        )
    click.echo(f"Added {username}{' (admin)' if is_admin else ''}.")


@user_group.command("list")
@click.option("--inactive/--no-inactive", default=True, help="Include deactivated users.")
def user_list(inactive: bool) -> None:
    """Every user with their teams and roles today."""
    with _transaction() as session:
        query = select(User).order_by(User.username)
        if not inactive:
            query = query.where(User.is_active.is_(True))
        users = session.scalars(query).all()
        memberships = current_memberships(session, utcnow().date())
        table = Table("username", "name", "e-mail", "teams today", "admin", "active")
        for user in users:
            teams = ", ".join(f"{m.team.key} ({m.role})" for m in memberships.get(user.id, []))
            table.add_row(
                user.username,
                user.display_name,
                user.email or "",
                teams,
                "yes" if user.is_admin else "",
                "yes" if user.is_active else "no",
            )
    Console(width=160).print(table)
    click.echo(f"{len(users)} user(s)")


@user_group.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def user_set_password(username: str, password_stdin: bool) -> None:
    """Set a user's password (their other sessions end)."""
    password = _read_password(password_stdin)
    with _transaction() as session:
        set_password(_user(session, username), password)
        record_event(
            session, actor=_actor(), action="user_password", object_type="user", object_id=username
        )
    click.echo(f"Password of {username} set.")


@user_group.command("deactivate")
@click.argument("username")
def user_deactivate(username: str) -> None:
    """Stop a user signing in (their records stay)."""
    _set_active(username, False)


@user_group.command("activate")
@click.argument("username")
def user_activate(username: str) -> None:
    """Let a deactivated user sign in again."""
    _set_active(username, True)


def _set_active(username: str, active: bool) -> None:
    with _transaction() as session:
        set_active(_user(session, username), active)
        record_event(
            session,
            actor=_actor(),
            object_type="user",
            object_id=username,
            action="user_activate" if active else "user_deactivate",
        )
    click.echo(f"{username} is {'active' if active else 'deactivated'}.")


def _user(session: Session, username: str) -> User:
    user = user_by_username(session, username)
    if user is None:
        raise OrgError(f"there is no user '{username}'")
    return user


# --- quotaflow org ----------------------------------------------------------------------------


@click.group("org")
def org_group() -> None:
    """Import and show the org: teams, users, dated memberships."""


@org_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--role",
    "extra_roles",
    multiple=True,
    metavar="NAME=CAPABILITY",
    help="A pack role and its capability (manager or rep); repeatable.",
)
@click.option("--dry-run", is_flag=True, help="Check the file and report; change nothing.")
@click.option(
    "--hierarchy",
    metavar="PERSON,MANAGER,UNIT",
    default=None,
    help="Read a flat export instead: the columns naming a person, their manager and their unit "
    "(e.g. sales_agent,manager,regional_office).",
)
@click.option("--company", default="Company", show_default=True, help="With --hierarchy: the root.")
@click.option(
    "--valid-from",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="With --hierarchy: when the memberships start (default today).",
)
def org_import(
    file: Path,
    extra_roles: tuple[str, ...],
    dry_run: bool,
    hierarchy: str | None,
    company: str,
    valid_from: object,
) -> None:
    """Import users, teams and memberships from a .csv or .xlsx file, all or nothing.

    Columns: username, display_name, email, team, team_name, parent_team, role,
    valid_from, valid_to, is_admin. One row per membership; a row with only a team
    declares a team. Dates are YYYY-MM-DD; a blank valid_from means today.
    """
    from quotaflow.org.importing import hierarchy_rows, import_org, read_sheet

    roles = dict(DEFAULT_ROLE_CAPABILITIES) | dict(_role_pair(item) for item in extra_roles)
    try:
        check_role_capabilities(roles)
    except ValueError as exc:
        raise OrgError(str(exc)) from None
    if hierarchy:
        columns = [c.strip().lower() for c in hierarchy.split(",")]
        if len(columns) != 3:
            raise OrgError("--hierarchy expects three columns: PERSON,MANAGER,UNIT")
        rows = hierarchy_rows(
            read_sheet(file, org_columns=False),
            person=columns[0],
            manager=columns[1],
            unit=columns[2],
            company=company,
            valid_from=valid_from.date() if valid_from else None,  # type: ignore[attr-defined]
        )
    else:
        rows = read_sheet(file)
    console = Console(stderr=True)
    with (
        _transaction() as session,
        Progress(
            console=console, transient=True, disable=len(rows) < PROGRESS_FROM_ROWS
        ) as progress,
    ):
        task = progress.add_task("Importing", total=len(rows))
        report = import_org(
            session,
            rows,
            actor=_actor(),
            today=utcnow().date(),
            role_capabilities=roles,
            progress=lambda n: progress.advance(task, n),
        )
        if dry_run:
            session.rollback()
    for line in report.lines():
        click.echo(line)
    click.echo("Dry run: nothing was changed." if dry_run else f"Imported {len(rows)} row(s).")


def _role_pair(item: str) -> tuple[str, str]:
    name, sep, capability = item.partition("=")
    if not sep or not name.strip() or not capability.strip():
        raise OrgError(f"--role expects NAME=CAPABILITY, got '{item}'")
    return name.strip(), capability.strip()


@org_group.command("tree")
@click.option(
    "--on",
    "on",
    type=click.DateTime(["%Y-%m-%d"]),
    default=None,
    help="Show memberships valid on this day (default: today).",
)
def org_tree(on: object) -> None:
    """Print the team tree with who is in each team."""
    day: date = on.date() if on else utcnow().date()  # type: ignore[attr-defined]
    with _transaction() as session:
        roots = team_tree(session, day)
        tree = Tree("org", hide_root=True)
        for node in roots:
            _add_node(tree, node)
    if not roots:
        click.echo("No teams yet: quotaflow org import FILE")
        return
    Console(width=160).print(tree)


def _add_node(parent: Tree, node: TeamNode) -> None:
    branch = parent.add(f"[bold]{node.team.name}[/] ({node.team.key})", highlight=False)
    for membership in node.members:
        branch.add(f"{membership.user.display_name} · {membership.role}", highlight=False)
    for child in node.children:
        _add_node(branch, child)
