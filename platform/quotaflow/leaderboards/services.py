"""A leaderboard for a period: who is where, who moved, who won what.

Figures come from the KPI engine (or a scorecard's final scores), for the period and for the
one before it, so each row knows its rank change. A board can be narrowed to a team: its
reps (by the memberships valid in the period) or its sub-teams.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from quotaflow.errors import QuotaflowError
from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.periods import Period, period_containing
from quotaflow.leaderboards.ranking import competition_ranks, ordered, winners
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import LeaderboardDef, label_text

# Scores for a scorecard board: (session, pack, scorecard id, period) -> rep id -> final score.
ScoreSource = Callable[[Session, CompiledPack, str, Period], Mapping[int, Any]]


class LeaderboardError(QuotaflowError):
    """A leaderboard that does not exist, or a scope it cannot show."""


@dataclass(frozen=True, slots=True)
class BoardRow:
    """One rep or team on the board."""

    key: int
    name: str
    value: Any
    rank: int | None
    previous_rank: int | None
    awards: tuple[str, ...] = ()

    @property
    def change(self) -> int | None:
        """Places gained since the previous period (negative: lost), None if new or unranked."""
        if self.rank is None or self.previous_rank is None:
            return None
        return self.previous_rank - self.rank


@dataclass(frozen=True, slots=True)
class Board:
    """A leaderboard computed for one period and scope."""

    definition: LeaderboardDef
    period: Period
    previous: Period
    unit: str
    rows: tuple[BoardRow, ...]
    team_id: int | None = None

    def podium(self, viewer_key: int | None = None, places: int = 3) -> list[BoardRow]:
        """The first `places` ranked rows, plus the viewer's own when it is below them."""
        top = [r for r in self.rows if r.rank is not None][:places]
        own = next((r for r in self.rows if r.key == viewer_key and r not in top), None)
        return [*top, own] if own is not None else top

    def shown(self, viewer_key: int | None = None) -> list[BoardRow]:
        """The first `limit` rows, plus the viewer's own row when it falls below the line."""
        limit = self.definition.limit
        if limit is None or len(self.rows) <= limit:
            return list(self.rows)
        top = list(self.rows[:limit])
        own = next((r for r in self.rows[limit:] if r.key == viewer_key), None)
        return [*top, own] if own is not None else top


def board_of(pack: CompiledPack, board_id: str) -> LeaderboardDef:
    try:
        return pack.leaderboards[board_id]
    except KeyError:
        known = ", ".join(sorted(pack.leaderboards)) or "none"
        raise LeaderboardError(
            f"no leaderboard '{board_id}' in pack {pack.id} (leaderboards: {known})"
        ) from None


def board_period(pack: CompiledPack, board: LeaderboardDef, day: date) -> Period:
    """The board's period (month, quarter...) that `day` falls in."""
    return period_containing(day, board.period, pack.pack.fiscal_year_start)


def leaderboard(
    session: Session,
    pack: CompiledPack,
    board_id: str,
    period: Period,
    *,
    team_id: int | None = None,
    locale: str = "en",
    scores: ScoreSource | None = None,
    today: date | None = None,
) -> Board:
    """The board for `period`, narrowed to `team_id`'s reps or sub-teams when given."""
    board = board_of(pack, board_id)
    engine = KpiEngine(session, pack, today=today)
    if team_id is not None and team_id not in engine.org.teams:
        raise LeaderboardError(f"no team with id {team_id}")
    previous = period.previous()
    higher_is_better = True
    unit: str
    now: dict[Any, Any]
    before: dict[Any, Any]
    if board.kpi is not None:
        kpi = engine.kpi(board.kpi)
        higher_is_better, unit = kpi.higher_is_better, kpi.unit
        now = dict(engine.figures(board.kpi, period, board.by).values)
        before = dict(engine.figures(board.kpi, previous, board.by).values)
    else:
        if scores is None:
            raise LeaderboardError(
                f"leaderboard '{board.id}' ranks by a scorecard: no scores given"
            )
        assert board.scorecard is not None
        unit = "score"
        now = dict(scores(session, pack, board.scorecard, period))
        before = dict(scores(session, pack, board.scorecard, previous))
    keys = _scope(engine, board, period, team_id, now)
    now_in_scope: dict[int, Any] = {k: now.get(k) for k in keys}
    before_keys = _scope(engine, board, previous, team_id, before)
    ranks = competition_ranks(now_in_scope, higher_is_better=higher_is_better)
    previous_ranks = competition_ranks(
        {k: before.get(k) for k in before_keys}, higher_is_better=higher_is_better
    )
    awards = _awards(engine, board, period, now_in_scope, higher_is_better, locale)
    names = {k: v[1] for k, v in engine.scope_names(board.by, keys).items() if k is not None}
    rows = tuple(
        BoardRow(
            key,
            names.get(key, f"#{key}"),
            now_in_scope[key],
            ranks[key],
            previous_ranks.get(key),
            tuple(label for label, won in awards if key in won),
        )
        for key in ordered(ranks, lambda k: names.get(k, ""))
    )
    return Board(board, period, previous, unit, rows, team_id)


def _scope(
    engine: KpiEngine,
    board: LeaderboardDef,
    period: Period,
    team_id: int | None,
    values: Mapping[Any, Any],
) -> list[int]:
    """Who is on the board: reps (with a membership in the period) or teams where reps sit."""
    org = engine.org
    if board.by == "rep":
        if team_id is None:
            reps = org.members_on(period, engine.rep_roles())
            return sorted(reps | {k for k in values if k is not None and k in reps})
        return sorted(
            user
            for (user, team) in org.intervals(period)
            if team == team_id and user in org.members_on(period, engine.rep_roles())
        )
    seated = set(org.home_teams(period, engine.rep_roles()).values())
    # a team's figure holds its sub-teams': a seated team with a seated team below it would
    # count them twice (and the company, a rep sitting in it, would top every board)
    above = {a for t in seated for a in org.ancestors.get(t, (t,))[1:]}
    seated -= above
    if team_id is None:
        return sorted(seated)
    return sorted(t for t in seated if team_id in org.ancestors.get(t, ()))


def _awards(
    engine: KpiEngine,
    board: LeaderboardDef,
    period: Period,
    values: Mapping[int, Any],
    higher_is_better: bool,
    locale: str,
) -> list[tuple[str, set[int]]]:
    out = []
    for award in board.awards:
        label = label_text(award.label, locale)
        if award.kpi is None:
            pool, better = values, higher_is_better
        else:
            kpi = engine.kpi(award.kpi)
            figures = engine.figures(award.kpi, period, board.by).values
            pool, better = {k: figures.get(k) for k in values}, kpi.higher_is_better
        minimum = Decimal(str(award.min)) if award.min is not None else None
        out.append((label, winners(pool, award.top, higher_is_better=better, minimum=minimum)))
    return out


def scorecard_scores(
    session: Session, pack: CompiledPack, card_id: str, period: Period
) -> dict[int, Any]:
    """Final scores of a scorecard for a period: the frozen results once its appraisal is
    closed, the live ones (with the ratings given so far) while it is open, else live without
    ratings."""
    from quotaflow.scorecards.cycle import results_for
    from quotaflow.scorecards.models import AppraisalPeriod
    from quotaflow.scorecards.scoring import score_period

    row = session.scalar(
        select(AppraisalPeriod).where(
            AppraisalPeriod.pack_id == pack.id,
            AppraisalPeriod.scorecard_id == card_id,
            AppraisalPeriod.period == period.label,
        )
    )
    if row is not None:
        return {rep: shown.final_score for rep, shown in results_for(session, pack, row).items()}
    results = score_period(session, pack, card_id, period)
    return {rep: result.final_score for rep, result in results.items()}
