"""Mid-period target adjustments: a manager moves target between the parts of their team.

Each adjustment sets one node (a rep, a team, a region) to an amount for the plan's whole
period in the ideal tier; its siblings share the rest of their parent's amount in proportion
to what they had, so every parent keeps its amount and the parts still sum exactly. It is kept
as version N of the plan's split with the reason, who, when and every sibling's amount before
and after, plus an audit event; `breakdown()` applies the versions in order on top of the
decomposition the pack defines (other tiers and the phasing follow).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.kpis.engine import KpiEngine
from quotaflow.messages import N_, translate
from quotaflow.org.models import Membership, User
from quotaflow.org.roles import Capability, roles_with
from quotaflow.org.services import team_and_subteams
from quotaflow.packs.compiled import CompiledPack
from quotaflow.targets.decompose import Allocation, TargetError, adjust
from quotaflow.targets.models import TargetAdjustment
from quotaflow.targets.services import (
    RESPLIT,
    SPLIT_ON,
    SPLIT_PARTS,
    breakdown,
    pinned_split_day,
    plan_of,
    split_pairs,
    unit_cents,
)


def versions_of(session: Session, pack_id: str, plan_id: str) -> list[TargetAdjustment]:
    query = select(TargetAdjustment).where(
        TargetAdjustment.pack_id == pack_id, TargetAdjustment.plan_id == plan_id
    )
    return list(session.scalars(query.order_by(TargetAdjustment.version_no)))


def teams_adjustable_by(
    session: Session, pack: CompiledPack, person: User, today: date
) -> set[int] | None:
    """The team ids whose parts this person may move (None: all of them, for admins)."""
    if person.is_admin:
        return None
    managers = roles_with(Capability.MANAGER, pack.role_capabilities)
    valid = (Membership.valid_from <= today) & (
        Membership.valid_to.is_(None) | (Membership.valid_to > today)
    )
    own = session.scalars(
        select(Membership.team_id).where(
            Membership.user_id == person.id, Membership.role.in_(managers), valid
        )
    )
    return {t for team in own for t in team_and_subteams(session, team)}


def parent_of(root: Allocation, key: str) -> Allocation | None:
    for node in root.walk():
        if any(c.node.key == key for c in node.children):
            return node
    return None


def adjust_target(
    session: Session,
    pack: CompiledPack,
    plan_id: str,
    *,
    node_key: str,
    amount: str,
    reason: str,
    actor: User,
    today: date,
    locale: str = "en",
) -> TargetAdjustment:
    """Record version N+1 of the split; TargetError with a plain reason, in `locale`, when
    refused. The amount is checked before the reason: a mistyped figure is the likelier slip."""

    def refused(message: str, **params: Any) -> TargetError:
        return TargetError(translate(locale, message, **params))

    plan = plan_of(pack, plan_id)
    try:
        value = Decimal(amount.replace(",", "").strip())
    except InvalidOperation:
        raise refused(
            N_("'{amount}' is not an amount: write it like 1250000 or 1250000.50"),
            amount=amount[:40],
        ) from None
    if not reason.strip():
        raise refused(N_("Say why the target changes: the reason is kept with the new version."))
    if not actor.is_admin and plan.adjustable_by not in (
        "manager",
        *roles_with(Capability.MANAGER, pack.role_capabilities),
    ):
        raise refused(N_("Only {who} may adjust this plan."), who=plan.adjustable_by)
    current = breakdown(session, pack, plan_id, today=today)
    tree = current.tiers["ideal" if "ideal" in current.tiers else current.main_tier]
    parent = parent_of(tree, node_key)
    if parent is None:
        missing = N_("There is no '{part}' in the split of {plan}.")
        raise refused(missing, part=node_key, plan=plan_id)
    allowed = teams_adjustable_by(session, pack, actor, today)
    if allowed is not None and parent.node.id not in allowed:
        not_yours = N_("{team} is not one of your teams: ask its manager.")
        raise refused(not_yours, team=parent.node.name)
    if (found := tree.find(node_key)) is not None and found.amount == value:
        unchanged = N_("{part} already has this target: nothing to save.")
        raise refused(unchanged, part=found.node.name)
    after_tree = adjust(tree, node_key, value, locale, unit_cents(pack.target_plans[plan_id]))
    new_parent = parent_of(after_tree, node_key)
    assert new_parent is not None
    version = _next_version(session, pack.id, plan_id)
    row = TargetAdjustment(
        pack_id=pack.id, plan_id=plan_id, version_no=version, node_key=node_key,
        amount=value, reason=reason.strip(), before=_amounts(parent), after=_amounts(new_parent),
        changed_by=actor.id,
    )  # fmt: skip
    session.add(row)
    record_event(
        session, actor=actor.username, action="target_adjust", object_type="target_plan",
        object_id=f"{pack.id}/{plan_id}",
        details={"version": version, "node": node_key, "amount": str(value), "reason": row.reason},
    )  # fmt: skip
    session.flush()
    return row


def resplit_target(
    session: Session,
    pack: CompiledPack,
    plan_id: str,
    *,
    reason: str,
    actor: User,
    today: date,
    locale: str = "en",
) -> TargetAdjustment:
    """Split the plan again on the org as it is today (people who joined get their share,
    people gone give theirs back), as version N with the reason; the adjustments before it
    no longer apply. Administrators only: it moves everybody's target."""

    def refused(message: str, **params: Any) -> TargetError:
        return TargetError(translate(locale, message, **params))

    if not actor.is_admin:
        raise refused(N_("Only an administrator may split the plan again."))
    if not reason.strip():
        raise refused(N_("Say why the target changes: the reason is kept with the new version."))
    current = breakdown(session, pack, plan_id, today=today)
    day = max(current.period.start, min(today, current.period.end))
    tier = current.main_tier
    after = breakdown(session, pack, plan_id, on=day, today=today, adjusted=False)
    before_amounts = _all_amounts(current.tiers[tier])
    after_amounts = _all_amounts(after.tiers[tier])
    engine = KpiEngine(session, pack, today=today)
    settled = pinned_split_day(session, engine, pack, plan_id, current.period) is not None
    if before_amounts == after_amounts and settled:  # while the org is set up: pins the day
        same = N_("Split on today's team, every target would stay as it is: nothing to save.")
        raise refused(same)
    row = TargetAdjustment(
        pack_id=pack.id, plan_id=plan_id, version_no=_next_version(session, pack.id, plan_id),
        node_key=RESPLIT, amount=after.tiers[tier].amount, reason=reason.strip(),
        before=before_amounts,
        after={
            **after_amounts, SPLIT_ON: day.isoformat(),
            SPLIT_PARTS: split_pairs(after.tiers[tier]),
        },
        changed_by=actor.id,
    )  # fmt: skip
    session.add(row)
    record_event(
        session, actor=actor.username, action="target_resplit", object_type="target_plan",
        object_id=f"{pack.id}/{plan_id}",
        details={"version": row.version_no, "on": day.isoformat(), "reason": row.reason},
    )  # fmt: skip
    session.flush()
    return row


def _next_version(session: Session, pack_id: str, plan_id: str) -> int:
    newest = select(func.max(TargetAdjustment.version_no)).where(
        TargetAdjustment.pack_id == pack_id, TargetAdjustment.plan_id == plan_id
    )
    return (session.scalar(newest) or 0) + 1


def _all_amounts(root: Allocation) -> dict[str, str]:
    """Every part of the split below the top, by key (a rep in two teams: the sum)."""
    out: dict[str, Decimal] = {}
    for allocation in root.walk():
        if allocation is not root:
            key = allocation.node.key
            out[key] = out.get(key, Decimal(0)) + allocation.amount
    return {key: str(amount) for key, amount in out.items()}


def _amounts(parent: Allocation) -> dict[str, Any]:
    return {c.node.key: str(c.amount) for c in parent.children}
