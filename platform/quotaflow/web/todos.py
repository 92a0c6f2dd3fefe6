"""A person's to-dos on their home page: what is waiting for them, from every area.

Reps: their own stale deals (untouched past the pipeline's limit), approvals they asked for
that are still pending or were rejected this past week, the self-assessment of an open
appraisal. Managers: approvals waiting
for their decision, their team's stale deals, reps of an open appraisal still to rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import Session

from quotaflow.errors import QuotaflowError
from quotaflow.forms.wtf import record_title
from quotaflow.org.models import User
from quotaflow.packs.services import active_packs
from quotaflow.pipelines.models import Approval
from quotaflow.pipelines.services import approval_queue, stale_records
from quotaflow.records.access import visible_records
from quotaflow.records.models import Record

if TYPE_CHECKING:
    from quotaflow.targets.services import Breakdowns

LIMIT = 8
REJECTION_DAYS = 7


@dataclass(frozen=True, slots=True)
class Todo:
    text: str
    url: str
    kind: str


def todos(
    session: Session, person: Any, role: str, today: date, plans: Breakdowns | None = None
) -> list[Todo]:
    out: list[Todo] = []
    for approval in approval_queue(session, person, today=today)[:LIMIT] if role != "rep" else []:
        record = session.get(Record, approval.record_id)
        out.append(
            Todo(
                _(
                    "Decide: %(what)s to %(stage)s",
                    what=_title(session, record),
                    stage=_stage(session, record, approval.to_stage),
                ),
                url_for("pipelines.approvals"),
                "approval",
            )
        )
    mine = session.scalars(
        select(Approval).where(Approval.requested_by == person.id, Approval.status == "pending")
    ).all()
    for approval in mine[:LIMIT]:
        record = session.get(Record, approval.record_id)
        out.append(
            Todo(
                _("Waiting for approval: %(what)s", what=_title(session, record)),
                url_for("records.view", record_id=approval.record_id),
                "waiting",
            )
        )
    # a "no" the rep has to act on (a discount to rework): on their home for a week
    since = datetime.combine(today - timedelta(days=REJECTION_DAYS), time.min, tzinfo=UTC)
    turned_down = session.scalars(
        select(Approval)
        .where(
            Approval.requested_by == person.id, Approval.status == "rejected",
            Approval.decided_at >= since,
        )
        .order_by(Approval.decided_at.desc())
        .limit(LIMIT)
    ).all()  # fmt: skip
    for approval in turned_down:
        record = session.get(Record, approval.record_id)
        what = _title(session, record)
        out.append(
            Todo(
                _("Rejected: %(what)s — %(comment)s", what=what, comment=approval.comment)
                if approval.comment
                else _("Rejected: %(what)s", what=what),
                url_for("records.view", record_id=approval.record_id),
                "rejected",
            )
        )
    for pack in active_packs(session):
        base = visible_records(session, person, role_capabilities=pack.role_capabilities)
        if role == "rep":
            base = base.where(Record.owner_id == person.id)
        for pipeline_id in pack.pipelines:
            stale = stale_records(session, pack, pipeline_id, today=today, base=base)
            for record in stale[:LIMIT]:
                days = (today - record.updated_at.date()).days
                what = _title(session, record)
                owner = session.get(User, record.owner_id) if role != "rep" else None
                text = (  # a manager's list names whose deal it is
                    _("Follow up: %(what)s of %(who)s (untouched for %(n)s days)",
                      what=what, who=owner.display_name, n=days)
                    if owner is not None and owner.id != person.id
                    else _("Follow up: %(what)s (untouched for %(n)s days)", what=what, n=days)
                )  # fmt: skip
                out.append(Todo(text, url_for("records.view", record_id=record.id), "stale"))
    out += _appraisal_todos(session, person, role)
    if role == "manager":
        out += target_todos(session, person, today, plans)
    return out


def target_todos(
    session: Session, person: Any, today: date, plans: Breakdowns | None = None
) -> list[Todo]:
    """Plans running today whose split lacks people of today's org (a manager's: in their
    teams; an administrator's: anyone), one to-do a plan. `plans`: breakdowns shared with the
    page's pace bars."""
    from quotaflow.targets.adjustments import teams_adjustable_by
    from quotaflow.targets.services import outside_split
    from quotaflow.web.i18n import label

    out: list[Todo] = []
    for pack in active_packs(session):
        if not pack.target_plans:
            continue
        allowed = teams_adjustable_by(session, pack, person, today)
        if allowed is not None and not allowed:
            continue
        for plan_id, plan in pack.target_plans.items():
            try:
                shared = plans.of(pack, plan_id) if plans is not None else None
                outside = outside_split(session, pack, plan_id, today, shared)
            except QuotaflowError:  # a plan that cannot be split says so on its own page
                continue
            missing = [o.node.name for o in outside if allowed is None or o.team_id in allowed]
            if missing:
                out.append(
                    Todo(
                        _(
                            "No target in %(plan)s yet (joined after the split): %(who)s",
                            plan=label(plan.label) or plan.id,
                            who=", ".join(missing[:LIMIT]) + (" …" if len(missing) > LIMIT else ""),
                        ),
                        url_for("targets.plan_page", pack_id=pack.id, plan_id=plan_id),
                        "target",
                    )
                )
    return out


def org_todos(session: Session, today: date) -> list[Todo]:
    """An administrator's: people deactivated while still in a team (they keep counting in
    its targets and pace until the day they left is set on their page), one to-do each."""
    from quotaflow.org.services import inactive_in_teams

    return [
        Todo(
            _(
                "%(who)s is deactivated but still in %(teams)s: set the day they left",
                who=user.display_name,
                teams=", ".join(teams),
            ),
            url_for("admin.user_page", user_id=user.id),
            "org",
        )
        for user, teams in inactive_in_teams(session, today)[:LIMIT]
    ]


def _appraisal_todos(session: Session, person: Any, role: str) -> list[Todo]:
    from quotaflow.scorecards import cycle
    from quotaflow.scorecards.models import AppraisalPeriod

    out: list[Todo] = []
    packs = {p.id: p for p in active_packs(session)}
    for row in session.scalars(select(AppraisalPeriod).where(AppraisalPeriod.status == "open")):
        pack = packs.get(row.pack_id)
        if pack is None or row.scorecard_id not in pack.scorecards:
            continue
        card = pack.scorecards[row.scorecard_id]
        ratings = cycle.ratings_of(session, row)
        has_self = any(cycle.rates(item, "self") for _id, item in cycle.manual_items(card))
        if (
            role == "rep"
            and has_self
            and person.id in cycle.people_of(session, pack, row)
            and not cycle.submitted(ratings, person.id, "self")
        ):
            out.append(
                Todo(
                    _("Write your self-assessment for %(period)s", period=row.period),
                    url_for("appraisals.rate", period_id=row.id, rep_id=person.id),
                    "appraisal",
                )
            )
        if role == "manager":
            waiting = [
                r
                for r in cycle.managed_reps(session, pack, row, person.id)
                if not cycle.submitted(ratings, r, "manager")
            ]
            if waiting:
                out.append(
                    Todo(
                        _("Rate %(n)s people for %(period)s", n=len(waiting), period=row.period),
                        url_for("appraisals.overview", period_id=row.id),
                        "appraisal",
                    )
                )
    return out


def _title(session: Session, record: Record | None) -> str:
    if record is None:
        return "—"
    for pack in active_packs(session):
        form = pack.forms.get(record.form_id) if pack.id == record.pack_id else None
        if form is not None:
            return record_title(form, record)
    return f"#{record.id}"


def _stage(session: Session, record: Record | None, stage: str) -> str:
    """The stage's label in the reader's language (its id when no installed pack has it)."""
    from quotaflow.records.pages import stage_label

    for pack in active_packs(session):
        if record is not None and pack.id == record.pack_id and record.form_id in pack.forms:
            return stage_label(pack, record.form_id, stage)
    return stage
