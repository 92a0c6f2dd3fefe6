"""The demo company's appraisal: last month's, rated by the managers, closed and published,
so every demo rep can read an explained scorecard from the first sign-in."""

from __future__ import annotations

import random
from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from quotaflow.org.models import User
from quotaflow.packs.compiled import CompiledPack
from quotaflow.scorecards import cycle
from quotaflow.scorecards.models import AppraisalPeriod

COMMENTS = {
    3: "Knows the core range; the new product lines need work.",
    4: "Solid product knowledge; explains the options clearly to customers.",
    5: "Goes beyond the catalogue: trains colleagues on the new range.",
}


def load_demo_appraisal(
    session: Session, pack: CompiledPack, today: date, seed: int
) -> AppraisalPeriod:
    """Last month's appraisal on the pack's first scorecard: rated, closed, published."""
    rng = random.Random(seed + 7)
    card_id = next(iter(pack.scorecards))
    last_month = (today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    admin = session.scalars(select(User).where(User.is_admin.is_(True)).order_by(User.id)).first()
    assert admin is not None, "the demo org has an admin"
    row = cycle.open_period(session, pack, card_id, last_month, admin)
    card = pack.scorecards[card_id]
    managers = {
        user.id: user
        for user in session.scalars(
            select(User).where(User.username.in_(_manager_names(session, pack)))
        )
    }
    for manager in managers.values():
        for rep_id in sorted(cycle.managed_reps(session, pack, row, manager.id)):
            values, comments = {}, {}
            for item_id, item in cycle.manual_items(card):
                low, high = item.scale or (1, 5)
                values[item_id] = str(rng.randint(max(low, high - 2), high))
                comments[item_id] = COMMENTS.get(int(values[item_id]), "")
            if cycle.ratings_used(
                card, [r for r in cycle.ratings_of(session, row) if r.rep_id == rep_id]
            ):
                continue  # a rep under two managers is rated once
            cycle.save_ratings(
                session, pack, row, rep_id=rep_id, rater="manager", actor=manager, values=values,
                comments=comments, submit=True, today=today,
            )  # fmt: skip
            cycle.add_note(
                session, row, rep_id=rep_id, author=manager,
                text="Let's review your pipeline for next month in our 1:1.",
            )  # fmt: skip
    session.flush()
    cycle.close_period(session, pack, row, admin)
    cycle.publish_period(session, row, admin)
    return row


def _manager_names(session: Session, pack: CompiledPack) -> list[str]:
    from quotaflow.org.models import Membership
    from quotaflow.org.roles import Capability, roles_with

    roles = roles_with(Capability.MANAGER, pack.role_capabilities)
    rows = session.scalars(
        select(User.username)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.role.in_(roles))
    )
    return sorted(set(rows))
