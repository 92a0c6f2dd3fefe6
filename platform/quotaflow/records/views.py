"""Record routes: list, create, view, edit (with the conflict page), delete and restore.

Who may see or change a record is decided by `records/access.py` only. Every form carries
the pack version it was opened with; the submission is checked against that version and
the record is pinned to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from quotaflow.appended import appended_together
from quotaflow.audit import record_event
from quotaflow.forms import wtf
from quotaflow.forms.engine import evaluate_form, starting_values
from quotaflow.ids import id_from
from quotaflow.org.models import Team
from quotaflow.org.services import team_on
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FieldDef, FormDef
from quotaflow.packs.models import PackVersion
from quotaflow.packs.services import active_version_id
from quotaflow.pipelines.machine import change_needs_approval
from quotaflow.pipelines.services import (
    ApprovalError,
    MoveConflict,
    pending_approval,
    pipeline_of,
    record_first_stage,
    request_change_approval,
)
from quotaflow.records.access import can_edit
from quotaflow.records.listing import ListQuery, list_page
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.pages import (
    FormPage,
    NavItem,
    blank_form_page,
    display_for,
    field_help,
    form_or_404,
    form_page,
    initial_stage,
    listed_records,
    local_today,
    may_restore,
    nav_items,
    opened_version,
    pack_or_404,
    people_names,
    quiet_blank_errors,
    record_or_404,
    reference_choices,
    stage_label,
    typed_values,
    version_gone,
)
from quotaflow.records.services import (
    EditConflict,
    RecordNotFound,
    create_record,
    delete_record,
    indexed_columns,
    json_value,
    restore_record,
    update_record,
)
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language
from quotaflow.web.pagecache import render_kept

bp = Blueprint("records", __name__)


# --- list ------------------------------------------------------------------------------------


@bp.get("/forms/<pack_id>/<form_id>/records")
def index(pack_id: str, form_id: str) -> ResponseReturnValue:
    """Records of one form the person may see: filters, sort, pages."""
    pack = pack_or_404(pack_id)
    form = form_or_404(pack, form_id)
    restorable = may_restore(pack)
    query = ListQuery.from_args(request.args, deleted_allowed=restorable)
    session = request_session()
    result = list_page(session, listed_records(pack, form, query), form, query)
    pipeline = pack.pipelines.get(pipeline_of(pack, form_id) or "")
    return render_template(
        "records/list.html", pack=pack, form=form, query=query, result=result,
        pipeline=pipeline, may_restore=restorable, title=wtf.record_title,
        stage_label=stage_label, show=display_for(pack, form, []),
        amount_field=_field(form, "amount"),
    )  # fmt: skip


def _field(form: FormDef, field_id: str) -> FieldDef | None:
    return next((f for f in form.fields if f.id == field_id), None)


# --- create ----------------------------------------------------------------------------------


@bp.get("/forms/<pack_id>/<form_id>/new")
def new(pack_id: str, form_id: str) -> ResponseReturnValue:
    """An empty form, opened with the pack's current version."""
    pack = pack_or_404(pack_id)
    form = form_or_404(pack, form_id)
    version_id = active_version_id(request_session(), pack_id)
    stage = initial_stage(pack, form_id)
    starting = starting_values(pack, form.id, local_today())  # the day TODAY() is in its rules
    page = blank_form_page(pack, version_id, form.id, stage, starting)
    return render_kept(page.key, "records/form.html", page=page, record=None)


@bp.post("/forms/<pack_id>/<form_id>/new")
def create(pack_id: str, form_id: str) -> ResponseReturnValue:
    """Save a new record, checked against (and pinned to) the version the form was opened with."""
    now = pack_or_404(pack_id)
    opened = opened_version(pack_id, form_id)
    if opened is None or form_id not in now.forms:
        stage = initial_stage(now, form_id)
        return version_gone(pack_id, form_id, stage, "records/form.html", record=None)
    pack, version_id = opened
    stage = initial_stage(pack, form_id)
    page = form_page(pack, version_id, form_id, stage=stage, formdata=request.form)
    if not page.state.ok:
        return render_template("records/form.html", page=page, record=None), 400
    session = request_session()
    user_id = current_user.id
    team_id = team_on(session, user_id, local_today())
    form = pack.forms[form_id]
    amount, record_date = indexed_columns(form, page.state.values)
    with appended_together(session):  # its history, first stage and audit rows
        record = create_record(
            session, pack_id=pack.id, pack_version_id=version_id, form_id=form_id,
            owner_id=user_id, team_id=team_id,
            values=_stored(page.state.values), actor_id=user_id, stage=stage,
            amount=amount, record_date=record_date or local_today(),
        )  # fmt: skip
        pipeline_id = pipeline_of(pack, form_id)
        if pipeline_id and stage:
            record_first_stage(session, record, pipeline_id, user_id)
        _audit(session, "record_create", record)
    session.commit()
    return _saved(record)


def _saved(record: Record) -> ResponseReturnValue:
    """To the record's page, which says it was saved: by its address, not a message kept in
    the session cookie (a save then writes no cookie, and the next page signs none)."""
    return redirect(url_for("records.view", record_id=record.id, saved=1))


def _stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values to keep: blanks left out (a missing key reads as blank)."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != []}


def _audit(session: Session, action: str, record: Record) -> None:
    record_event(
        session, actor=current_user.username, action=action, object_type="record",
        object_id=str(record.id), details={"form": record.form_id},
    )  # fmt: skip


# --- htmx: live preview while typing --------------------------------------------------------


@bp.post("/forms/<pack_id>/<form_id>/preview")
def preview(pack_id: str, form_id: str) -> ResponseReturnValue:
    """Visible fields, computed values and errors for what is typed so far (htmx partial)."""
    form_or_404(pack_or_404(pack_id), form_id)
    opened = opened_version(pack_id, form_id)
    if opened is None:
        return "", 204  # the submit will explain; nothing to update meanwhile
    pack, version_id = opened
    record_id = id_from(request.form.get("record_id"))
    stored: dict[str, Any] = {}
    if record_id is not None:
        record = record_or_404(record_id, pack)
        stage, stored = record.stage, record.values
    else:
        stage = initial_stage(pack, form_id)
    page = form_page(pack, version_id, form_id, stage=stage, formdata=request.form, stored=stored)
    quiet_blank_errors(page)
    page.preview = True
    template = "forms/_preview.html" if request.htmx else "records/form.html"  # type: ignore[attr-defined]
    return render_template(template, page=page, record=None)


@bp.post("/forms/<pack_id>/<form_id>/choices/<field_id>")
def reference_search(pack_id: str, form_id: str, field_id: str) -> ResponseReturnValue:
    """The options of a reference field whose titles hold what is typed in its search box
    (htmx: they replace the list's options); the record chosen stays offered."""
    form_or_404(pack_or_404(pack_id), form_id)
    opened = opened_version(pack_id, form_id)
    if opened is None:
        return "", 204  # the submit will explain
    pack, _version_id = opened
    form = pack.forms[form_id]
    fdef = next((f for f in form.fields if f.id == field_id and f.type == "reference"), None)
    if fdef is None:
        abort(404)
    record_id = id_from(request.form.get("record_id"))
    saved = None
    if record_id is not None:  # searched from an edit page: one the person may edit, this form's
        record = record_or_404(record_id, pack, edit=True)
        if (record.pack_id, record.form_id) != (pack.id, form_id):
            abort(404)
        saved = record.values.get(field_id)
    chosen = request.form.get(wtf.PREFIX + field_id, "")
    search = request.form.get("x-find", "").strip()[:200]
    offered = reference_choices(pack, form, fdef, chosen, saved, search)
    help_text = field_help(fdef, 0 if search else len(offered.options))  # a search: not cut
    return render_template(
        "forms/_choices.html", offered=offered, chosen=chosen, search=search, field_id=field_id,
        limit=wtf.MAX_REFERENCE_CHOICES, help_text=help_text,
    )  # fmt: skip


# --- view ------------------------------------------------------------------------------------


@bp.get("/records/<int:record_id>")
def view(record_id: int) -> ResponseReturnValue:
    """A record's values, where it stands, and its history from the first version on."""
    record = record_or_404(record_id)
    session = request_session()
    pack = _pinned(record)
    form = pack.forms[record.form_id]
    history = list(
        session.scalars(
            select(RecordHistory)
            .where(RecordHistory.record_id == record.id)
            .order_by(RecordHistory.changed_at, RecordHistory.id)
        )
    )
    value_sets = [record.values] + [
        {k: pair[i] for k, pair in h.changes.items() if len(pair) == 2}
        for h in history
        for i in (0, 1)
    ]
    authors = {h.changed_by for h in history if h.changed_by}
    names = people_names(session, {record.owner_id, *authors})
    team = session.get(Team, record.team_id) if record.team_id else None
    version = session.get(PackVersion, record.pack_version_id)
    shown = evaluate_form(pack, form.id, typed_values(form, record.values), stage=record.stage)
    # a record that came in without its computed values (an import, the demo) shows them
    # worked out from its own inputs by its own version; a stored one is shown as saved
    values = {
        **{f.id: shown.values.get(f.id) for f in form.fields if f.formula is not None},
        **{k: v for k, v in record.values.items() if v not in (None, "", [])},
    }
    return render_template(
        "records/view.html", record=record, pack=pack, form=form, history=history, values=values,
        show=display_for(pack, form, value_sets), names=names, team=team, version=version,
        fields={f.id: f for f in form.fields}, title=wtf.record_title(form, record),
        visible=shown.visible,
        stage=stage_label(pack, record.form_id, record.stage),
        stage_name=lambda stage: stage_label(pack, record.form_id, stage),
        may_edit=can_edit(session, current_user, record, role_capabilities=pack.role_capabilities),
        may_restore=record.deleted_at is not None and may_restore(pack),
        saved=request.args.get("saved") == "1",
    )  # fmt: skip


def _pinned(record: Record) -> CompiledPack:
    """The version the record was saved with; the current one if that no longer compiles."""
    try:
        pack = wtf.compiled_version(request_session(), record.pack_id, record.pack_version_id)
    except wtf.VersionUnavailable:
        pack = pack_or_404(record.pack_id)
    if record.form_id not in pack.forms:
        pack = pack_or_404(record.pack_id)
        form_or_404(pack, record.form_id)
    return pack


# --- edit ------------------------------------------------------------------------------------


def _edit_pack(record: Record) -> tuple[CompiledPack, int]:
    """Edits open with the current version (the record moves to it on save) when it still has
    the form, else with the version the record was saved under."""
    session = request_session()
    pack = pack_or_404(record.pack_id)
    if record.form_id in pack.forms:
        return pack, active_version_id(session, record.pack_id)
    return _pinned(record), record.pack_version_id


@bp.get("/records/<int:record_id>/edit")
def edit(record_id: int) -> ResponseReturnValue:
    """The record's form with its saved values and version number."""
    record = record_or_404(record_id)
    if record.deleted_at is not None:
        flash(_("This record is deleted; restore it to change it."), "error")
        return redirect(url_for("records.view", record_id=record.id))
    record = record_or_404(record_id, edit=True)
    pack, version_id = _edit_pack(record)
    form = pack.forms[record.form_id]
    page = form_page(pack, version_id, record.form_id, stage=record.stage,
                 values=typed_values(form, record.values), check=False)  # fmt: skip
    held = pending_approval(request_session(), record.id) is not None  # said before typing
    return render_template("records/form.html", page=page, record=record,
                           version_no=record.version_no, held=held)  # fmt: skip


@bp.post("/records/<int:record_id>/edit")
def update(record_id: int) -> ResponseReturnValue:
    """Save an edit made on top of `version_no`; someone else's save in between → conflict page."""
    record = record_or_404(record_id)
    if record.deleted_at is not None:
        flash(_("This record was deleted while you were editing it; nothing was saved."), "error")
        return redirect(url_for("records.view", record_id=record.id))
    record = record_or_404(record_id, edit=True)
    sent = id_from(request.form.get("version_no"))
    expected = sent if sent is not None else record.version_no
    opened = opened_version(record.pack_id, record.form_id)
    if opened is None:
        return version_gone(record.pack_id, record.form_id, record.stage, "records/form.html",
                            record.values, record=record, version_no=expected)  # fmt: skip
    pack, version_id = opened
    page = form_page(pack, version_id, record.form_id, stage=record.stage,
                     formdata=request.form, stored=record.values)  # fmt: skip
    session = request_session()
    held = pending_approval(session, record.id) is not None
    if not page.state.ok:
        return render_template("records/form.html", page=page, record=record,
                               version_no=expected, held=held), 400  # fmt: skip
    if held:
        # what the approver is deciding on must not change under them (nor a change slip
        # past them meanwhile): the deal waits, its editor's input kept on the page
        return render_template(
            "records/form.html", page=page, record=record, version_no=expected, held=True
        ), 409
    if expected == record.version_no and (asked := _change_needing_approval(pack, record, page)):
        return asked
    amount, record_date = indexed_columns(page.form, page.state.values)
    try:
        with appended_together(session):  # its history and audit rows
            update_record(
                session, record.id, values=_stored(page.state.values),
                actor_id=current_user.id, expected_version=expected,
                pack_version_id=version_id, amount=amount, record_date=record_date,
            )  # fmt: skip
            _audit(session, "record_update", record)
    except EditConflict as exc:
        return _conflict(page, exc), 409
    except RecordNotFound:
        abort(404)
    session.commit()
    return _saved(record)


def _change_needing_approval(
    pack: CompiledPack, record: Record, page: FormPage
) -> ResponseReturnValue | None:
    """An edit that makes the deal's own stage need approval (a discount raised past what
    the stage allows) waits for it, as moving into the stage would: None when it does not."""
    pipeline_id = pipeline_of(pack, record.form_id)
    if pipeline_id is None or record.stage is None:
        return None
    before = typed_values(page.form, record.values)
    needed = change_needs_approval(
        pack, pipeline_id, record.stage, before, page.state.values,
        locale=current_language(), today=local_today(),
    )  # fmt: skip
    if needed is None:
        return None
    session = request_session()
    version = record.version_no
    try:
        request_change_approval(
            session, pack, record,
            {k: json_value(v) for k, v in _stored(page.state.values).items()},
            actor=current_user, approver_role=needed[0],
        )  # fmt: skip
    except (ApprovalError, MoveConflict):  # decided or saved by someone else at this moment
        session.rollback()
        page.state.form_errors.append(
            _("Someone else changed this deal at the same moment: reload it and try again.")
        )
        return render_template(
            "records/form.html", page=page, record=record, version_no=version
        ), 409
    session.commit()
    flash(_("Sent for approval: the change is saved when it is approved."), "info")
    if needed[1]:
        flash(needed[1], "info")
    return redirect(url_for("records.view", record_id=record.id))


def _conflict(page: FormPage, exc: EditConflict) -> str:
    """Their saved values and this person's input side by side; the form re-submits on top."""
    session = request_session()
    current = session.get(Record, exc.record_id)
    if current is None:
        abort(404)
    session.refresh(current)
    page.show = display_for(page.pack, page.form, [exc.current, exc.submitted])
    rows = [
        (fdef, exc.current.get(fdef.id), exc.submitted.get(fdef.id)) for fdef in page.form.fields
    ]
    names = people_names(session, {current.owner_id})
    return render_template(
        "records/conflict.html", page=page, record=current, version_no=current.version_no,
        rows=rows, names=names,
        changed=[r for r in rows if (r[1] or None) != (r[2] or None)],
    )  # fmt: skip


# --- delete and restore ----------------------------------------------------------------------


@bp.post("/records/<int:record_id>/delete")
def delete(record_id: int) -> ResponseReturnValue:
    """Soft delete: hidden from lists and figures, kept with its history, restorable."""
    record = record_or_404(record_id)
    if record.deleted_at is None:
        record = record_or_404(record_id, edit=True)
        session = request_session()
        with appended_together(session):
            delete_record(session, record, actor_id=current_user.id)
            _audit(session, "record_delete", record)
        session.commit()
        flash(_("Deleted. A manager can restore it."), "success")
    return redirect(url_for("records.index", pack_id=record.pack_id, form_id=record.form_id))


@bp.post("/records/<int:record_id>/restore")
def restore(record_id: int) -> ResponseReturnValue:
    """Undo a delete (managers and admins)."""
    record = record_or_404(record_id)
    pack = pack_or_404(record.pack_id)
    if not may_restore(pack):
        abort(403)
    if record.deleted_at is not None:
        session = request_session()
        with appended_together(session):
            restore_record(session, record, actor_id=current_user.id)
            _audit(session, "record_restore", record)
        session.commit()
        flash(_("Restored."), "success")
    return redirect(url_for("records.view", record_id=record.id))


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    def forms_nav() -> list[NavItem]:
        if not current_user.is_authenticated:
            return []
        return nav_items(request_session())

    return {"forms_nav": forms_nav}
