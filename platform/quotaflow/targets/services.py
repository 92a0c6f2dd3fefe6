"""A target plan applied to the org: the tree, history from the KPI engine, tiers and phases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy.orm import Session

from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.periods import Period, PeriodError, parse_period
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import SplitDef, TargetPlanDef
from quotaflow.targets.decompose import (
    Allocation,
    LevelRule,
    Method,
    OrgNode,
    TargetError,
    adjust,
    decompose,
    phase,
    phase_weights,
    scale,
    tier_totals,
    to_cents,
)


@dataclass
class TargetBreakdown:
    """A plan decomposed: per tier, the allocation tree (phased when the plan says how)."""

    plan: TargetPlanDef
    period: Period
    on: date
    tiers: dict[str, Allocation]
    sub_periods: list[Period]

    @property
    def main_tier(self) -> str:
        return "ideal" if "ideal" in self.tiers else next(iter(self.tiers))

    def target_for(self, key: str, tier: str | None = None) -> Decimal | None:
        found = self.tiers[tier or self.main_tier].find(key)
        return None if found is None else found.amount


def plan_of(pack: CompiledPack, plan_id: str) -> TargetPlanDef:
    try:
        return pack.target_plans[plan_id]
    except KeyError:
        known = ", ".join(sorted(pack.target_plans)) or "none"
        raise TargetError(
            f"no target plan '{plan_id}' in pack {pack.id} (plans: {known})"
        ) from None


def org_tree(
    engine: KpiEngine, levels: Sequence[str], on: date, only: set[str] | None = None
) -> OrgNode:
    """company -> (regions) -> (teams) -> (reps) as the split levels ask, on a day; with
    `only`, just the places it names (see resplit_parts), and what is under them."""
    org = engine.org
    roots = [tid for tid, (_k, _n, parent) in org.teams.items() if parent is None]
    company_name = org.teams[roots[0]][1] if len(roots) == 1 else "Company"
    root = OrgNode("company", "company", company_name, roots[0] if len(roots) == 1 else None)
    rep_roles = engine.rep_roles()
    members: dict[int, list[int]] = {}  # team -> users with a rep role there on `on`
    for user_id, team_id, role, start, end in org.memberships:
        if role in rep_roles and start <= on and (end is None or end > on):
            members.setdefault(team_id, []).append(user_id)
    users = engine.scope_names("rep", {u for us in members.values() for u in us})
    children_of: dict[int | None, list[int]] = {}
    for tid, (_key, _name, parent) in sorted(org.teams.items(), key=lambda t: t[1][0]):
        children_of.setdefault(parent, []).append(tid)

    def below(tid: int) -> list[int]:
        out, todo = [], list(children_of.get(tid, []))
        while todo:
            current = todo.pop(0)
            if current not in out:
                out.append(current)
                todo.extend(children_of.get(current, []))
        return out

    def team_node(tid: int, kind: str) -> OrgNode:
        key, name, _parent = org.teams[tid]
        return OrgNode(key, kind, name, tid)  # type: ignore[arg-type]

    def reps_under(team_ids: list[int]) -> list[OrgNode]:
        seen: list[int] = []
        for tid in team_ids:
            seen.extend(
                u for u in sorted(members.get(tid, []), key=lambda u: users[u][0]) if u not in seen
            )
        return [OrgNode(users[u][0], "rep", users[u][1], u) for u in seen]

    def fill(node: OrgNode, scope: list[int], remaining: list[str]) -> None:
        if not remaining:
            return
        level, rest = remaining[0], remaining[1:]
        if level == "region":
            kids = [team_node(t, "region") for t in children_of.get(node.id, [])]
            for kid in kids:
                assert kid.id is not None
                fill(kid, [kid.id, *below(kid.id)], rest)
        elif level == "team":
            kids = [team_node(t, "team") for t in scope if members.get(t)]
            for kid in kids:
                assert kid.id is not None
                fill(kid, [kid.id], rest)
        else:
            kids = reps_under(scope)
        node.children = kids

    scope = [root.id, *below(root.id)] if root.id is not None else list(org.teams)
    fill(root, [t for t in scope if t is not None], list(levels))
    if only is not None:

        def prune(node: OrgNode) -> None:
            node.children = [
                c for c in node.children if f"{node.key}/{c.key}" in only or f"*/{c.key}" in only
            ]
            for child in node.children:
                prune(child)

        prune(root)
    return root


def _rule(
    engine: KpiEngine, plan: TargetPlanDef, index: int, split: SplitDef, period: Period, level: str
) -> LevelRule:
    method: Method = split.method
    base: Method = "equal"
    if method == "manual":
        if split.weight:
            base = "formula"
        elif split.potential:
            base = "potential"
        elif split.basis_kpi or split.basis_period:
            base = "history"
    needs_history = "history" in (method, base) or "formula" in (method, base)
    history: dict[str, Decimal | int | float | None] = {}
    if needs_history:
        basis_kpi = split.basis_kpi or plan.kpi
        basis = (
            parse_period(split.basis_period, engine.pack.pack.fiscal_year_start)
            if split.basis_period
            else period.previous()
        )
        by = "rep" if level == "rep" else "team"
        figures = engine.figures(basis_kpi, basis, by)  # type: ignore[arg-type]
        names = engine.scope_names(by, figures.values)  # type: ignore[arg-type]
        history = {names[k][0]: v for k, v in figures.values.items() if k in names}
    weight = (
        engine.pack.expression("target_plan", plan.id, "split", index, "weight")
        if split.weight
        else None
    )
    return LevelRule(
        method,
        history=history,
        potential=dict(split.potential or {}),
        manual=dict(split.manual or {}),
        weight=weight,
        base=base,
    )


RESPLIT = ""  # the node_key of a version that splits the plan again on the org of its day
SPLIT_ON = "@on"  # where such a version keeps that day (in `after`)
SPLIT_PARTS = "@parts"  # and its parts, as "parent key/part key" (a rep in two teams: twice)


def split_day(
    session: Session, engine: KpiEngine, pack: CompiledPack, plan_id: str, period: Period,
    today: date | None,
) -> date:  # fmt: skip
    """The day whose org the plan is split on: the day of its latest "split again", else the
    period's first day when there were reps on it; else (an org still being set up after the
    period began) today, until an administrator pins a day by splitting again. Never after the
    period.

    A target does not move when a settled org does: a person added, moved or gone changes
    nobody's target until an administrator splits the plan again, as a version with its
    reason. While the org is being set up, people added one by one do not hand the first of
    them the whole plan."""
    pinned = pinned_split_day(session, engine, pack, plan_id, period)
    if pinned is not None:
        return pinned
    latest = min(period.end, today) if today is not None else period.end
    return max(period.start, latest)


def pinned_split_day(
    session: Session, engine: KpiEngine, pack: CompiledPack, plan_id: str, period: Period
) -> date | None:
    """The day of the plan's latest "split again", else its period's first day when there
    were reps on it; None while the org is still being set up (the split follows it)."""
    from quotaflow.targets.adjustments import versions_of

    resplits = [v for v in versions_of(session, pack.id, plan_id) if v.node_key == RESPLIT]
    if resplits:
        return date.fromisoformat(str(resplits[-1].after[SPLIT_ON]))
    first_day = Period("day", period.start, period.start, period.start.isoformat())
    if engine.org.members_on(first_day, engine.rep_roles()):
        return period.start
    return None


def split_pairs(root: Allocation) -> list[str]:
    """Every place of a split below its top, as "parent key/part key"."""
    return sorted(f"{a.node.key}/{c.node.key}" for a in root.walk() for c in a.children)


def resplit_parts(session: Session, pack: CompiledPack, plan_id: str) -> set[str] | None:
    """The places ("parent key/part key") of the plan's latest "split again", if it has one.
    Its split is of those people where they were: someone whose membership is dated on or
    before its day but was recorded after it (added later the same day, or back-dated; or a
    rep of the split put in a second team so) is not in it there, as anyone who joins later
    is not, until the plan is split again. (A version saved before places were kept names its
    parts by key only: "*/key".)"""
    from quotaflow.targets.adjustments import versions_of

    resplits = [v for v in versions_of(session, pack.id, plan_id) if v.node_key == RESPLIT]
    if not resplits:
        return None
    after = resplits[-1].after
    if SPLIT_PARTS in after:
        return set(after[SPLIT_PARTS])
    return {f"*/{key}" for key in after if not key.startswith("@")}


def unit_cents(plan: TargetPlanDef) -> int:
    """The plan's `round_to` in cents (1: to the cent)."""
    return max(1, to_cents(plan.round_to)) if plan.round_to is not None else 1


def apply_adjustments(
    session: Session, pack: CompiledPack, plan_id: str, ideal: Allocation
) -> Allocation:
    """The ideal split with the plan's adjustments since its latest "split again" applied,
    oldest first. One that no longer fits (its node left the org, or it exceeds what the
    parent now has) is skipped."""
    from quotaflow.targets.adjustments import versions_of

    versions = versions_of(session, pack.id, plan_id)
    unit = unit_cents(pack.target_plans[plan_id])
    last_split = max((i for i, v in enumerate(versions) if v.node_key == RESPLIT), default=-1)
    for version in versions[last_split + 1 :]:
        try:
            ideal = adjust(ideal, version.node_key, version.amount, unit=unit)
        except TargetError:
            continue
    return ideal


def breakdown(
    session: Session,
    pack: CompiledPack,
    plan_id: str,
    *,
    on: date | None = None,
    today: date | None = None,
    adjusted: bool = True,
) -> TargetBreakdown:
    """The plan decomposed on the org as it is on `on` (default: its split day, see
    `split_day`), with every tier and phases."""
    plan = plan_of(pack, plan_id)
    try:
        period = parse_period(plan.period, pack.pack.fiscal_year_start)
    except PeriodError as exc:
        raise TargetError(f"target plan '{plan.id}': {exc}") from None
    engine = KpiEngine(session, pack, today=today)
    members = None
    if on is None:
        on = split_day(session, engine, pack, plan_id, period, today)
        members = resplit_parts(session, pack, plan_id)
    levels = [s.level for s in plan.split]
    tree = org_tree(engine, levels, on, members)
    rules = [_rule(engine, plan, i, s, period, s.level) for i, s in enumerate(plan.split)]
    unit = unit_cents(plan)
    ideal = decompose(plan.total, tree, rules, unit)
    if adjusted:  # `adjusted=False`: as the pack's rules split it, before any version
        ideal = apply_adjustments(session, pack, plan.id, ideal)
    tiers_def = plan.tiers or {"ideal": 1.0}
    totals = tier_totals(plan.total, tiers_def)
    tiers = {
        name: ideal if total == ideal.amount else scale(ideal, total, unit)
        for name, total in totals.items()
    }
    parts: list[Period] = []
    if plan.phasing is not None:
        parts = period.sub_periods(plan.phasing.by)
        history = None
        if plan.phasing.weights == "history":
            history = [
                engine.figures(plan.kpi, p.last_year(), "company").values[None] for p in parts
            ]
        weights = phase_weights(parts, plan.phasing.weights, history)
        for name in tiers:
            tiers[name] = phase(tiers[name], weights, unit)
    return TargetBreakdown(plan, period, on, tiers, parts)


class Breakdowns:
    """Plans' breakdowns for one day, each worked out once: a home page asks for the same one
    twice (the pace bars, and who is outside the split). For one request's reading only: a
    version saved in between is not seen."""

    def __init__(self, session: Session, today: date) -> None:
        self.session, self.today = session, today
        self._found: dict[tuple[str, str, str], TargetBreakdown | TargetError] = {}

    def of(self, pack: CompiledPack, plan_id: str) -> TargetBreakdown:
        """`breakdown(pack, plan_id, today=...)`, raising as it does."""
        key = (pack.id, pack.content_hash, plan_id)
        if key not in self._found:
            try:
                self._found[key] = breakdown(self.session, pack, plan_id, today=self.today)
            except TargetError as exc:
                self._found[key] = exc
        found = self._found[key]
        if isinstance(found, TargetError):
            raise found
        return found


@dataclass(frozen=True, slots=True)
class OutsideSplit:
    """A rep (or team) in today's org with no part in the plan's split: they arrived after
    its split day, so their target is blank until an administrator splits again."""

    node: OrgNode
    team_id: int | None  # the team they sit in (for a rep), or the team itself
    team_name: str


def outside_split(
    session: Session,
    pack: CompiledPack,
    plan_id: str,
    today: date,
    plan: TargetBreakdown | None = None,
) -> list[OutsideSplit]:
    """Who today's org has that the plan's split lacks, while the plan runs; [] when the plan
    is split on today's org anyway (it follows the org until pinned). `plan`: its breakdown
    for `today`, when the caller has it already (the plan page)."""
    if plan is None:
        plan = breakdown(session, pack, plan_id, today=today)
    engine = KpiEngine(session, pack, today=today)
    if not plan.period.start <= today <= plan.period.end:
        return []
    if pinned_split_day(session, engine, pack, plan_id, plan.period) is None:
        return []  # the org is still being set up: the split follows it
    split = set(split_pairs(plan.tiers[plan.main_tier]))
    tree = org_tree(engine, [s.level for s in plan.plan.split], today)
    out: list[OutsideSplit] = []

    def visit(node: OrgNode, parent: OrgNode | None) -> None:
        if parent is not None and f"{parent.key}/{node.key}" not in split:
            where = node if node.kind != "rep" or parent is None else parent
            out.append(OutsideSplit(node, where.id, where.name))
            return  # a new team's reps are new with it
        for child in node.children:
            visit(child, node)

    visit(tree, None)
    return out


# --- a node's target for a period (scorecards, home pages) -------------------------------------


def allocations_of(
    plan: TargetBreakdown, kind: str, tier: str | None = None
) -> dict[int, list[Allocation]]:
    """node id (user or team) -> its allocations of that kind in a tier (a rep in two teams
    has two). For "team", a region is a team too (a node of the org tree: a head of sales
    opens a region to see its pace), and so is the company at the top when the org has one
    top team: its head reads the plan's total against that team's figures."""
    found: dict[int, list[Allocation]] = {}
    regions: dict[int, list[Allocation]] = {}
    company: Allocation | None = None
    for allocation in plan.tiers[tier or plan.main_tier].walk():
        if allocation.node.id is None:
            continue
        if allocation.node.kind == kind:
            found.setdefault(allocation.node.id, []).append(allocation)
        elif kind == "team" and allocation.node.kind == "region":
            regions.setdefault(allocation.node.id, []).append(allocation)
        elif kind == "team" and allocation.node.kind == "company":
            company = allocation
    # a region whose own reps sit in it directly is also a team node of that share: the region
    # (the whole of it) stands for it, never both added up
    found.update(regions)
    if company is not None and company.node.id not in found:  # not twice when it is a team too
        found[company.node.id] = [company]  # type: ignore[index]
    return found


def phases_in(
    plan: TargetBreakdown, allocation: Allocation, period: Period
) -> tuple[list[Decimal], list[Period]]:
    """The allocation's phased amounts of the sub-periods lying inside `period`."""
    if not plan.sub_periods or not allocation.phases:
        return [], []
    pairs = [
        (amount, part)
        for amount, part in zip(allocation.phases, plan.sub_periods, strict=True)
        if part.start >= period.start and part.end <= period.end
    ]
    return [a for a, _p in pairs], [p for _a, p in pairs]


def target_in(
    plan: TargetBreakdown, allocations: Sequence[Allocation], period: Period
) -> Decimal | None:
    """The target of these allocations for `period`: their phases inside it, else pro rata
    by days of the plan's period (blank when there are none)."""
    if not allocations:
        return None
    total = Decimal(0)
    for allocation in allocations:
        phases, _parts = phases_in(plan, allocation, period)
        if phases:
            total += sum(phases, Decimal(0))
            continue
        start, end = max(period.start, plan.period.start), min(period.end, plan.period.end)
        if end >= start:
            share = allocation.amount * ((end - start).days + 1) / plan.period.days
            total += share.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return total
