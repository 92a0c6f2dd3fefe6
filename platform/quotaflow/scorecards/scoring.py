"""Scoring everyone a scorecard applies to for one period.

KPI actuals are computed once for all reps (one KpiEngine.compute call), each target plan is
decomposed once, and score_card() scores each person. Targets of an item come from a figure
in the pack or from a target plan: the rep's phased amounts of the sub-periods inside the
scorecard period (a monthly scorecard gets the rep's month of a yearly plan); a plan without
phasing whose period is not the scorecard's is pro-rated by days (decision: the same rule
linear pace uses).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.periods import Period
from quotaflow.packs.compiled import CompiledPack
from quotaflow.scorecards.engine import ScoreResult, item_id, score_card
from quotaflow.targets.services import allocations_of, breakdown, target_in

CENT = Decimal("0.01")


@dataclass
class ScoringTimes:
    """Where the time of a scoring run went (the benchmark reports it)."""

    kpis: float = 0.0
    targets: float = 0.0
    scoring: float = 0.0
    people: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def people_scored(engine: KpiEngine, role: str, period: Period) -> set[int]:
    """Users holding the scorecard's role in a membership that overlaps the period."""
    return engine.org.members_on(period, {role})


def score_period(
    session: Session,
    pack: CompiledPack,
    card_id: str,
    period: Period,
    *,
    ratings: Mapping[int, Mapping[str, Any]] | None = None,
    today: date | None = None,
    locale: str = "en",
    times: ScoringTimes | None = None,
) -> dict[int, ScoreResult]:
    """user id -> their scored card for the period (manual items from `ratings`)."""
    card = pack.scorecards[card_id]
    engine = KpiEngine(session, pack, today=today)
    times = times if times is not None else ScoringTimes()
    started = time.perf_counter()
    people = sorted(people_scored(engine, card.applies_to.role, period))
    kpi_ids = sorted({item.kpi for item in card.items if item.kpi})
    figures = engine.compute(kpi_ids, period, "rep") if kpi_ids else {}
    times.kpis += time.perf_counter() - started
    started = time.perf_counter()
    plans = {
        # the split people read on their home page: the same target in both places
        item.target: breakdown(session, pack, item.target, today=today)
        for item in card.items
        if isinstance(item.target, str) and item.target in pack.target_plans
    }
    targets = {}
    for plan_id, plan in plans.items():
        places = allocations_of(plan, "rep")
        for person in people:
            targets[(plan_id, person)] = target_in(plan, places.get(person, []), period)
    times.targets += time.perf_counter() - started
    started = time.perf_counter()
    out: dict[int, ScoreResult] = {}
    given_ratings = ratings or {}
    for person in people:
        inputs: dict[str, Any] = {k: figures[k].values.get(person) for k in kpi_ids}
        for i, item in enumerate(card.items):
            if item.kpi and isinstance(item.target, str):
                inputs[f"target.{item.kpi}"] = targets.get((item.target, person))
            if item.manual:
                inputs[item_id(item, i)] = given_ratings.get(person, {}).get(item_id(item, i))
        out[person] = score_card(pack, card_id, inputs, locale=locale)
    times.scoring += time.perf_counter() - started
    times.people += len(people)
    return out


def inputs_of(result: ScoreResult) -> dict[str, Any]:
    """The figures a result was scored from (kept with a frozen result)."""
    return {item.id: {"actual": item.actual, "target": item.target} for item in result.items}
