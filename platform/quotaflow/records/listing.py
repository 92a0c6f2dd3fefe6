"""One page of a form's records: filters, sort and paging on top of `visible_records`.

The caller passes the visible-records SELECT (access is decided in records/access.py);
this module only narrows, orders and counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, or_, select
from sqlalchemy.orm import Session

from quotaflow.ids import id_from
from quotaflow.org.models import Team, User
from quotaflow.packs.definitions import FormDef
from quotaflow.records.models import Record

PAGE_SIZE = 25
SORTS = ("updated", "created", "title", "date", "amount", "stage", "owner")
NEWEST_FIRST = frozenset({"updated", "created", "date", "amount"})


@dataclass(frozen=True)
class ListQuery:
    """What the person asked for in the list's query string (bad values are ignored)."""

    q: str = ""
    owner: int | None = None
    team: int | None = None
    stage: str = ""
    date_from: date | None = None
    date_to: date | None = None
    sort: str = "-updated"
    page: int = 1
    deleted: bool = False

    @classmethod
    def from_args(cls, args: Mapping[str, str], *, deleted_allowed: bool) -> ListQuery:
        """Read the query string; unknown or malformed values fall back to the defaults."""
        sort = args.get("sort", "")
        return cls(
            q=args.get("q", "").strip()[:200],
            owner=_int(args.get("owner")),
            team=_int(args.get("team")),
            stage=args.get("stage", "")[:64],
            date_from=_date(args.get("from")),
            date_to=_date(args.get("to")),
            sort=sort if sort.lstrip("-") in SORTS else "-updated",
            page=max(_int(args.get("page")) or 1, 1),
            deleted=deleted_allowed and args.get("deleted") in ("1", "on", "y"),
        )

    def args(self, **changes: Any) -> dict[str, str]:
        """The query string for this query with some values changed (for links)."""
        query = replace(self, **changes)
        out = {
            "q": query.q,
            "owner": str(query.owner or ""),
            "team": str(query.team or ""),
            "stage": query.stage,
            "from": query.date_from.isoformat() if query.date_from else "",
            "to": query.date_to.isoformat() if query.date_to else "",
            "sort": "" if query.sort == "-updated" else query.sort,
            "page": "" if query.page == 1 else str(query.page),
            "deleted": "1" if query.deleted else "",
        }
        return {k: v for k, v in out.items() if v}

    def sort_link(self, column: str) -> dict[str, str]:
        """Sort by `column`, or the other way round when it is already sorted by it. Amounts
        and dates sort biggest and newest first, words from A."""
        if self.sort.lstrip("-") == column:
            return self.args(sort=column if self.sort.startswith("-") else f"-{column}", page=1)
        first = f"-{column}" if column in NEWEST_FIRST else column
        return self.args(sort=first, page=1)

    @property
    def filtered(self) -> bool:
        return bool(
            self.q or self.owner or self.team or self.stage or self.date_from or self.date_to
        )


@dataclass
class ListResult:
    """One page of records, the total, and the choices for the owner and team filters."""

    records: list[Record]
    total: int
    page: int
    pages: int
    owners: list[tuple[int, str]] = field(default_factory=list)
    teams: list[tuple[int, str]] = field(default_factory=list)
    owner_names: dict[int, str] = field(default_factory=dict)
    team_names: dict[int, str] = field(default_factory=dict)


def title_column(form: FormDef) -> Any:
    """The record's title (its title field in the values JSON) as a SQL text expression."""
    if not form.title_field:
        return cast(Record.id, String)
    return Record.values[form.title_field].as_string()


def title_matches(form: FormDef, text: str) -> ColumnElement[bool]:
    """Records whose title holds `text` in any case, or whose number it is ("42" or "#42"):
    what the list's search box and a reference field's search find."""
    holds = title_column(form).icontains(text, autoescape=True)
    number = id_from(text.strip().removeprefix("#"))
    return or_(holds, Record.id == number) if number is not None else holds


def filtered(base: Select[Any], form: FormDef, query: ListQuery) -> Select[Any]:
    """The visible records narrowed by the filters."""
    if query.deleted:
        base = base.where(Record.deleted_at.is_not(None))
    if query.q:
        base = base.where(title_matches(form, query.q))
    if query.owner:
        base = base.where(Record.owner_id == query.owner)
    if query.team:
        base = base.where(Record.team_id == query.team)
    if query.stage:
        base = base.where(Record.stage == query.stage)
    if query.date_from:
        base = base.where(Record.record_date >= query.date_from)
    if query.date_to:
        base = base.where(Record.record_date <= query.date_to)
    return base


def ordered(narrowed: Select[Any], form: FormDef, query: ListQuery) -> Select[Any]:
    """The records in the list's order (its sort, then the newest id first)."""
    return narrowed.order_by(*_order(form, query.sort))


def every_row(
    session: Session, base: Select[Any], form: FormDef, query: ListQuery, limit: int
) -> list[Record]:
    """Every record the filters keep, in the list's order, on all its pages (up to `limit`)."""
    return list(session.scalars(ordered(filtered(base, form, query), form, query).limit(limit)))


def _order(form: FormDef, sort: str) -> list[Any]:
    column = {
        "updated": Record.updated_at,
        "created": Record.created_at,
        "title": title_column(form),
        "date": Record.record_date,
        "amount": Record.amount_cents,
        "stage": Record.stage,
        "owner": select(User.display_name).where(User.id == Record.owner_id).scalar_subquery(),
    }[sort.lstrip("-")]
    first = column.desc().nulls_last() if sort.startswith("-") else column.asc().nulls_last()
    return [first, Record.id.desc()]


def list_page(
    session: Session, base: Select[Any], form: FormDef, query: ListQuery, size: int = PAGE_SIZE
) -> ListResult:
    """The page asked for (the last one when it asks past the end), with totals and choices."""
    narrowed = filtered(base, form, query)
    total = session.scalar(select(func.count()).select_from(narrowed.subquery())) or 0
    pages = max((total + size - 1) // size, 1)
    page = min(query.page, pages)
    rows = session.scalars(ordered(narrowed, form, query).offset((page - 1) * size).limit(size))
    result = ListResult(list(rows), total, page, pages)
    all_visible = base.subquery()
    owner_ids = select(all_visible.c.owner_id).distinct()
    team_ids = select(all_visible.c.team_id).distinct()
    result.owners = [
        (uid, name)
        for uid, name in session.execute(
            select(User.id, User.display_name)
            .where(User.id.in_(owner_ids))
            .order_by(User.display_name)
        )
    ]
    result.teams = [
        (tid, name)
        for tid, name in session.execute(
            select(Team.id, Team.name).where(Team.id.in_(team_ids)).order_by(Team.name)
        )
    ]
    result.owner_names = dict(result.owners)
    result.team_names = dict(result.teams)
    return result


def _int(value: str | None) -> int | None:
    return id_from(value)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None
