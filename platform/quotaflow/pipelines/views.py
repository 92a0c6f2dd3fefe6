"""Pipeline pages: the board, moves that ask for missing fields inline, approvals, funnel."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from quotaflow.appended import appended_together
from quotaflow.errors import QuotaflowError
from quotaflow.ids import id_from
from quotaflow.messages import said_in
from quotaflow.org.models import Team, User
from quotaflow.org.roles import Capability, capabilities_of
from quotaflow.org.services import team_and_subteams
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import label_text
from quotaflow.packs.services import active_pack, installed_packs
from quotaflow.pipelines.funnel import funnel
from quotaflow.pipelines.machine import (
    allowed_targets,
    approval_stages,
    guarding_approval_stages,
    stage_of,
)
from quotaflow.pipelines.models import Approval
from quotaflow.pipelines.services import (
    ApprovalError,
    MoveConflict,
    MoveRefused,
    approval_queue,
    decide_approval,
    may_decide,
    move_record,
    pending_approval,
    pipeline_of,
)
from quotaflow.records.access import can_edit, visible_records
from quotaflow.records.models import Record
from quotaflow.records.pages import display_for, stage_label
from quotaflow.spreadsheets import CSV_MEDIA_TYPE
from quotaflow.web import request_session

bp = Blueprint("pipelines", __name__)
CLOSED_ON_BOARD_DAYS = 30  # won/lost columns show the last month, not all history


def _pack() -> CompiledPack:
    packs = installed_packs(request_session())
    if not packs:
        abort(404)
    wanted = request.args.get("pack") or packs[0].id
    if wanted not in {p.id for p in packs}:
        abort(404)
    return active_pack(request_session(), wanted)


def _today() -> date:
    return date.today()


@bp.get("/pipelines/<pipeline_id>")
def board(pipeline_id: str) -> ResponseReturnValue:
    """Kanban board: one column per stage, the reader's visible deals as cards."""
    pack = _pack()
    pipeline = pack.pipelines.get(pipeline_id) or abort(404)
    session = request_session()
    since = _today() - timedelta(days=CLOSED_ON_BOARD_DAYS)
    closed_ids = [s.id for s in pipeline.stages if s.outcome]
    on_board = (
        visible_records(session, current_user, role_capabilities=pack.role_capabilities)
        .where(Record.pack_id == pack.id, Record.form_id == pipeline.form)
        .where(or_(Record.stage.not_in(closed_ids), Record.closed_at >= since))
    )
    # a manager's board holds the whole team's deals: one person's at a time on request
    everyone = _names(session, set(session.scalars(on_board.with_only_columns(Record.owner_id)
                                                    .distinct().order_by(None))))  # fmt: skip
    owner = id_from(request.args.get("owner"))
    if owner is not None and owner in everyone:
        on_board = on_board.where(Record.owner_id == owner)
    else:
        owner = None
    query = on_board.order_by(Record.updated_at.desc()).limit(600)
    records = list(session.scalars(query))
    pending = {
        a.record_id
        for a in session.scalars(
            select(Approval).where(
                Approval.status == "pending", Approval.record_id.in_([r.id for r in records])
            )
        )
    }
    stale_before = None
    if pipeline.stale_after_days:
        stale_before = _today() - timedelta(days=pipeline.stale_after_days)
    columns = [(stage, [r for r in records if r.stage == stage.id]) for stage in pipeline.stages]
    open_ids = {s.id for s in pipeline.stages if s.outcome is None}
    stale_cards = sorted(
        (
            r
            for r in records
            if stale_before and r.stage in open_ids and r.updated_at.date() < stale_before
        ),
        key=lambda r: r.updated_at,
    )
    owners = _names(session, {r.owner_id for r in records})
    return render_template(
        "pipelines/board.html",
        pack=pack,
        pipeline=pipeline,
        columns=columns,
        pending=pending,
        stale_before=stale_before,
        stale_cards=stale_cards,
        closed_days=CLOSED_ON_BOARD_DAYS,
        owners=owners,
        everyone=sorted(everyone.items(), key=lambda item: item[1]),
        owner=owner,
        targets=lambda r: allowed_targets(pack, pipeline.id, r.stage) if r.stage else [],
        title_of=lambda r: _title(pack, r),
        stage_label=lambda s: label_text(stage_of(pipeline, s).label, _locale(), s),
    )


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    return dict(session.execute(select(User.id, User.display_name).where(User.id.in_(ids))).all())


def _locale() -> str:
    return getattr(current_user, "locale", "en") or "en"


def _title(pack: CompiledPack, record: Record) -> str:
    form = pack.forms[record.form_id]
    return str(record.values.get(form.title_field or "", "") or f"#{record.id}")


@bp.post("/records/<int:record_id>/move")
def move(record_id: int) -> ResponseReturnValue:
    """Move a deal; when fields are missing, ask for exactly those and keep what was typed."""
    pack = _pack()
    session = request_session()
    record = session.get(Record, record_id)
    if record is None or not can_edit(
        session, current_user, record, role_capabilities=pack.role_capabilities
    ):
        abort(404 if record is None else 403)
    pipeline_id = pipeline_of(pack, record.form_id) or abort(404)
    to_stage = request.form.get("to", "")
    extra = {k[len("field_") :]: v for k, v in request.form.items() if k.startswith("field_")}
    held = capabilities_of(session, current_user, _today(), pack.role_capabilities)
    may_reopen = bool(held & {Capability.ADMIN, Capability.MANAGER})
    back = request.form.get("back") or url_for("pipelines.board", pipeline_id=pipeline_id)
    try:
        with appended_together(session):  # its history, stage move and audit rows
            result = move_record(
                session,
                pack,
                record_id,
                to_stage,
                actor=current_user,
                expected_version=_version_sent(),
                extra=extra,
                may_reopen=may_reopen,
                locale=_locale(),
                today=_today(),
            )
        session.commit()
    except MoveRefused as exc:
        session.rollback()
        check = exc.check
        if exc.field_errors or (check is not None and (check.missing or check.rule_errors)):
            # asking for the missing fields is the next step of the move, not a failure: 200
            return _ask_for_fields(pack, record_id, to_stage, exc, extra, back)
        flash(said_in(_locale(), exc), "error")
        return redirect(_same_site(back))
    except MoveConflict as exc:
        session.rollback()
        flash(said_in(_locale(), exc), "error")
        return redirect(_same_site(back))
    if result.status == "pending_approval":
        flash(_("Sent for approval: the deal moves when it is approved."), "info")
    else:
        flash(_("Moved."), "info")
    return redirect(_same_site(back))


def _version_sent() -> int:
    """The record version the page was showing (0, which never matches, when it is garbled:
    the move is then refused as a conflict, with a reload to offer)."""
    return id_from(request.form.get("version")) or 0


def _ask_for_fields(
    pack: CompiledPack,
    record_id: int,
    to_stage: str,
    exc: MoveRefused,
    typed: dict[str, str],
    back: str,
) -> str:
    session = request_session()
    record = session.get(Record, record_id)
    assert record is not None
    form = pack.forms[record.form_id]
    missing = list(exc.check.missing if exc.check else []) + [
        f for f in exc.field_errors if not exc.check or f not in exc.check.missing
    ]
    fields = [f for f in form.fields if f.id in missing]
    errors = dict(exc.field_errors)
    for field_id in missing:
        if field_id in typed and not typed[field_id].strip():  # asked before, left blank
            errors.setdefault(field_id, _("Fill this in to move the deal to this stage."))
    pipeline = pack.pipelines[pipeline_of(pack, record.form_id) or ""]
    return render_template(
        "pipelines/move.html",
        record=record,
        fields=fields,
        to_stage=to_stage,
        stage_name=label_text(stage_of(pipeline, to_stage).label, _locale(), to_stage),
        typed=typed,
        field_errors=errors,
        rule_errors=exc.check.rule_errors if exc.check else [],
        back=back,
        title=_title(pack, record),
    )


def _same_site(target: str) -> str:
    from quotaflow.auth.services import safe_next

    return safe_next(target) or url_for("core.home")


# --- approvals ------------------------------------------------------------------------------


@bp.get("/approvals")
def approvals() -> ResponseReturnValue:
    """The approver's queue, and the reader's own requests with their decisions."""
    pack = _pack()
    session = request_session()
    queue = approval_queue(session, current_user, today=_today())
    mine = list(
        session.scalars(
            select(Approval)
            .where(Approval.requested_by == current_user.id)
            .order_by(Approval.requested_at.desc())
            .limit(20)
        )
    )
    records = {
        r.id: r
        for r in session.scalars(
            select(Record).where(Record.id.in_([a.record_id for a in [*queue, *mine]]))
        )
    }
    names = _names(
        session,
        {a.requested_by for a in queue if a.requested_by}
        | {a.decided_by for a in mine if a.decided_by},
    )
    return render_template(
        "pipelines/approvals.html",
        queue=queue,
        mine=mine,
        records=records,
        names=names,
        title_of=lambda r: _title(pack, r),
        stage_of=lambda r, stage: stage_label(pack, r.form_id, stage) if r else stage,
        values_of=lambda r, values: _values_shown(pack, r, values),
        changes_of=lambda r, values: _changes_shown(pack, r, values),
        rule_of=lambda a: _approval_rule(pack, a),
        pack=pack,
    )


def _approval_rule(pack: CompiledPack, approval: Approval) -> str:
    """Why the request needs a decision: the stage's approval message, in the reader's words."""
    pipeline = pack.pipelines.get(approval.pipeline_id)
    if pipeline is None or approval.to_stage not in {s.id for s in pipeline.stages}:
        return ""
    asking = (  # the stage whose rule asked: the one passed over, not always the target
        guarding_approval_stages(pipeline, approval.to_stage)
        if approval.is_change
        else approval_stages(pipeline, approval.from_stage, approval.to_stage)
    )
    rules = [pipeline.stages[i].approval for i in asking]
    return next((label_text(r.message, _locale()) for r in rules if r is not None), "")


def _changes_shown(
    pack: CompiledPack, record: Record, values: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """A change waiting for approval: each field it changes, as (label, now, asked for)."""
    form = pack.forms.get(record.form_id)
    order = [f.id for f in form.fields] if form is not None else []
    keys = [*order, *sorted((record.values.keys() | values.keys()) - set(order))]
    changed = [k for k in keys if record.values.get(k) != values.get(k)]
    now = dict(_values_shown(pack, record, {k: record.values.get(k) for k in changed}))
    asked = dict(_values_shown(pack, record, {k: values.get(k) for k in changed}))
    return [
        (name, now.get(name, "—"), asked.get(name, "—")) for name in dict.fromkeys([*now, *asked])
    ]


def _values_shown(
    pack: CompiledPack, record: Record, values: dict[str, Any]
) -> list[tuple[str, str]]:
    """What the request carried, as the record page shows it: field labels, formatted values."""
    form = pack.forms.get(record.form_id)
    if form is None:
        return [(key, str(value)) for key, value in values.items()]
    fields = {f.id: f for f in form.fields}
    show = display_for(pack, form, [values])
    language = _locale()
    return [
        (
            label_text(fields[key].label, language, key) if key in fields else key,
            show(fields.get(key), value),
        )
        for key, value in values.items()
        if value not in (None, "", [])
    ]


@bp.post("/approvals/<int:approval_id>")
def decide(approval_id: int) -> ResponseReturnValue:
    """Approve or reject, with a comment."""
    pack = _pack()
    session = request_session()
    approve = request.form.get("decision") == "approve"
    approval = session.get(Approval, approval_id) or abort(404)
    if approval.status == "pending" and not may_decide(
        session, current_user, approval, today=_today()
    ):
        abort(403)
    try:
        decide_approval(
            session,
            pack,
            approval_id,
            approver=current_user,
            approve=approve,
            comment=request.form.get("comment", "")[:2000],
            today=_today(),
        )
        session.commit()
    except (ApprovalError, MoveConflict) as exc:
        session.rollback()
        flash(said_in(_locale(), exc), "error")
        return redirect(url_for("pipelines.approvals"))
    flash(_("Approved: the deal moved on.") if approve else _("Rejected: the rep is told."), "info")
    return redirect(url_for("pipelines.approvals"))


# --- funnel ---------------------------------------------------------------------------------


def _period() -> tuple[date, date]:
    today = _today()
    try:
        start = date.fromisoformat(request.args.get("from") or f"{today.year}-01-01")
        end = date.fromisoformat(request.args.get("to") or today.isoformat())
    except ValueError:
        abort(400)
    return (start, end) if start <= end else (end, start)


def _scoped_base(pack: CompiledPack) -> Select[Any]:
    session = request_session()
    base = visible_records(session, current_user, role_capabilities=pack.role_capabilities)
    team_key = request.args.get("team")
    if team_key:
        team = session.scalars(select(Team).where(Team.key == team_key)).first() or abort(404)
        base = base.where(Record.team_id.in_(team_and_subteams(session, team.id)))
    rep = request.args.get("rep")
    if rep:
        user = session.scalars(select(User).where(User.username == rep)).first() or abort(404)
        base = base.where(Record.owner_id == user.id)
    return base


@bp.get("/pipelines/<pipeline_id>/funnel")
def funnel_page(pipeline_id: str) -> ResponseReturnValue:
    """Funnel table and chart for deals created in a period, for what the reader may see."""
    pack = _pack()
    if pipeline_id not in pack.pipelines:
        abort(404)
    start, end = _period()
    report = funnel(
        request_session(),
        pack,
        pipeline_id,
        start=start,
        end=end,
        base=_scoped_base(pack),
        locale=_locale(),
    )
    if request.args.get("format") == "csv":
        name = f"funnel-{pipeline_id}-{start}-{end}.csv"
        return Response(
            report.csv_bytes(),
            content_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    form_id = pack.pipelines[pipeline_id].form
    teams = _teams_of_visible(pack, form_id)
    top = max((r.reached for r in report.rows), default=0) or 1
    return render_template(
        "pipelines/funnel.html",
        pack=pack,
        pipeline=pack.pipelines[pipeline_id],
        report=report,
        start=start,
        end=end,
        teams=teams,
        reps=_owners_of_visible(pack, form_id),
        top=top,
        team=request.args.get("team", ""),
        rep=request.args.get("rep", ""),
    )


def _of_visible(pack: CompiledPack, form_id: str, column: Any) -> Select[Any]:
    """The distinct values of a column over the form's records the reader may see."""
    return (
        visible_records(request_session(), current_user, role_capabilities=pack.role_capabilities)
        .where(Record.pack_id == pack.id, Record.form_id == form_id)
        .with_only_columns(column)
        .distinct()
    )


def _owners_of_visible(pack: CompiledPack, form_id: str) -> list[tuple[str, str]]:
    """(username, name) of everyone owning a record of the form the reader may see: the
    funnel's rep filter offers them instead of asking for a username."""
    rows = request_session().execute(
        select(User.username, User.display_name)
        .where(User.id.in_(_of_visible(pack, form_id, Record.owner_id)))
        .order_by(User.display_name, User.username)
    )
    return [(username, name or username) for username, name in rows]


def _teams_of_visible(pack: CompiledPack, form_id: str) -> list[Team]:
    """The teams the reader's visible records are in: the funnel's team filter offers only
    these (a team whose deals they may not see only ever showed 0 deals)."""
    return list(
        request_session().scalars(
            select(Team)
            .where(Team.id.in_(_of_visible(pack, form_id, Record.team_id)))
            .order_by(Team.name)
        )
    )


@bp.app_context_processor
def _deal_panel() -> dict[str, Any]:
    return {"pipeline_panel": pipeline_panel}


def pipeline_panel(record: Record) -> dict[str, Any] | None:
    """What a record page shows about its pipeline: moves, a waiting approval, linked records."""
    session = request_session()
    pack = active_pack(session, record.pack_id)
    pipeline_id = pipeline_of(pack, record.form_id)
    linked = _linked_records(session, pack, record)
    if pipeline_id is None and not linked:
        return None
    stage = record.stage
    targets = allowed_targets(pack, pipeline_id, stage) if pipeline_id and stage else []
    if pipeline_id and stage and stage_of(pack.pipelines[pipeline_id], stage).outcome:
        held = capabilities_of(session, current_user, _today(), pack.role_capabilities)
        if held & {Capability.ADMIN, Capability.MANAGER}:
            targets = [s.id for s in pack.pipelines[pipeline_id].stages if s.id != stage]
    pipeline = pack.pipelines[pipeline_id] if pipeline_id else None
    return {
        "pipeline": pipeline,
        "targets": targets,
        "stage_label": lambda s: (
            label_text(stage_of(pipeline, s).label, _locale(), s) if pipeline else s
        ),
        "pending": pending_approval(session, record.id),
        "linked": linked,
        "title_of": lambda r: _title(pack, r),
        "form_label": lambda form_id: label_text(pack.forms[form_id].label, _locale(), form_id),
    }


def _linked_records(session: Session, pack: CompiledPack, record: Record) -> list[Record]:
    """Records of other forms that refer to this one (visits and payments of a deal)."""
    found: list[Record] = []
    for form in pack.forms.values():
        for fdef in form.fields:
            if fdef.type == "reference" and fdef.form == record.form_id:
                query = (
                    visible_records(session, current_user, role_capabilities=pack.role_capabilities)
                    .where(
                        Record.form_id == form.id,
                        Record.values[fdef.id].as_integer() == record.id,
                    )
                    .order_by(Record.record_date.desc())
                    .limit(50)
                )
                found.extend(session.scalars(query))
    return found


@bp.errorhandler(QuotaflowError)
def _domain_error(exc: QuotaflowError) -> ResponseReturnValue:
    flash(said_in(_locale(), exc), "error")
    return redirect(request.referrer and _same_site(request.referrer) or url_for("core.home"))
