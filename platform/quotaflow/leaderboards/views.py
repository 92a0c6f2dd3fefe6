"""Leaderboard pages: the boards a person may see, and one board for a period and team."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select

from quotaflow.errors import QuotaflowError
from quotaflow.kpis.periods import parse_period
from quotaflow.leaderboards.services import (
    Board,
    board_of,
    board_period,
    leaderboard,
    scorecard_scores,
)
from quotaflow.messages import said_in
from quotaflow.org.models import Membership, Team
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import LeaderboardDef
from quotaflow.packs.services import PackNotInstalled, active_pack, active_packs
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language

bp = Blueprint("leaderboards", __name__)


def _roles_held(today: date) -> set[str]:
    rows = request_session().scalars(
        select(Membership.role).where(
            Membership.user_id == current_user.id,
            Membership.valid_from <= today,
            (Membership.valid_to.is_(None)) | (Membership.valid_to > today),
        )
    )
    return set(rows)


def may_see(board: LeaderboardDef, roles: set[str]) -> bool:
    """Admins see every board; others the boards open to everyone or to a role they hold."""
    return bool(current_user.is_admin or (roles and (not board.roles or roles & set(board.roles))))


def visible_boards() -> list[tuple[CompiledPack, LeaderboardDef]]:
    roles = _roles_held(date.today())
    return [
        (pack, board)
        for pack in active_packs(request_session())
        for board in pack.leaderboards.values()
        if may_see(board, roles)
    ]


@bp.get("/leaderboards")
def index() -> ResponseReturnValue:
    """Every board the signed-in person may see, each with its first three this period and
    where the reader stands."""
    summaries = [(pack, board, _current(pack, board)) for pack, board in visible_boards()]
    return render_template("leaderboards/index.html", boards=summaries, me=current_user.id)


def _current(pack: CompiledPack, definition: LeaderboardDef) -> Board | None:
    """The board for its current period, company-wide; None when it cannot be computed (its
    page then says why)."""
    try:
        return leaderboard(
            request_session(), pack, definition.id, board_period(pack, definition, date.today()),
            locale=current_language(), scores=scorecard_scores,
        )  # fmt: skip
    except QuotaflowError:
        return None


@bp.get("/leaderboards/<pack_id>/<board_id>")
def show(pack_id: str, board_id: str) -> ResponseReturnValue:
    """One board: ?period=2026-11 (default: the current one), ?team=<key> to narrow it."""
    session = request_session()
    try:
        pack = active_pack(session, pack_id)
        definition = board_of(pack, board_id)
    except (PackNotInstalled, QuotaflowError):
        abort(404)
    if not may_see(definition, _roles_held(date.today())):
        abort(403)
    teams = list(session.execute(select(Team.id, Team.key, Team.name).order_by(Team.name)))
    team_key = request.args.get("team", "")
    team_id = next((t.id for t in teams if t.key == team_key), None)
    if team_key and team_id is None:
        abort(404)
    text = request.args.get("period", "").strip()
    error = None
    period = board_period(pack, definition, date.today())
    if text:
        try:
            period = parse_period(text, pack.pack.fiscal_year_start)
        except QuotaflowError as exc:
            error = said_in(current_language(), exc)
    board = leaderboard(
        session, pack, board_id, period, team_id=team_id, locale=current_language(),
        scores=scorecard_scores,
    )  # fmt: skip
    return render_template(
        "leaderboards/show.html",
        pack=pack,
        board=board,
        rows=board.shown(current_user.id if definition.by == "rep" else None),
        teams=teams,
        team=team_key,
        period_text=text or period.label,
        period_error=error,
        me=current_user.id,
    )
