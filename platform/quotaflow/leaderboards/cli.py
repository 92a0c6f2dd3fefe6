"""`quotaflow leaderboard show BOARD`: the ranking for a period, ties, moves and awards."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click
from sqlalchemy import select

from quotaflow.errors import QuotaflowError
from quotaflow.kpis.cli import emit, pack_on_day, table_options
from quotaflow.kpis.periods import parse_period
from quotaflow.leaderboards.services import board_period, leaderboard, scorecard_scores
from quotaflow.org.models import Team
from quotaflow.packs.definitions import label_text
from quotaflow.spreadsheets import Verbatim


@click.group("leaderboard")
def leaderboard_group() -> None:
    """Rankings of reps or teams declared in the pack."""


@leaderboard_group.command("show")
@click.argument("board_id")
@click.option("--period", "period_text", help="2026-11, 2026-Q4, 2026, FY2026 (default: current).")
@click.option("--team", "team_key", help="Only this team's reps (or sub-teams), by team key.")
@table_options
def show_command(
    board_id: str,
    period_text: str | None,
    team_key: str | None,
    pack_id: str | None,
    fmt: str,
    output: Path | None,
    today: datetime | None,
) -> None:
    """Show BOARD_ID: rank, name, figure, change since the previous period, awards."""
    with pack_on_day(pack_id, today) as (session, pack, day):
        team_id = None
        if team_key:
            team_id = session.scalar(select(Team.id).where(Team.key == team_key))
            if team_id is None:
                raise QuotaflowError(f"no team with key '{team_key}'")
        from quotaflow.leaderboards.services import board_of

        definition = board_of(pack, board_id)
        period = (
            parse_period(period_text, pack.pack.fiscal_year_start)
            if period_text
            else board_period(pack, definition, day)
        )
        board = leaderboard(
            session, pack, board_id, period, team_id=team_id, locale=pack.pack.locale,
            scores=scorecard_scores, today=day,
        )  # fmt: skip
        rows = [
            (
                "—" if r.rank is None else str(r.rank),
                r.name,
                r.value,
                # made here, not typed by anyone: written as it is, never defused as a formula
                Verbatim(
                    "new"
                    if r.previous_rank is None and r.rank is not None
                    else ""
                    if r.change is None
                    else f"{r.change:+d}"
                    if r.change
                    else "="
                ),
                ", ".join(r.awards),
            )
            for r in board.rows
        ]
        title = label_text(definition.label, pack.pack.locale, definition.id)
        emit(
            f"{title} — {period.label} ({period.start} to {period.end}), "
            f"change since {board.previous.label}",
            ["rank", "name", definition.kpi or "score", "change", "awards"],
            rows,
            fmt,
            units=[
                "text",
                "text",
                "number" if board.unit == "score" else board.unit,
                "text",
                "text",
            ],
            right=[True, False, True, True, False],
            output=output,
        )
