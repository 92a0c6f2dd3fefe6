"""The appraisal cycle: open a period, rate, calibrate, close (freeze), publish, reopen.

State: open -> closed -> published; reopening (admin, with a reason) goes back to open and
drops the frozen results, which the next close writes again. While open, results are live
(computed from the records and ratings as they are); from close on, they are read from the
snapshot only, so a later definition change or record edit never rewrites them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.periods import Period, parse_period
from quotaflow.messages import N_, LocalizedError, translate
from quotaflow.org.models import User
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import ScorecardDef, ScoreItemDef
from quotaflow.packs.services import active_version_id
from quotaflow.records.access import managed_teams
from quotaflow.scorecards.engine import ScoreResult, item_id
from quotaflow.scorecards.models import (
    AppraisalNote,
    AppraisalPeriod,
    AppraisalRating,
    AppraisalResult,
)
from quotaflow.scorecards.scoring import people_scored, score_period
from quotaflow.timeutil import utcnow

RATERS = ("self", "manager")


WHOLE_NUMBER = N_("choose a whole number from {low} to {high}")
TOO_MANY = N_(
    "{count} of {total} people ({part}) have grade {grade}; the scheme allows at most {share} "
    "({allowed})"
)


class AppraisalError(LocalizedError):
    """A step of the cycle that is not allowed now, or not for this person."""


# --- reading ----------------------------------------------------------------------------------


def period_of(row: AppraisalPeriod, pack: CompiledPack) -> Period:
    return parse_period(row.period, pack.pack.fiscal_year_start)


def manual_items(card: ScorecardDef) -> list[tuple[str, ScoreItemDef]]:
    """(item id, item) of the items people rate."""
    return [(item_id(it, i), it) for i, it in enumerate(card.items) if it.manual is not None]


def rates(item: ScoreItemDef, rater: str) -> bool:
    """Whether this rater rates this item (rated_by manager, self, or both)."""
    return item.rated_by in (rater, "both")


def ratings_of(session: Session, period: AppraisalPeriod) -> list[AppraisalRating]:
    return list(
        session.scalars(select(AppraisalRating).where(AppraisalRating.period_id == period.id))
    )


def ratings_used(card: ScorecardDef, ratings: list[AppraisalRating]) -> dict[int, dict[str, Any]]:
    """rep -> item -> the rating that scores. For an item rated by both, the manager's rating
    scores and the self-assessment is shown beside it (decision: the rep's view informs the
    conversation, the manager decides). Drafts count while the period is open."""
    items = dict(manual_items(card))
    out: dict[int, dict[str, Any]] = {}
    for r in ratings:
        definition = items.get(r.item_id)
        if definition is None or r.value is None:
            continue
        scoring_rater = "self" if definition.rated_by == "self" else "manager"
        if r.rater == scoring_rater:
            out.setdefault(r.rep_id, {})[r.item_id] = r.value
    return out


def people_of(session: Session, pack: CompiledPack, row: AppraisalPeriod) -> list[int]:
    card = pack.scorecards[row.scorecard_id]
    engine = KpiEngine(session, pack)
    return sorted(people_scored(engine, card.applies_to.role, period_of(row, pack)))


def managed_reps(
    session: Session, pack: CompiledPack, row: AppraisalPeriod, manager_id: int
) -> set[int]:
    """Reps of the period whose team (at the period's end) is under the person's manager roles."""
    period = period_of(row, pack)
    teams = managed_teams(session, manager_id, pack.role_capabilities)
    managed = {
        t
        for t, start, end in session.execute(
            select(teams.c.team_id, teams.c.valid_from, teams.c.valid_to)
        )
        if start <= period.end and (end is None or end > period.start)
    }
    engine = KpiEngine(session, pack)
    return {
        user
        for (user, team) in engine.org.intervals(period)
        if team in managed and user != manager_id
    } & set(people_of(session, pack, row))


def live_results(
    session: Session, pack: CompiledPack, row: AppraisalPeriod, locale: str = "en"
) -> dict[int, ScoreResult]:
    card = pack.scorecards[row.scorecard_id]
    ratings = ratings_used(card, ratings_of(session, row))
    return score_period(
        session, pack, row.scorecard_id, period_of(row, pack), ratings=ratings, locale=locale
    )


@dataclass(frozen=True)
class Shown:
    """What a scorecard page shows for one rep: frozen once closed, live before."""

    rep_id: int
    final_score: Decimal
    grade: str
    bonus: Decimal
    explanation: dict[str, Any]
    frozen: bool


def explanation_of(result: ScoreResult) -> dict[str, Any]:
    """The full explanation as plain JSON (Decimals as text, exact)."""

    def text(value: Any) -> Any:
        return None if value is None else str(value)

    return {
        "scorecard": result.scorecard,
        "items": [
            {
                "id": i.id,
                "label": i.label,
                "group": i.group,
                "kind": i.kind,
                "actual": text(i.actual),
                "target": text(i.target),
                "attainment": text(i.attainment),
                "score": text(i.score),
                "weight": text(i.weight),
                "effective_weight": text(i.effective_weight),
                "contribution": text(i.contribution),
                "excluded": i.excluded,
            }  # fmt: skip
            for i in result.items
        ],
        "groups": [
            {
                "id": g.id,
                "weight": text(g.weight),
                "effective_weight": text(g.effective_weight),
                "score": text(g.score),
                "contribution": text(g.contribution),
            }  # fmt: skip
            for g in result.groups
        ],
        "final_score": text(result.final_score),
        "grade": result.grade,
        "bonus": text(result.bonus),
    }


def results_for(
    session: Session, pack: CompiledPack, row: AppraisalPeriod, locale: str = "en"
) -> dict[int, Shown]:
    """rep -> result: the frozen snapshot once closed, the live computation while open."""
    if row.status != "open":
        return {
            r.rep_id: Shown(r.rep_id, r.final_score, r.grade, r.bonus, r.explanation, True)
            for r in session.scalars(
                select(AppraisalResult).where(AppraisalResult.period_id == row.id)
            )
        }
    return {
        rep: Shown(rep, res.final_score, res.grade, res.bonus, explanation_of(res), False)
        for rep, res in live_results(session, pack, row, locale).items()
    }


# --- calibration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """Grade counts per team and for everyone, and the forced-distribution warnings."""

    grades: tuple[str, ...]
    by_team: dict[str, Counter[str]]
    overall: Counter[str]
    warnings: tuple[str, ...]


def calibration(
    session: Session,
    pack: CompiledPack,
    row: AppraisalPeriod,
    results: Mapping[int, Shown],
    locale: str = "en",
) -> Calibration:
    card = pack.scorecards[row.scorecard_id]
    grades = tuple(g.grade for g in sorted(card.grades, key=lambda g: g.min, reverse=True))
    engine = KpiEngine(session, pack)
    period = period_of(row, pack)
    teams = engine.org.teams
    seats = engine.org.home_teams(period, engine.rep_roles())  # where they sit as reps
    team_of = {user: teams[team][1] for user, team in seats.items()}
    by_team: dict[str, Counter[str]] = {}
    overall: Counter[str] = Counter()
    for rep, shown in results.items():
        by_team.setdefault(team_of.get(rep, "—"), Counter())[shown.grade] += 1
        overall[shown.grade] += 1
    warnings = []
    total = sum(overall.values())
    for grade, share in (card.forced_distribution or {}).items():
        if total and Decimal(overall[grade]) / total > Decimal(str(share)):
            allowed = int(Decimal(str(share)) * total)
            warnings.append(
                translate(
                    locale, TOO_MANY, count=overall[grade], total=total,
                    part=f"{overall[grade] / total:.0%}", grade=grade, share=f"{share:.0%}",
                    allowed=allowed,
                )
            )  # fmt: skip
    return Calibration(grades, dict(sorted(by_team.items())), overall, tuple(warnings))


# --- changes ----------------------------------------------------------------------------------


def _audit(
    session: Session, actor: User, action: str, row: AppraisalPeriod, **details: Any
) -> None:
    details = {"scorecard": row.scorecard_id, "period": row.period, **details}
    record_event(
        session, actor=actor.username, action=action, object_type="appraisal_period",
        object_id=str(row.id), details=details,
    )  # fmt: skip


def open_period(
    session: Session, pack: CompiledPack, card_id: str, period_text: str, actor: User
) -> AppraisalPeriod:
    if card_id not in pack.scorecards:
        raise AppraisalError(N_("no scorecard '{card}' in pack {pack}"), card=card_id, pack=pack.id)
    period = parse_period(period_text.strip(), pack.pack.fiscal_year_start)
    exists = session.scalar(
        select(AppraisalPeriod).where(
            AppraisalPeriod.pack_id == pack.id,
            AppraisalPeriod.scorecard_id == card_id,
            AppraisalPeriod.period == period.label,
        )  # fmt: skip
    )
    if exists is not None:
        already = N_("the appraisal for {period} is already open ({status})")
        raise AppraisalError(already, period=period.label, status=exists.status)
    row = AppraisalPeriod(
        pack_id=pack.id,
        scorecard_id=card_id,
        period=period.label,
        status="open",
        opened_by=actor.id,
    )
    session.add(row)
    session.flush()
    _audit(session, actor, "appraisal_open", row)
    return row


def save_ratings(
    session: Session,
    pack: CompiledPack,
    row: AppraisalPeriod,
    *,
    rep_id: int,
    rater: str,
    actor: User,
    values: Mapping[str, str],
    comments: Mapping[str, str],
    submit: bool,
    today: date,
    locale: str = "en",
) -> dict[str, str]:
    """Save (and with `submit`, hand in) a rater's ratings of one rep. Returns field errors
    (item id -> message, in `locale`) and saves nothing when there are any."""
    if row.status != "open":
        raise AppraisalError(N_("this appraisal is closed: ratings can no longer change"))
    if rater == "self" and rep_id != actor.id:
        raise AppraisalError(N_("a self-assessment is written by the person appraised"))
    if (
        rater == "manager"
        and not actor.is_admin
        and rep_id not in managed_reps(session, pack, row, actor.id)
    ):
        raise AppraisalError(N_("you can rate only the people of your teams"))
    if rep_id not in people_of(session, pack, row):
        raise AppraisalError(N_("this person is not appraised on this scorecard"))
    card = pack.scorecards[row.scorecard_id]
    errors: dict[str, str] = {}
    parsed: dict[str, int | None] = {}
    for iid, item in manual_items(card):
        if not rates(item, rater):
            continue
        low, high = item.scale or (1, 5)
        text = (values.get(iid) or "").strip()
        if not text:
            parsed[iid] = None
            if submit:
                errors[iid] = translate(locale, N_("choose a rating before submitting"))
            continue
        try:
            number = int(text)
        except ValueError:
            errors[iid] = translate(locale, WHOLE_NUMBER, low=low, high=high)
            continue
        if not low <= number <= high:
            errors[iid] = translate(locale, WHOLE_NUMBER, low=low, high=high)
            continue
        parsed[iid] = number
    if errors:
        return errors
    existing = {
        r.item_id: r for r in ratings_of(session, row) if r.rep_id == rep_id and r.rater == rater
    }
    for iid, chosen in parsed.items():
        rating = existing.get(iid) or AppraisalRating(
            period_id=row.id, rep_id=rep_id, item_id=iid, rater=rater
        )
        rating.value = chosen  # blank while a draft
        rating.comment = (comments.get(iid) or "").strip()[:4000]
        rating.submitted, rating.rated_by, rating.rated_at = submit, actor.id, utcnow()
        session.add(rating)
    _audit(
        session,
        actor,
        "appraisal_submit" if submit else "appraisal_rate",
        row,
        rep=rep_id,
        rater=rater,
        values=parsed,
    )
    return {}


def submitted(ratings: list[AppraisalRating], rep_id: int, rater: str) -> bool:
    mine = [r for r in ratings if r.rep_id == rep_id and r.rater == rater]
    return bool(mine) and all(r.submitted for r in mine)


def add_note(
    session: Session, row: AppraisalPeriod, *, rep_id: int, author: User, text: str
) -> AppraisalNote:
    text = text.strip()
    if not text:
        raise AppraisalError(N_("write the note before saving it"))
    note = AppraisalNote(period_id=row.id, rep_id=rep_id, author_id=author.id, text=text[:4000])
    session.add(note)
    _audit(session, author, "appraisal_note", row, rep=rep_id)
    return note


def close_period(session: Session, pack: CompiledPack, row: AppraisalPeriod, actor: User) -> int:
    """Freeze: score everyone now and keep the results, the version and its hash."""
    if row.status != "open":
        raise AppraisalError(
            N_("only an open appraisal can be closed (this one is {status})"), status=row.status
        )
    results = live_results(session, pack, row, pack.pack.locale)
    engine = KpiEngine(session, pack)
    period = period_of(row, pack)
    teams = {user: team for (user, team) in engine.org.intervals(period)}
    for rep, result in results.items():
        session.add(AppraisalResult(
            period_id=row.id, rep_id=rep, team_id=teams.get(rep), final_score=result.final_score,
            grade=result.grade, bonus=result.bonus, explanation=explanation_of(result),
        ))  # fmt: skip
    row.status, row.closed_by, row.closed_at = "closed", actor.id, utcnow()
    row.pack_version_id = active_version_id(session, pack.id)
    row.content_hash = pack.content_hash
    _audit(session, actor, "appraisal_close", row, people=len(results), version=row.pack_version_id)
    return len(results)


def publish_period(session: Session, row: AppraisalPeriod, actor: User) -> None:
    if row.status != "closed":
        raise AppraisalError(N_("close the appraisal before publishing it"))
    row.status, row.published_by, row.published_at = "published", actor.id, utcnow()
    _audit(session, actor, "appraisal_publish", row)


def reopen_period(session: Session, row: AppraisalPeriod, actor: User, reason: str) -> None:
    if not actor.is_admin:
        raise AppraisalError(N_("only an administrator may reopen a closed appraisal"))
    if row.status == "open":
        raise AppraisalError(N_("this appraisal is already open"))
    if not reason.strip():
        raise AppraisalError(
            N_("say why the appraisal is reopened: the reason is kept in the audit log")
        )
    session.execute(delete(AppraisalResult).where(AppraisalResult.period_id == row.id))
    previous = row.status
    row.status, row.closed_at, row.published_at = "open", None, None
    _audit(session, actor, "appraisal_reopen", row, reason=reason.strip(), was=previous)
