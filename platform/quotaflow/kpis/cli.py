"""`quotaflow kpi show`: a KPI for a period per rep, team or company, as a table, JSON or CSV."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from quotaflow import db, spreadsheets
from quotaflow.config import settings_from_env
from quotaflow.errors import QuotaflowError
from quotaflow.kpis.engine import BY_CHOICES, KpiEngine
from quotaflow.kpis.periods import Period, parse_period, period_containing
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import label_text
from quotaflow.packs.services import active_pack, active_packs, installed_packs

FORMATS = ("table", "json", "csv", "xlsx")
OUTPUT = click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the table to this file (required for xlsx; csv and json too).",
)


PACK = click.option("--pack", "pack_id", help="Pack id (default: the only installed pack).")
FORMAT = click.option(
    "--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True
)
TODAY = click.option(
    "--today", type=click.DateTime(["%Y-%m-%d"]), help="Pretend today is this date."
)
F = TypeVar("F", bound=Callable[..., Any])


def table_options(command: F) -> F:
    """--pack, --format, --output, --today: what every command printing a table takes."""
    for option in reversed((PACK, FORMAT, OUTPUT, TODAY)):
        command = option(command)
    return command


@contextmanager
def pack_on_day(
    pack_id: str | None, today: datetime | None
) -> Iterator[tuple[Session, CompiledPack, date]]:
    """A session on the configured database, the pack asked for and the day it counts as."""
    sessions = db.open_sessions(settings_from_env().database_url)
    with sessions() as session:
        pack = pick_pack(session, pack_id)
        yield session, pack, pack_today(pack, today)


def pick_pack(session: Session, pack_id: str | None) -> CompiledPack:
    """The pack asked for, or the only installed one."""
    if not pack_id:
        packs = installed_packs(session)
        if len(packs) != 1:
            raise QuotaflowError(
                "say which pack with --pack "
                f"(installed: {', '.join(p.id for p in packs) or 'none'})"
            )
        pack_id = packs[0].id
    return active_pack(session, pack_id)


def pack_today(pack: CompiledPack, today: datetime | None) -> date:
    """--today, else today in the pack's time zone."""
    if today is not None:
        return today.date()
    return datetime.now(ZoneInfo(pack.pack.timezone)).date()


def pick_period(pack: CompiledPack, text: str | None, today: date) -> Period:
    if text:
        return parse_period(text, pack.pack.fiscal_year_start)
    return period_containing(today, "quarter")


def plain(value: Any) -> Any:
    """A value for JSON: Decimal as text (exact), blank as null."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def shown(value: Any, unit: str = "number") -> str:
    """A value for a table: money with separators, percentages, blank as an em dash."""
    if value is None:
        return "—"
    if unit == "percent":
        return f"{Decimal(str(value)) * 100:.1f} %"
    if isinstance(value, Decimal):
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def emit(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    fmt: str,
    units: Sequence[str] | None = None,
    right: Sequence[bool] | None = None,
    output: Path | None = None,
) -> None:
    """Print rows as a rich table, JSON (a list of objects) or CSV, or write them to `output`
    (CSV, JSON or an XLSX workbook whose numbers stay numbers)."""
    if fmt == "xlsx":
        if output is None:
            raise QuotaflowError("--format xlsx writes a file: add --output FILE.xlsx")
        output.write_bytes(spreadsheets.xlsx_bytes(columns, rows, title))
        click.echo(f"Wrote {len(rows)} row(s) to {output}")
        return
    if fmt in ("json", "csv"):
        if fmt == "json":
            out = [dict(zip(columns, (plain(v) for v in row), strict=True)) for row in rows]
            text = json.dumps(out, ensure_ascii=False, indent=2) + "\n"
        else:
            # a file gets the byte-order mark Excel wants; a terminal does not
            text = spreadsheets.csv_bytes(columns, rows).decode("utf-8")
            text = text if output is not None else text.removeprefix("\ufeff")
        if output is not None:
            output.write_text(text, encoding="utf-8")
            click.echo(f"Wrote {len(rows)} row(s) to {output}")
        else:
            click.echo(text, nl=False)
        return
    table = Table(title=title, title_justify="left")
    for i, name in enumerate(columns):
        table.add_column(name, justify="right" if right and right[i] else "left")
    for row in rows:
        table.add_row(
            *(
                shown(v, units[i] if units else "number") if not isinstance(v, str) else v
                for i, v in enumerate(row)
            )
        )
    Console(width=160).print(table)


@click.group("kpi")
def kpi_group() -> None:
    """KPI figures per rep, team or company."""


@kpi_group.command("show")
@click.argument("kpi_id")
@click.option(
    "--period",
    "period_text",
    help="2025-Q3, 2025-07, 2025-W14, 2025, FY2026, 2025-H1, "
    "2025-01-10..2025-02-20 (default: this quarter).",
)
@click.option("--by", type=click.Choice(BY_CHOICES), default="rep", show_default=True)
@table_options
def show_command(
    kpi_id: str,
    period_text: str | None,
    by: str,
    pack_id: str | None,
    fmt: str,
    output: Path | None,
    today: datetime | None,
) -> None:
    """Show KPI_ID for a period, one row per rep, team (with its sub-teams) or the company."""
    with pack_on_day(pack_id, today) as (session, pack, day):
        period = pick_period(pack, period_text, day)
        engine = KpiEngine(session, pack, today=day)
        kpi = engine.kpi(kpi_id)
        figures = engine.figures(kpi.id, period, by)  # type: ignore[arg-type]
        names = engine.scope_names(by, figures.values)  # type: ignore[arg-type]
        depths = engine.team_depths() if by == "team" else {}
        rows = []
        for key, value in figures.values.items():
            ident, name = names.get(key, (str(key), str(key)))
            if fmt == "table" and by == "team" and key is not None:
                name = "  " * depths.get(key, 0) + name
            rows.append((ident, name, value))
        if by == "team":
            order = {tid: i for i, tid in enumerate(_tree_order(engine))}
            keyed = dict(zip(figures.values, rows, strict=True))
            rows = [keyed[k] for k in sorted(keyed, key=lambda k: order.get(k or 0, 1 << 30))]
        elif by == "rep":
            rows.sort(key=lambda r: r[0])
        label = label_text(kpi.label, pack.pack.locale, kpi.id)
        emit(
            f"{label} ({kpi.id}) — {period.label} ({period.start} to {period.end}), by {by}",
            [by if by != "company" else "scope", "name", kpi.id],
            rows,
            fmt,
            units=["text", "text", kpi.unit],
            right=[False, False, True],
            output=output,
        )


def _tree_order(engine: KpiEngine) -> list[int]:
    """Team ids depth first, children by key (so a table reads as the org tree)."""
    teams = engine.org.teams
    children: dict[int | None, list[int]] = {}
    for tid, (_key, _name, parent) in sorted(teams.items(), key=lambda t: t[1][0]):
        children.setdefault(parent, []).append(tid)
    out: list[int] = []
    todo = list(reversed(children.get(None, [])))
    while todo:
        tid = todo.pop()
        if tid in out:
            continue
        out.append(tid)
        todo.extend(reversed(children.get(tid, [])))
    return out


@kpi_group.command("rollups")
@click.option("--pack", "pack_id", help="Pack id (default: every installed pack).")
@click.option("--rebuild", is_flag=True, help="Build them again from the records.")
def rollups_command(pack_id: str | None, rebuild: bool) -> None:
    """Show the maintained KPI roll-ups (which KPIs read them, their state, rows); with
    --rebuild, build them again from the records — after records were changed outside
    Quotaflow (psql, a restore), or to check nothing drifted."""
    from sqlalchemy import func, select

    from quotaflow.kpis import rollups
    from quotaflow.kpis.models import Rollup, RollupSet

    sessions = db.open_sessions(settings_from_env().database_url)
    with db.transaction(sessions) as session:
        packs = [pick_pack(session, pack_id)] if pack_id else active_packs(session)
        for pack in packs:
            if rebuild:
                built = rollups.rebuild(session, pack)
                click.echo(f"{pack.id}: rebuilt roll-ups for {len(built)} KPI(s)")
        counts = dict(
            session.execute(select(Rollup.set_id, func.count()).group_by(Rollup.set_id)).all()
        )
        rows = [
            (
                s.pack_id,
                s.kpi_id,
                s.state,
                counts.get(s.id, 0),
                s.built_at.strftime("%Y-%m-%d %H:%M"),
            )
            for s in session.scalars(
                select(RollupSet)
                .where(RollupSet.pack_id.in_([p.id for p in packs]))
                .order_by(RollupSet.pack_id, RollupSet.kpi_id)
            )
        ]
    emit(
        "KPI roll-ups (stale ones are not read: figures come from the records until rebuilt)",
        ["pack", "kpi", "state", "rows", "built (UTC)"],
        rows,
        "table",
        right=[False, False, False, True, False],
    )
