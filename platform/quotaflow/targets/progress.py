"""Progress against target for home pages: actual, target, pace, projection and gap for the
current month, quarter and fiscal year, for a rep or for a manager's teams and their reps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy.orm import Session

from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.pace import Pace, pace
from quotaflow.kpis.periods import Period, period_containing
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import TargetPlanDef
from quotaflow.targets.services import (
    Breakdowns,
    TargetBreakdown,
    allocations_of,
    breakdown,
    phases_in,
    target_in,
)


@dataclass(frozen=True, slots=True)
class Progress:
    """One bar: who, for which period, and where they stand."""

    name: str
    kind: str  # rep | team
    key: int
    period: Period
    pace: Pace


def current_periods(pack: CompiledPack, plan: TargetPlanDef, today: date) -> list[Period]:
    """This month, this quarter and this fiscal year (those inside the plan's period)."""
    from quotaflow.kpis.periods import parse_period

    whole = parse_period(plan.period, pack.pack.fiscal_year_start)
    kinds = ("month", "quarter", "fiscal_year")
    periods = [period_containing(today, k, pack.pack.fiscal_year_start) for k in kinds]  # type: ignore[arg-type]
    return [p for p in periods if p.start >= whole.start and p.end <= whole.end]


def progress(
    session: Session,
    pack: CompiledPack,
    plan_id: str,
    *,
    reps: Sequence[int] = (),
    teams: Sequence[int] = (),
    today: date,
    plans: Breakdowns | None = None,
) -> list[Progress]:
    """Bars for these reps and teams, for each current period of the plan; [] when today is
    outside the plan's period. `plans`: breakdowns the caller shares with other readers."""
    plan_def = pack.target_plans[plan_id]
    periods = current_periods(pack, plan_def, today)
    if not periods:
        return []
    plan: TargetBreakdown = (
        plans.of(pack, plan_id)
        if plans is not None
        else breakdown(session, pack, plan_id, today=today)
    )
    engine = KpiEngine(session, pack, today=today)
    wanted = [("team", list(teams)), ("rep", list(reps))]  # team totals first
    names = {
        kind: engine.scope_names(kind, ids)  # type: ignore[arg-type]
        for kind, ids in wanted
        if ids
    }
    out: list[Progress] = []
    for kind, ids in wanted:
        if not ids:
            continue
        places = allocations_of(plan, kind)
        for period in periods:
            actuals = engine.figures(plan_def.kpi, period, kind).values  # type: ignore[arg-type]
            for key in ids:
                mine = places.get(key, [])
                target = target_in(plan, mine, period)
                phases, parts = ([], []) if len(mine) != 1 else phases_in(plan, mine[0], period)
                out.append(
                    Progress(
                        names[kind].get(key, ("", f"#{key}"))[1],
                        kind,
                        key,
                        period,
                        pace(
                            actuals.get(key), target, period, today, phases or None, parts or None
                        ),
                    )
                )
    return out
