"""`quotaflow pipeline ...`: the funnel (as a table or CSV) and stale deals."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from quotaflow import db
from quotaflow.config import settings_from_env
from quotaflow.errors import QuotaflowError
from quotaflow.org.models import Team, User
from quotaflow.org.services import team_and_subteams
from quotaflow.packs.services import active_pack, installed_packs
from quotaflow.pipelines.funnel import funnel
from quotaflow.pipelines.services import stale_records
from quotaflow.records.models import Record

DateArg = click.DateTime(["%Y-%m-%d"])


@click.group("pipeline")
def pipeline_group() -> None:
    """Funnel reports and stale deals."""


def _pack_id(session: Session, pack_id: str | None) -> str:
    if pack_id:
        return pack_id
    packs = installed_packs(session)
    if len(packs) != 1:
        raise QuotaflowError(
            f"say which pack with --pack (installed: {', '.join(p.id for p in packs) or 'none'})"
        )
    return packs[0].id


def _scope(session: Session, team: str | None, rep: str | None) -> Select[Any]:
    query = select(Record)
    if team:
        found = session.scalars(select(Team).where(Team.key == team)).first()
        if found is None:
            raise QuotaflowError(f"no team '{team}'")
        query = query.where(Record.team_id.in_(team_and_subteams(session, found.id)))
    if rep:
        user = session.scalars(select(User).where(User.username == rep)).first()
        if user is None:
            raise QuotaflowError(f"no user '{rep}'")
        query = query.where(Record.owner_id == user.id)
    return query


@pipeline_group.command("funnel")
@click.argument("pipeline_id")
@click.option(
    "--from", "start", type=DateArg, required=True, help="First creation day (YYYY-MM-DD)."
)
@click.option("--to", "end", type=DateArg, required=True, help="Last creation day (YYYY-MM-DD).")
@click.option("--team", help="Team key (its sub-teams included).")
@click.option("--rep", help="Username.")
@click.option("--pack", "pack_id", help="Pack id (default: the only installed pack).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Write the table as CSV.")
def funnel_command(
    pipeline_id: str,
    start: datetime,
    end: datetime,
    team: str | None,
    rep: str | None,
    pack_id: str | None,
    csv_path: Path | None,
) -> None:
    """Count, amount, conversion and days per stage for deals created in a period."""
    sessions = db.open_sessions(settings_from_env().database_url)
    with sessions() as session:
        pack = active_pack(session, _pack_id(session, pack_id))
        if pipeline_id not in pack.pipelines:
            raise QuotaflowError(f"no pipeline '{pipeline_id}' in pack {pack.id}")
        report = funnel(
            session,
            pack,
            pipeline_id,
            start=start.date(),
            end=end.date(),
            base=_scope(session, team, rep),
        )
    if csv_path:
        csv_path.write_bytes(report.csv_bytes())
        click.echo(f"Wrote {csv_path}")
        return
    click.echo(f"{'stage':<18}{'count':>7}{'amount':>16}{'reached':>9}{'conv.':>8}{'days':>7}")
    for row in report.rows:
        conv = "" if row.conversion is None else f"{row.conversion:.0%}"
        days = "" if row.avg_days is None else f"{row.avg_days:.1f}"
        click.echo(
            f"{row.label:<18}{row.count:>7}{row.amount:>16,.2f}{row.reached:>9}{conv:>8}{days:>7}"
        )
    win = "—" if report.win_rate is None else f"{report.win_rate:.0%}"
    cycle = "—" if report.avg_cycle_days is None else f"{report.avg_cycle_days:.0f} days"
    click.echo(
        f"{report.records} deals; win rate {win}; average cycle {cycle}; "
        f"weighted pipeline {report.weighted_pipeline:,.2f}"
    )


@pipeline_group.command("stale")
@click.argument("pipeline_id")
@click.option("--pack", "pack_id", help="Pack id (default: the only installed pack).")
@click.option("--today", type=DateArg, default=None, help="Pretend today is this day.")
def stale_command(pipeline_id: str, pack_id: str | None, today: datetime | None) -> None:
    """Open deals nobody touched for the pipeline's stale_after_days."""
    sessions = db.open_sessions(settings_from_env().database_url)
    with sessions() as session:
        pack = active_pack(session, _pack_id(session, pack_id))
        if pipeline_id not in pack.pipelines:
            raise QuotaflowError(f"no pipeline '{pipeline_id}' in pack {pack.id}")
        day = today.date() if today else date.today()
        found = stale_records(session, pack, pipeline_id, today=day)
        owners = {u.id: u.username for u in session.scalars(select(User))}
        for record in found:
            idle = (day - record.updated_at.date()).days
            title = record.values.get("customer") or f"#{record.id}"
            owner = owners.get(record.owner_id, "?")
            click.echo(f"#{record.id:<6} {title:<28} {record.stage:<18} {owner:<14} {idle} days")
        click.echo(f"{len(found)} stale deals")
