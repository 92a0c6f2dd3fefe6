"""Import users, teams and dated memberships from a CSV or XLSX sheet, all or nothing.

One row per membership (a user in a team with a role and dates); rows with a team but no
username just declare a team. Every row is checked before anything is written, and every
problem is reported with its row number (the header is row 1, as in a spreadsheet).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.messages import N_, translate
from quotaflow.org.models import Membership, Team, User
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES
from quotaflow.org.services import (
    TEAM_KEY_RE,
    OrgError,
    add_membership,
    add_user,
    check_email,
    check_username,
    ensure_team,
    user_by_username,
)
from quotaflow.spreadsheets import UnreadableText, uploaded_csv_text

COLUMNS = (
    "username",
    "display_name",
    "email",
    "team",
    "team_name",
    "parent_team",
    "role",
    "valid_from",
    "valid_to",
    "is_admin",
)
REQUIRED_COLUMNS = ("username", "team")
TRUE = {"1", "true", "yes", "y", "x", "是"}
FALSE = {"0", "false", "no", "n", "否"}


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with one row (0: the file), said in any language: str() is English."""

    row: int
    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: int, error: BaseException) -> Problem:
        """An error raised by a check (its template, when it has one) as this row's problem."""
        msgid = getattr(error, "msgid", None)
        return cls(row, msgid, getattr(error, "params", {})) if msgid else cls(row, str(error))

    def in_locale(self, locale: str | None) -> str:
        said = translate(locale, self.msgid, **self.params)  # (no params: the text as it is)
        if not self.row:
            return said
        return translate(locale, N_("row {number}: {problem}"), number=self.row, problem=said)

    def __str__(self) -> str:
        return self.in_locale("en")


class OrgImportError(OrgError):
    """The sheet has problems; nothing was imported. `problems` lists them by row."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"{len(problems)} problem(s), nothing was imported:\n{shown}")

    def problems_in(self, locale: str | None) -> list[str]:
        """Each problem, said in `locale`."""
        return [p.in_locale(locale) for p in self.problems]


@dataclass(frozen=True, slots=True)
class OrgRow:
    """One checked row; None means the cell was blank."""

    row: int
    username: str | None
    display_name: str | None
    email: str | None
    team: str | None
    team_name: str | None
    parent_team: str | None
    role: str | None
    valid_from: date
    valid_to: date | None
    is_admin: bool | None


@dataclass
class ImportReport:
    """What the import changed."""

    teams_created: int = 0
    teams_renamed: int = 0
    users_created: int = 0
    users_updated: int = 0
    memberships_added: int = 0
    memberships_updated: int = 0
    memberships_unchanged: int = 0
    users_without_password: list[str] = field(default_factory=list)
    # who and what, as the check page lists them ("Li Jun (li.jun)"): a sheet read in the
    # wrong encoding shows in its names before anything is written
    teams_created_names: list[str] = field(default_factory=list)
    users_created_names: list[str] = field(default_factory=list)
    users_updated_names: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """A summary for people."""
        out = [
            f"teams: {self.teams_created} created, {self.teams_renamed} renamed",
            f"users: {self.users_created} created, {self.users_updated} updated",
            f"memberships: {self.memberships_added} added, {self.memberships_updated} updated, "
            f"{self.memberships_unchanged} unchanged",
        ]
        if self.users_without_password:
            out.append(
                f"{len(self.users_without_password)} new user(s) cannot sign in until they "
                "have a password: quotaflow user set-password USERNAME"
            )
        return out


# --- reading ----------------------------------------------------------------------------------


def read_sheet(path: Path, *, org_columns: bool = True) -> list[tuple[int, dict[str, Any]]]:
    """(row number, {column: cell}) for every non-blank data row of a .csv or .xlsx file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        raw = _read_csv(path)
    elif suffix in {".xlsx", ".xlsm"}:
        raw = _read_xlsx(path)
    else:
        raise OrgError(f"{path.name}: expected a .csv or .xlsx file")
    rows = iter(raw)
    header = next(rows, None)
    if header is None:
        raise OrgImportError([Problem(1, N_("the file is empty"))])
    columns = [str(c or "").strip().lower() for c in header]
    if org_columns:
        _check_header(columns)
    out = []
    for number, cells in enumerate(rows, start=2):
        record = {c: cells[i] if i < len(cells) else None for i, c in enumerate(columns) if c}
        if any(_text(v) for v in record.values()):
            out.append((number, record))
    return out


def _read_csv(path: Path) -> list[list[Any]]:
    try:
        text = uploaded_csv_text(path.read_bytes())
    except UnreadableText as exc:
        raise OrgImportError(
            [Problem(0, N_("{file}: {problem}"), {"file": path.name, "problem": str(exc)})]
        ) from None
    return [list(r) for r in csv.reader(io.StringIO(text, newline=""))]


def _read_xlsx(path: Path) -> list[list[Any]]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        return [list(r) for r in workbook.worksheets[0].iter_rows(values_only=True)]
    finally:
        workbook.close()


def _check_header(columns: list[str]) -> None:
    problems = [
        Problem(1, N_("unknown column '{column}' (columns are: {columns})"),
                {"column": c, "columns": ", ".join(COLUMNS)})
        for c in columns
        if c and c not in COLUMNS
    ]  # fmt: skip
    problems += [
        Problem(1, N_("the column '{column}' is missing"), {"column": c})
        for c in REQUIRED_COLUMNS
        if c not in columns
    ]
    if problems:
        raise OrgImportError(problems)


def slug(name: str) -> str:
    """'Moses Frase' -> 'moses.frase' (usernames); keys use '_' instead of '.'."""
    return re.sub(r"[^a-z0-9]+", ".", name.strip().lower()).strip(".")


def hierarchy_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    person: str,
    manager: str,
    unit: str,
    company: str = "Company",
    valid_from: date | None = None,
    rep_role: str = "rep",
    manager_role: str = "manager",
) -> list[tuple[int, dict[str, Any]]]:
    """Org-import rows from a flat export of (person, manager, unit) — e.g. a CRM's sales teams.

    The company is the root, each unit (a regional office) a team under it, each manager a team
    under their unit that they manage, and each person a rep in their manager's team.
    """
    start = valid_from.isoformat() if valid_from else ""
    out: list[tuple[int, dict[str, Any]]] = [(1, {"team": "company", "team_name": company})]
    teams_seen: set[str] = set()
    managers_seen: set[str] = set()
    for number, cells in rows:
        missing = [c for c in (person, manager, unit) if c not in cells]
        if missing:
            raise OrgImportError(
                [Problem(1, N_("the column '{column}' is missing"), {"column": missing[0]})]
            )
        who, boss, where = (_text(cells[c]) or "" for c in (person, manager, unit))
        unit_key, team_key = slug(where).replace(".", "_"), slug(boss).replace(".", "_") + "_team"
        if where and unit_key not in teams_seen:
            teams_seen.add(unit_key)
            out.append((number, {"team": unit_key, "team_name": where, "parent_team": "company"}))
        if boss and boss not in managers_seen:
            managers_seen.add(boss)
            out.append(
                (number, {"team": team_key, "team_name": f"{boss} team", "parent_team": unit_key})
            )
            out.append(
                (
                    number,
                    {
                        "username": slug(boss),
                        "display_name": boss,
                        "team": team_key,
                        "role": manager_role,
                        "valid_from": start,
                    },
                )
            )
        if who:
            out.append(
                (
                    number,
                    {
                        "username": slug(who),
                        "display_name": who,
                        "team": team_key,
                        "role": rep_role,
                        "valid_from": start,
                    },
                )
            )
    return out


# --- checking ---------------------------------------------------------------------------------


def parse_rows(
    rows: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    today: date,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
) -> tuple[list[OrgRow], list[Problem]]:
    """Typed rows and the problems of each row on its own (cross-row checks come later)."""
    parsed: list[OrgRow] = []
    problems: list[Problem] = []
    for number, cells in rows:
        row, row_problems = _parse_row(number, cells, today, role_capabilities)
        problems += row_problems
        if row is not None:
            parsed.append(row)
    return parsed, problems


def _parse_row(
    number: int, cells: Mapping[str, Any], today: date, role_capabilities: Mapping[str, str]
) -> tuple[OrgRow | None, list[Problem]]:
    problems: list[Problem] = []

    def fail(message: str, **params: Any) -> None:
        problems.append(Problem(number, message, params))

    username = (_text(cells.get("username")) or "").lower() or None
    if username:
        try:
            check_username(username)
        except OrgError as exc:
            problems.append(Problem.of(number, exc))
    email = _text(cells.get("email"))
    try:
        check_email(email)
    except OrgError as exc:
        problems.append(Problem.of(number, exc))
    team, parent = _key(cells.get("team")), _key(cells.get("parent_team"))
    for name, key in (("team", team), ("parent_team", parent)):
        if key and not TEAM_KEY_RE.match(key):
            fail(N_("{column} '{key}' must be lower-case letters, digits, '_', '.' or '-'"),
                 column=name, key=key)  # fmt: skip
    role = _text(cells.get("role"))
    if role and role not in role_capabilities:
        fail(N_("role '{role}' is unknown (known roles: {roles})"), role=role,
             roles=", ".join(sorted(role_capabilities)))  # fmt: skip
    if username and team and not role:
        fail(N_("user '{username}' in team '{team}' needs a role"), username=username, team=team)
    if role and not (username and team):
        fail(N_("role '{role}' needs both a username and a team"), role=role)
    if not username and not team:
        fail(N_("a row needs a username, a team, or both"))
    valid_from = _date(cells.get("valid_from"), "valid_from", fail) or today
    valid_to = _date(cells.get("valid_to"), "valid_to", fail)
    if valid_to is not None and valid_to <= valid_from:
        fail(N_("valid_to {valid_to} is not after valid_from {valid_from}"),
             valid_to=valid_to.isoformat(), valid_from=valid_from.isoformat())  # fmt: skip
    is_admin = _bool(cells.get("is_admin"), fail)
    if problems:
        return None, problems
    return OrgRow(
        number,
        username,
        _text(cells.get("display_name")),
        email,
        team,
        _text(cells.get("team_name")),
        parent,
        role,
        valid_from,
        valid_to,
        is_admin,
    ), []


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a spreadsheet turns 7 into 7.0
    text = str(value).strip()
    return text or None


def _key(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


def _date(value: Any, column: str, fail: Callable[..., None]) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return date.fromisoformat(text[:10] if len(text) > 10 and text[10] in " T" else text)
    except ValueError:
        fail(N_("{column} '{text}' is not a date (use YYYY-MM-DD)"), column=column, text=text)
        return None


def _bool(value: Any, fail: Callable[..., None]) -> bool | None:
    if isinstance(value, bool):
        return value
    text = (_text(value) or "").lower()
    if not text:
        return None
    if text in TRUE or text in FALSE:
        return text in TRUE
    fail(N_("is_admin '{text}' must be yes or no"), text=text)
    return None


# --- planning (cross-row and database checks) ------------------------------------------------


@dataclass
class _TeamPlan:
    key: str
    row: int
    name: str | None = None
    name_row: int = 0
    parent: str | None = None
    parent_row: int = 0


def check_teams(session: Session, rows: list[OrgRow]) -> tuple[list[_TeamPlan], list[Problem]]:
    """Team definitions merged over rows, in creation order (parents first), and problems."""
    problems: list[Problem] = []
    plans: dict[str, _TeamPlan] = {}
    for row in rows:
        if not row.team:
            continue
        plan = plans.setdefault(row.team, _TeamPlan(row.team, row.row))
        for attr, value in (("name", row.team_name), ("parent", row.parent_team)):
            if value is None:
                continue
            seen = getattr(plan, attr)
            if seen is not None and seen != value:
                message = N_(
                    "team '{team}' has {column} '{value}' here but '{seen}' in row {first}"
                )
                column = "team_name" if attr == "name" else "parent_team"
                first = getattr(plan, attr + "_row")
                params = {"team": row.team, "column": column, "value": value, "seen": seen}
                problems.append(Problem(row.row, message, {**params, "first": first}))
            else:
                setattr(plan, attr, value)
                setattr(plan, attr + "_row", row.row)
    existing = {t.key: t for t in session.scalars(select(Team))}
    parent_key = {t.id: t.key for t in existing.values()}
    roots = [t.key for t in existing.values() if t.parent_id is None]
    for plan in plans.values():
        problems += _check_team(plan, existing, parent_key, plans, roots)
    problems += _cycles(plans, existing, parent_key)
    return _parents_first(plans, existing), problems


def _check_team(
    plan: _TeamPlan,
    existing: dict[str, Team],
    parent_key: dict[int, str],
    plans: dict[str, _TeamPlan],
    roots: list[str],
) -> list[Problem]:
    row = plan.parent_row or plan.row
    if plan.key in existing:
        team = existing[plan.key]
        now_parent = parent_key.get(team.parent_id) if team.parent_id else None
        if plan.parent is not None and plan.parent != now_parent:
            if now_parent:
                under = N_("team '{team}' is under '{now}' in the database; an import does not "
                           "move teams (parent_team '{parent}')")  # fmt: skip
                return [
                    Problem(
                        row, under, {"team": plan.key, "now": now_parent, "parent": plan.parent}
                    )
                ]
            top = N_("team '{team}' is the top of the org in the database; an import does not "
                     "move teams (parent_team '{parent}')")  # fmt: skip
            return [Problem(row, top, {"team": plan.key, "parent": plan.parent})]
        return []
    if plan.parent is None:
        if not roots:
            roots.append(plan.key)  # the first team of an empty org is the company
            return []
        # a key not in the database: a new team, so it needs a place in the org
        unknown = N_("there is no team '{team}': use the key of an existing team (see Teams; "
                     "keys: {keys}), or give parent_team to create it")  # fmt: skip
        known = sorted((set(existing) | set(plans)) - {plan.key})  # the database's and the file's
        keys = ", ".join(known[:12]) + (" …" if len(known) > 12 else "")
        return [Problem(plan.row, unknown, {"team": plan.key, "keys": keys})]
    if plan.parent not in plans and plan.parent not in existing:
        missing = N_("parent team '{parent}' of '{team}' is neither in the file nor in the "
                     "database")  # fmt: skip
        return [Problem(row, missing, {"parent": plan.parent, "team": plan.key})]
    return []


def _cycles(
    plans: dict[str, _TeamPlan], existing: dict[str, Team], parent_key: dict[int, str]
) -> list[Problem]:
    def parent_of(key: str) -> str | None:
        if key in plans and plans[key].parent is not None:
            return plans[key].parent
        team = existing.get(key)
        return parent_key.get(team.parent_id) if team and team.parent_id else None

    problems = []
    for plan in plans.values():
        chain, key = [plan.key], parent_of(plan.key)
        while key is not None and key not in chain and len(chain) < 10_000:
            chain.append(key)
            key = parent_of(key)
        if key == plan.key:
            problems.append(
                Problem(plan.parent_row or plan.row,
                        N_("team '{team}' would be its own ancestor ({chain})"),
                        {"team": plan.key, "chain": " → ".join([*chain, key])})
            )  # fmt: skip
    return problems


def _parents_first(plans: dict[str, _TeamPlan], existing: dict[str, Team]) -> list[_TeamPlan]:
    ordered: list[_TeamPlan] = []
    done: set[str] = set(existing)

    def visit(plan: _TeamPlan, depth: int = 0) -> None:
        if plan.key in {p.key for p in ordered} or depth > len(plans):
            return
        if plan.parent in plans and plan.parent not in done:
            visit(plans[plan.parent], depth + 1)
        ordered.append(plan)
        done.add(plan.key)

    for plan in plans.values():
        visit(plan)
    return ordered


def check_users(session: Session, rows: list[OrgRow]) -> list[Problem]:
    """Conflicting values for one user across rows; missing names for new users."""
    problems: list[Problem] = []
    seen: dict[str, dict[str, tuple[Any, int]]] = {}
    memberships: dict[tuple[str, str, str, date], int] = {}
    for row in rows:
        if not row.username:
            continue
        fields = seen.setdefault(row.username, {})
        for attr in ("display_name", "email", "is_admin"):
            value = getattr(row, attr)
            if value is None:
                continue
            if attr in fields and fields[attr][0] != value:
                first, first_row = fields[attr]
                message = N_(
                    "user '{username}' has {column} '{value}' here but '{first}' in row {row}"
                )
                params = {"username": row.username, "column": attr, "value": value, "first": first}
                problems.append(Problem(row.row, message, {**params, "row": first_row}))
            fields.setdefault(attr, (value, row.row))
        if row.team and row.role:
            key = (row.username, row.team, row.role, row.valid_from)
            if key in memberships:
                problems.append(Problem(row.row, N_("the same membership as row {row}"),
                                        {"row": memberships[key]}))  # fmt: skip
            memberships.setdefault(key, row.row)
    for username, fields in seen.items():
        if "display_name" not in fields and user_by_username(session, username) is None:
            first_row = min(r.row for r in rows if r.username == username)
            problems.append(Problem(first_row, N_("new user '{username}' needs a display_name"),
                                    {"username": username}))  # fmt: skip
    return problems


# --- applying ---------------------------------------------------------------------------------


def import_org(
    session: Session,
    cells: Iterable[tuple[int, Mapping[str, Any]]],
    *,
    actor: str,
    today: date,
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
    progress: Callable[[int], None] = lambda _n: None,
) -> ImportReport:
    """Check every row, then apply all of them in the caller's transaction (or raise)."""
    rows, problems = parse_rows(cells, today=today, role_capabilities=role_capabilities)
    team_plans, team_problems = check_teams(session, rows)
    problems += team_problems + check_users(session, rows)
    if problems:
        raise OrgImportError(sorted(problems, key=lambda p: p.row))
    report = ImportReport()
    teams = _apply_teams(session, team_plans, report)
    users: dict[str, User] = {}
    for row in rows:
        if row.username:
            user = users.get(row.username) or _apply_user(session, row, report)
            users[row.username] = user
            _merge_fields(user, row)
            if row.team and row.role:
                _apply_membership(session, user, teams[row.team], row, report)
        progress(1)
    record_event(
        session,
        actor=actor,
        action="org_import",
        object_type="org",
        object_id="import",
        details={k: v for k, v in vars(report).items() if isinstance(v, int)},
    )
    return report


def _apply_teams(session: Session, plans: list[_TeamPlan], report: ImportReport) -> dict[str, Team]:
    teams = {t.key: t for t in session.scalars(select(Team))}
    for plan in plans:
        team = teams.get(plan.key)
        if team is None:
            parent = teams[plan.parent] if plan.parent else None
            team = ensure_team(session, key=plan.key, name=plan.name or plan.key, parent=parent)
            teams[plan.key] = team
            report.teams_created += 1
            report.teams_created_names.append(f"{team.name} ({team.key})")
        elif plan.name and team.name != plan.name:
            team.name = plan.name
            report.teams_renamed += 1
    return teams


def _apply_user(session: Session, row: OrgRow, report: ImportReport) -> User:
    assert row.username is not None
    user = user_by_username(session, row.username)
    if user is None:
        user = add_user(session, username=row.username, display_name=row.display_name or "")
        report.users_created += 1
        report.users_without_password.append(user.username)
        report.users_created_names.append(f"{row.display_name or ''} ({user.username})".strip())
    elif any(
        value is not None and getattr(user, attr) != value
        for attr, value in (
            ("display_name", row.display_name),
            ("email", row.email),
            ("is_admin", row.is_admin),
        )
    ):
        report.users_updated += 1
        shown = row.display_name or user.display_name
        report.users_updated_names.append(f"{shown} ({user.username})")
    return user


def _merge_fields(user: User, row: OrgRow) -> None:
    for attr in ("display_name", "email", "is_admin"):
        value = getattr(row, attr)
        if value is not None:
            setattr(user, attr, value)


def _apply_membership(
    session: Session, user: User, team: Team, row: OrgRow, report: ImportReport
) -> None:
    assert row.role is not None
    same = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id,
            Membership.team_id == team.id,
            Membership.role == row.role,
            Membership.valid_from == row.valid_from,
        )
    )
    if same is None:
        add_membership(
            session,
            user=user,
            team=team,
            role=row.role,
            valid_from=row.valid_from,
            valid_to=row.valid_to,
        )
        report.memberships_added += 1
    elif same.valid_to != row.valid_to:
        same.valid_to = row.valid_to
        report.memberships_updated += 1
    else:
        report.memberships_unchanged += 1
