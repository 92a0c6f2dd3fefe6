"""Moving records through a pipeline: atomic moves, stage history, approvals, stale records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from quotaflow.appended import append_rows
from quotaflow.audit import record_event
from quotaflow.db import insert_many
from quotaflow.forms.values import FieldValueError, Raw, from_storage, parse_value, to_storage
from quotaflow.messages import N_, LocalizedError
from quotaflow.org.models import Membership
from quotaflow.org.roles import Capability, Person, capabilities_of
from quotaflow.packs.compiled import CompiledPack
from quotaflow.pipelines.machine import (
    MoveCheck,
    check_move,
    fields_a_move_reads,
    is_closed,
    open_stages,
)
from quotaflow.pipelines.models import Approval, StageMove
from quotaflow.records.models import Record
from quotaflow.records.services import (
    RecordNotFound,
    add_history,
    changed_values,
    indexed_columns,
    update_record,
)
from quotaflow.timeutil import utcnow

STAGE_MOVES = cast(Table, StageMove.__table__)


class MoveRefused(LocalizedError):
    """The move cannot happen as asked; `check` and `field_errors` say exactly why."""

    def __init__(
        self,
        message: str,
        check: MoveCheck | None = None,
        field_errors: dict[str, str] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(message, **params)
        self.check = check
        self.field_errors = field_errors or {}


class MoveConflict(LocalizedError):
    """Someone else changed or moved the record first."""


class ApprovalError(LocalizedError):
    """The approval cannot be decided by this person or is no longer pending."""


@dataclass(frozen=True, slots=True)
class MoveResult:
    """What happened: moved, or waiting for approval."""

    status: str  # moved | pending_approval
    stage: str | None
    approval_id: int | None = None
    messages: list[str] = field(default_factory=list)


def typed_values(pack: CompiledPack, form_id: str, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A record's stored JSON values as typed values for expressions."""
    fields = {f.id: f for f in pack.forms[form_id].fields}
    return {k: from_storage(fields[k], v) if k in fields else v for k, v in stored.items()}


def pipeline_of(pack: CompiledPack, form_id: str) -> str | None:
    """The pipeline records of this form move through, if any."""
    return next((p.id for p in pack.pipelines.values() if p.form == form_id), None)


def move_record(
    session: Session,
    pack: CompiledPack,
    record_id: int,
    to_stage: str,
    *,
    actor: Person,
    expected_version: int,
    extra: Mapping[str, Raw] | None = None,
    may_reopen: bool = False,
    locale: str = "en",
    today: date | None = None,
) -> MoveResult:
    """Move a record, or send the move for approval; refuse with what is missing."""
    record = session.get(Record, record_id)
    if record is None or record.deleted_at is not None:
        raise RecordNotFound(f"record {record_id} does not exist or was deleted")
    pipeline_id = pipeline_of(pack, record.form_id)
    if pipeline_id is None or record.stage is None:
        raise MoveRefused(N_("records of this form do not move through a pipeline"))
    if record.version_no != expected_version:
        raise MoveConflict(N_("someone else changed this record since you opened it; reload it"))
    if pending_approval(session, record.id) is not None:
        raise MoveRefused(N_("this record is waiting for approval; it moves when that is decided"))
    fields = {f.id: f for f in pack.forms[record.form_id].fields}
    values = typed_values(pack, record.form_id, record.values)
    # a move takes values only for the fields that decide it (missing ones, what its rules
    # and approval read): any other posted along would change the deal past its rules (a
    # discount raised on the way to a stage that does not look at it)
    asked = fields_a_move_reads(pack, pipeline_id, record.stage, to_stage) | set(
        check_move(
            pack, pipeline_id, values, record.stage, to_stage,
            may_reopen=may_reopen, locale=locale, today=today,
        ).missing
    )  # fmt: skip
    given: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, raw in (extra or {}).items():
        if name in asked and name in fields and fields[name].formula is None:
            try:
                given[name] = parse_value(fields[name], raw)
            except FieldValueError as exc:
                errors[name] = exc.in_locale(locale)
    if errors:
        raise MoveRefused(N_("some values cannot be read"), field_errors=errors)
    values.update(given)
    check = check_move(
        pack,
        pipeline_id,
        values,
        record.stage,
        to_stage,
        may_reopen=may_reopen,
        locale=locale,
        today=today,
    )
    if not check.allowed:
        raise MoveRefused(check.reason, check)
    if not check.ready:
        raise MoveRefused(_not_ready_message(check), check)
    if given:
        _save_values(session, record, {k: v for k, v in given.items() if v is not None}, actor.id)
    if check.needs_approval:
        approval = Approval(
            record_id=record.id,
            pipeline_id=pipeline_id,
            from_stage=record.stage,
            to_stage=to_stage,
            approver_role=check.approver_role or "manager",
            requested_by=actor.id,
            values=dict(record.values),
        )
        session.add(approval)
        record.updated_at = utcnow()  # bumps the version: a concurrent move now conflicts
        _flush(session)
        add_history(
            session, record, "approval_requested", actor.id, {"stage": [record.stage, to_stage]}
        )
        record_event(
            session,
            actor=str(actor.id),
            action="approval.request",
            object_type="record",
            object_id=str(record.id),
            details={"to": to_stage},
        )
        return MoveResult("pending_approval", record.stage, approval.id, [check.approval_message])
    _apply_move(session, pack, record, pipeline_id, to_stage, actor.id)
    return MoveResult("moved", to_stage)


def _not_ready_message(check: MoveCheck) -> str:
    parts = []
    if check.missing:
        parts.append("fill in " + ", ".join(check.missing) + " to enter this stage")
    parts += check.rule_errors
    return "; ".join(parts)


def _save_values(session: Session, record: Record, given: dict[str, Any], actor_id: int) -> None:
    new = {**record.values, **{k: to_storage(v) for k, v in given.items()}}
    changes = {k: [record.values.get(k), new[k]] for k in given if record.values.get(k) != new[k]}
    record.values = new
    if "amount" in given:
        record.amount = given["amount"]
    add_history(session, record, "update", actor_id, changes)


def _apply_move(
    session: Session,
    pack: CompiledPack,
    record: Record,
    pipeline_id: str,
    to_stage: str,
    actor_id: int | None,
) -> None:
    pipeline = pack.pipelines[pipeline_id]
    from_stage = record.stage
    now = utcnow()
    record.stage = to_stage
    record.updated_at = now
    record.closed_at = now if is_closed(pipeline, to_stage) else None
    _flush(session)
    session.add(
        StageMove(
            record_id=record.id,
            pipeline_id=pipeline_id,
            from_stage=from_stage,
            to_stage=to_stage,
            moved_by=actor_id,
            moved_at=now,
        )
    )
    add_history(session, record, "stage", actor_id, {"stage": [from_stage, to_stage]})
    record_event(
        session,
        actor=str(actor_id),
        action="record.move",
        object_type="record",
        object_id=str(record.id),
        details={"from": from_stage, "to": to_stage},
    )


def _flush(session: Session) -> None:
    try:
        session.flush()  # the versioned UPDATE: a concurrent move makes it match no row
    except StaleDataError:
        session.rollback()
        raise MoveConflict(
            N_("someone else moved or changed this record at the same time; reload it")
        ) from None


def record_first_stage(
    session: Session,
    record: Record,
    pipeline_id: str,
    actor_id: int | None,
    at: datetime | None = None,
) -> None:
    """The stage history's first entry, when a record is created in its first stage."""
    assert record.stage is not None
    record_first_stages(session, [(record.id, record.stage, at)], pipeline_id, actor_id)


def record_first_stages(
    session: Session,
    moves: Sequence[tuple[int, str, datetime | None]],
    pipeline_id: str,
    actor_id: int | None,
) -> None:
    """record_first_stage for many records at once: (record id, stage, when) each."""
    rows = [
        {"record_id": rid, "pipeline_id": pipeline_id, "from_stage": None,
         "to_stage": stage, "moved_by": actor_id, "moved_at": at or utcnow()}
        for rid, stage, at in moves
    ]  # fmt: skip
    if len(rows) >= 100:  # an import: COPY on PostgreSQL
        insert_many(session, STAGE_MOVES, rows)
    else:  # a save: a plain INSERT, past the unit of work (the records are flushed)
        append_rows(session, STAGE_MOVES, rows)


# --- approvals -----------------------------------------------------------------------------


def pending_approval(session: Session, record_id: int) -> Approval | None:
    """The record's open approval request, if any."""
    query = select(Approval).where(Approval.record_id == record_id, Approval.status == "pending")
    return session.scalars(query).first()


def may_decide(session: Session, person: Person, approval: Approval, *, today: date) -> bool:
    """Admins, or a holder of the approver role who may see the record; never the requester."""
    if approval.requested_by == person.id:
        return False  # an admin's own request too: someone else decides
    if person.is_admin:
        return True
    record = session.get(Record, approval.record_id)
    from quotaflow.records.access import can_view

    if record is None or not can_view(session, person, record):
        return False
    if approval.approver_role in {c.value for c in Capability}:
        return Capability(approval.approver_role) in capabilities_of(session, person, today)
    roles = session.scalars(
        select(Membership.role).where(
            Membership.user_id == person.id,
            Membership.valid_from <= today,
            (Membership.valid_to.is_(None)) | (Membership.valid_to > today),
        )
    )
    return approval.approver_role in set(roles)


def approval_queue(session: Session, person: Person, *, today: date) -> list[Approval]:
    """Pending approvals this person may decide, oldest first."""
    query = select(Approval).where(Approval.status == "pending").order_by(Approval.requested_at)
    return [a for a in session.scalars(query) if may_decide(session, person, a, today=today)]


def request_change_approval(
    session: Session,
    pack: CompiledPack,
    record: Record,
    stored: Mapping[str, Any],
    *,
    actor: Person,
    approver_role: str,
) -> Approval:
    """Hold an edit that needs approval in the record's stage (see
    machine.change_needs_approval): the record keeps its values until an approver agrees; the
    request carries the new ones and the record's version it was made on."""
    if pending_approval(session, record.id) is not None:
        waiting = N_("this record is waiting for approval; change it once that is decided")
        raise ApprovalError(waiting)
    assert record.stage is not None
    record.updated_at = utcnow()  # bumps the version: an edit on the old page now conflicts
    _flush(session)
    approval = Approval(
        record_id=record.id, pipeline_id=pipeline_of(pack, record.form_id) or "",
        from_stage=record.stage,
        to_stage=record.stage, approver_role=approver_role, requested_by=actor.id,
        values=dict(stored), record_version=record.version_no,
    )  # fmt: skip
    session.add(approval)
    _flush(session)
    add_history(
        session, record, "approval_requested", actor.id, changed_values(record.values, stored)
    )
    record_event(
        session, actor=str(actor.id), action="approval.request", object_type="record",
        object_id=str(record.id), details={"change_in": record.stage},
    )  # fmt: skip
    return approval


def decide_approval(
    session: Session,
    pack: CompiledPack,
    approval_id: int,
    *,
    approver: Person,
    approve: bool,
    comment: str = "",
    today: date,
) -> Approval:
    """Approve (the move happens) or reject (the record stays) with a comment; both are audited."""
    approval = session.get(Approval, approval_id)
    if approval is None or approval.status != "pending":
        raise ApprovalError(N_("this approval was already decided or does not exist"))
    if not may_decide(session, approver, approval, today=today):
        raise ApprovalError(N_("you may not decide this approval"))
    record = session.get(Record, approval.record_id)
    assert record is not None
    change = approval.is_change
    if approve and record.deleted_at is not None:
        raise ApprovalError(N_("the record was deleted since the request; it no longer applies"))
    if approve and record.stage != approval.from_stage:
        raise ApprovalError(N_("the record has moved since the request; it no longer applies"))
    if approve and change and record.version_no != approval.record_version:
        raise ApprovalError(
            N_(
                "the record was changed since the request; it no longer applies: reject it, "
                "and the change can be asked for again"
            )
        )
    approval.status = "approved" if approve else "rejected"
    approval.decided_by, approval.decided_at, approval.comment = approver.id, utcnow(), comment
    record.updated_at = utcnow()
    _flush(session)
    shown: dict[str, Any] = {"comment": comment}
    if not change:
        shown["stage"] = [approval.from_stage, approval.to_stage]
    add_history(session, record, f"approval_{approval.status}", approver.id, shown)
    record_event(
        session,
        actor=str(approver.id),
        action=f"approval.{approval.status}",
        object_type="record",
        object_id=str(record.id),
        details={"to": approval.to_stage, "comment": comment},
    )
    if approve and change:
        _apply_change(session, pack, record, approval.values, approver.id)
    elif approve:
        _apply_move(session, pack, record, approval.pipeline_id, approval.to_stage, approver.id)
    return approval


def _apply_change(
    session: Session,
    pack: CompiledPack,
    record: Record,
    stored: Mapping[str, Any],
    approver_id: int,
) -> None:
    """Save the approved values, as the requester's edit would have been saved."""
    form = pack.forms[record.form_id]
    amount, day = indexed_columns(form, typed_values(pack, record.form_id, stored))
    update_record(
        session, record.id, values=dict(stored), actor_id=approver_id,
        expected_version=record.version_no, amount=amount, record_date=day,
    )  # fmt: skip


# --- stale records -------------------------------------------------------------------------


def stale_records(
    session: Session,
    pack: CompiledPack,
    pipeline_id: str,
    *,
    today: date,
    base: Select[tuple[Record]] | None = None,
) -> list[Record]:
    """Open records not changed for the pipeline's stale_after_days, oldest first."""
    pipeline = pack.pipelines[pipeline_id]
    if pipeline.stale_after_days is None:
        return []
    cutoff = datetime.combine(
        today - timedelta(days=pipeline.stale_after_days), datetime.min.time()
    )
    query = base if base is not None else select(Record)
    query = query.where(
        Record.pack_id == pack.id,
        Record.form_id == pipeline.form,
        Record.deleted_at.is_(None),
        Record.stage.in_([s.id for s in open_stages(pipeline)]),
        Record.updated_at < cutoff.replace(tzinfo=UTC),
    ).order_by(Record.updated_at)
    return list(session.scalars(query))
