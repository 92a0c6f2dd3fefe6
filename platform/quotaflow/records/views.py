"""Record pages: list, create, view, edit (with the conflict page), delete and restore.

Who may see or change a record is decided by `records/access.py` only. Every form carries
the pack version it was opened with; the submission is checked against that version and
the record is pinned to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import format_percent
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.forms import wtf
from quotaflow.forms.engine import FormState, evaluate_form, validate_submission
from quotaflow.forms.values import from_storage
from quotaflow.org.models import Team, User
from quotaflow.org.roles import Capability, capabilities_of
from quotaflow.org.services import membership_on
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FieldDef, FormDef, label_text
from quotaflow.packs.models import PackVersion
from quotaflow.packs.services import PackNotInstalled, active_pack, active_version_id
from quotaflow.pipelines.services import pipeline_of, record_first_stage
from quotaflow.records.access import can_edit, can_view, visible_records
from quotaflow.records.listing import ListQuery, list_page
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import (
    EditConflict,
    RecordNotFound,
    create_record,
    delete_record,
    restore_record,
    update_record,
)
from quotaflow.web import request_session
from quotaflow.web.i18n import (
    BLANK,
    current_language,
    date_filter,
    datetime_filter,
    money_filter,
    number_filter,
)

bp = Blueprint("records", __name__)


# --- the pack, the form, the person ----------------------------------------------------------


def _active(pack_id: str) -> CompiledPack:
    try:
        return active_pack(request_session(), pack_id)
    except PackNotInstalled:
        abort(404)


def _form_of(pack: CompiledPack, form_id: str) -> FormDef:
    form = pack.forms.get(form_id)
    if form is None:
        abort(404)
    return form


def _today() -> date:
    return date.today()


def _may_restore(pack: CompiledPack) -> bool:
    held = capabilities_of(request_session(), current_user, _today(), pack.role_capabilities)
    return bool(held & {Capability.ADMIN, Capability.MANAGER})


def _record(record_id: int, pack: CompiledPack | None = None, *, edit: bool = False) -> Record:
    """The record, or 404 when there is none, or 403 when this person may not see/change it."""
    session = request_session()
    record = session.get(Record, record_id)
    if record is None:
        abort(404)
    roles = (pack or _active(record.pack_id)).role_capabilities
    check = can_edit if edit else can_view
    if not check(session, current_user, record, role_capabilities=roles):
        abort(403)
    return record


# --- showing values --------------------------------------------------------------------------


@dataclass
class Display:
    """Formats stored or typed values for people: money, percent, choice labels, names."""

    currency: str
    locale: str
    users: dict[int, str] = field(default_factory=dict)
    records: dict[int, str] = field(default_factory=dict)

    def __call__(self, fdef: FieldDef | None, value: Any) -> str:
        if fdef is None:
            return BLANK if value in (None, "", []) else str(value)
        value = from_storage(fdef, value)
        if value is None or value == "" or value == []:
            return BLANK
        try:
            return self._format(fdef, value)
        except (TypeError, ValueError, ArithmeticError):
            return str(value)

    def _format(self, fdef: FieldDef, value: Any) -> str:
        kind = fdef.type
        if kind == "money":
            return money_filter(value, self.currency)
        if kind == "percent":
            return str(format_percent(Decimal(str(value)), "#,##0.##%"))
        if kind in ("number", "computed") and not isinstance(value, str | bool):
            return number_filter(value)
        if kind == "date":
            return date_filter(value)
        if kind == "datetime":
            return datetime_filter(value, "short")
        if kind == "choice":
            return wtf.choice_label(fdef, str(value), self.locale)
        if kind == "multichoice":
            return ", ".join(wtf.choice_label(fdef, str(v), self.locale) for v in value)
        if kind == "bool":
            return _("Yes") if value else _("No")
        if kind == "rating":
            return f"{value} / {fdef.scale or 5}"
        if kind == "user":
            return self.users.get(_int(value), f"#{value}")
        if kind == "reference":
            return self.records.get(_int(value), f"#{value}")
        return str(value)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _display(pack: CompiledPack, form: FormDef, value_sets: Sequence[Mapping[str, Any]]) -> Display:
    """A Display that knows the names of the users and records these values point at."""
    session = request_session()
    show = Display(pack.pack.currency, current_language())
    user_ids: set[int] = set()
    record_ids: set[int] = set()
    for values in value_sets:
        for fdef in form.fields:
            target = user_ids if fdef.type == "user" else record_ids
            if fdef.type in ("user", "reference") and _int(values.get(fdef.id)) > 0:
                target.add(_int(values.get(fdef.id)))
    if user_ids:
        rows = session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids)))
        show.users = {uid: name for uid, name in rows}
    if record_ids:
        query = visible_records(
            session, current_user, role_capabilities=pack.role_capabilities
        ).where(Record.id.in_(record_ids))
        for ref in session.scalars(query):
            target_form = pack.forms.get(ref.form_id)
            show.records[ref.id] = wtf.record_title(target_form, ref) if target_form else ""
    return show


def stage_label(pack: CompiledPack, form_id: str, stage: str | None) -> str:
    """The stage's label in the current language (the id when the pipeline no longer has it)."""
    if stage is None:
        return BLANK
    pipeline = pack.pipelines.get(pipeline_of(pack, form_id) or "")
    for s in pipeline.stages if pipeline else ():
        if s.id == stage:
            return label_text(s.label, current_language(), stage)
    return stage


def _initial_stage(pack: CompiledPack, form_id: str) -> str | None:
    pipeline = pack.pipelines.get(pipeline_of(pack, form_id) or "")
    return pipeline.stages[0].id if pipeline else None


# --- the form page (create, edit, conflict, re-render with errors) ----------------------------


@dataclass
class FormPage:
    """Everything a form template needs: the version, the inputs and what the engine said."""

    pack: CompiledPack
    version_id: int
    form: FormDef
    inputs: Any  # wtforms BaseForm
    state: FormState
    stage: str | None
    show: Display
    preview: bool = False

    @property
    def fields(self) -> list[tuple[FieldDef, Any]]:
        """Each pack field with its input (None for computed fields)."""
        bound = wtf.field_inputs(self.inputs)
        return [(f, bound.get(f.id)) for f in self.form.fields]

    @property
    def stage_text(self) -> str:
        return stage_label(self.pack, self.form.id, self.stage)

    def label(self, fdef: FieldDef) -> str:
        return label_text(fdef.label, current_language(), fdef.id.replace("_", " ").capitalize())

    def help(self, fdef: FieldDef) -> str:
        return label_text(fdef.help, current_language())


def _options(
    pack: CompiledPack, form: FormDef, keep: Mapping[str, Any]
) -> dict[str, list[tuple[str, str]]]:
    """Choices of user and reference fields for the signed-in person."""
    session = request_session()
    options: dict[str, list[tuple[str, str]]] = {}
    users: list[tuple[str, str]] | None = None
    for fdef in form.fields:
        if fdef.type == "user":
            users = (
                users if users is not None else wtf.user_options(session, current_user, _today())
            )
            options[fdef.id] = users
        elif fdef.type == "reference":
            kept = [_int(keep.get(fdef.id))] if _int(keep.get(fdef.id)) > 0 else []
            options[fdef.id] = wtf.reference_options(
                session, current_user, pack, fdef, keep=kept,
                role_capabilities=pack.role_capabilities,
            )  # fmt: skip
    return options


def _page(
    pack: CompiledPack,
    version_id: int,
    form_id: str,
    *,
    stage: str | None,
    formdata: Any = None,
    values: Mapping[str, Any] | None = None,
    check: bool = True,
) -> FormPage:
    """Build the inputs (from the post or from typed values) and run the engine on them."""
    form = pack.forms[form_id]
    spec = wtf.form_spec(pack, form_id, current_language())
    data = wtf.initial_input(form, values or {}) if formdata is None else None
    kept = values or {k[len(wtf.PREFIX) :]: v for k, v in (formdata or {}).items()}
    options = _options(pack, form, kept)
    inputs = wtf.build_form(spec, formdata=formdata, data=data, options=options)
    state = validate_submission(
        pack, form_id, wtf.raw_input(inputs, form), stage=stage, locale=current_language(),
        today=_today(),
    )  # fmt: skip
    wtf.check_options(state, form, options, _("choose one of the options offered"))
    if not check:  # a fresh form: no complaints before the person has typed anything
        state.errors, state.form_errors = {}, []
    return FormPage(
        pack, version_id, form, inputs, state, stage, _display(pack, form, [state.values])
    )


def _quiet_blank_errors(page: FormPage) -> None:
    """While typing, blank fields are not scolded: they may simply not be reached yet."""
    raw = wtf.raw_input(page.inputs, page.form)
    for field_id in list(page.state.errors):
        if raw.get(field_id) in (None, "", []):
            del page.state.errors[field_id]


def _opened(pack_id: str, form_id: str) -> tuple[CompiledPack, int] | None:
    """The version the posted form was opened with, if it still has this form."""
    session = request_session()
    raw = request.form.get("pack_version_id", "")
    if not raw.isdigit():
        return None
    try:
        pack = wtf.compiled_version(session, pack_id, int(raw))
    except wtf.VersionUnavailable:
        return None
    return (pack, int(raw)) if form_id in pack.forms else None


def _version_gone(pack_id: str, form_id: str, stage: str | None, template: str, **ctx: Any) -> Any:
    """The opened version can no longer be used: the current form, the input kept, a message."""
    pack = _active(pack_id)
    if form_id not in pack.forms:
        flash(_("This form was removed while you had it open; your input could not be saved."),
              "error")  # fmt: skip
        return redirect(url_for("core.home"))
    version_id = active_version_id(request_session(), pack_id)
    page = _page(pack, version_id, form_id, stage=stage, formdata=request.form)
    message = _(
        "This form was changed by an administrator while you had it open. Your input is kept "
        "below on the new form: check it and save again."
    )
    return render_template(template, page=page, version_message=message, **ctx), 409


# --- list ------------------------------------------------------------------------------------


@bp.get("/forms/<pack_id>/<form_id>/records")
def index(pack_id: str, form_id: str) -> ResponseReturnValue:
    """Records of one form the person may see: filters, sort, pages."""
    pack = _active(pack_id)
    form = _form_of(pack, form_id)
    may_restore = _may_restore(pack)
    query = ListQuery.from_args(request.args, deleted_allowed=may_restore)
    session = request_session()
    base = visible_records(
        session, current_user, include_deleted=query.deleted,
        role_capabilities=pack.role_capabilities,
    ).where(Record.pack_id == pack.id, Record.form_id == form.id)  # fmt: skip
    result = list_page(session, base, form, query)
    pipeline = pack.pipelines.get(pipeline_of(pack, form_id) or "")
    return render_template(
        "records/list.html", pack=pack, form=form, query=query, result=result,
        pipeline=pipeline, may_restore=may_restore, title=wtf.record_title,
        stage_label=stage_label, show=_display(pack, form, []),
        amount_field=_field(form, "amount"),
    )  # fmt: skip


def _field(form: FormDef, field_id: str) -> FieldDef | None:
    return next((f for f in form.fields if f.id == field_id), None)


# --- create ----------------------------------------------------------------------------------


@bp.get("/forms/<pack_id>/<form_id>/new")
def new(pack_id: str, form_id: str) -> ResponseReturnValue:
    """An empty form, opened with the pack's current version."""
    pack = _active(pack_id)
    form = _form_of(pack, form_id)
    version_id = active_version_id(request_session(), pack_id)
    page = _page(pack, version_id, form_id, stage=_initial_stage(pack, form_id),
                 values=wtf.defaults(form), check=False)  # fmt: skip
    return render_template("records/form.html", page=page, record=None)


@bp.post("/forms/<pack_id>/<form_id>/new")
def create(pack_id: str, form_id: str) -> ResponseReturnValue:
    """Save a new record, checked against (and pinned to) the version the form was opened with."""
    now = _active(pack_id)
    opened = _opened(pack_id, form_id)
    if opened is None or form_id not in now.forms:
        stage = _initial_stage(now, form_id)
        return _version_gone(pack_id, form_id, stage, "records/form.html", record=None)
    pack, version_id = opened
    stage = _initial_stage(pack, form_id)
    page = _page(pack, version_id, form_id, stage=stage, formdata=request.form)
    if not page.state.ok:
        return render_template("records/form.html", page=page, record=None), 400
    session = request_session()
    team = membership_on(session, current_user.id, _today())
    form = pack.forms[form_id]
    amount, record_date = _columns(form, page.state.values)
    record = create_record(
        session, pack_id=pack.id, pack_version_id=version_id, form_id=form_id,
        owner_id=current_user.id, team_id=team.team_id if team else None,
        values=_stored(page.state.values), actor_id=current_user.id, stage=stage,
        amount=amount, record_date=record_date or _today(),
    )  # fmt: skip
    pipeline_id = pipeline_of(pack, form_id)
    if pipeline_id and stage:
        record_first_stage(session, record, pipeline_id, current_user.id)
    _audit(session, "record_create", record)
    session.commit()
    flash(_("Saved."), "success")
    return redirect(url_for("records.view", record_id=record.id))


def _stored(values: Mapping[str, Any]) -> dict[str, Any]:
    """The values to keep: blanks left out (a missing key reads as blank)."""
    return {k: v for k, v in values.items() if v is not None and v != "" and v != []}


def _columns(form: FormDef, values: Mapping[str, Any]) -> tuple[Decimal | None, date | None]:
    """The indexed columns: amount (a money field called `amount`), and the record's date
    (the first required date field, e.g. a visit's day; else the day it is created)."""
    amount_field = _field(form, "amount")
    amount = values.get("amount") if amount_field and amount_field.type == "money" else None
    day = next((values.get(f.id) for f in form.fields if f.type == "date" and f.required), None)
    return (
        amount if isinstance(amount, Decimal) else None,
        day if isinstance(day, date) else None,
    )


def _audit(session: Session, action: str, record: Record) -> None:
    record_event(
        session, actor=current_user.username, action=action, object_type="record",
        object_id=str(record.id), details={"form": record.form_id},
    )  # fmt: skip


# --- htmx: live preview while typing --------------------------------------------------------


@bp.post("/forms/<pack_id>/<form_id>/preview")
def preview(pack_id: str, form_id: str) -> ResponseReturnValue:
    """Visible fields, computed values and errors for what is typed so far (htmx partial)."""
    _form_of(_active(pack_id), form_id)
    opened = _opened(pack_id, form_id)
    if opened is None:
        return "", 204  # the submit will explain; nothing to update meanwhile
    pack, version_id = opened
    record_id = request.form.get("record_id", "")
    if record_id.isdigit():
        stage = _record(int(record_id), pack).stage
    else:
        stage = _initial_stage(pack, form_id)
    page = _page(pack, version_id, form_id, stage=stage, formdata=request.form)
    _quiet_blank_errors(page)
    page.preview = True
    template = "forms/_preview.html" if request.htmx else "records/form.html"  # type: ignore[attr-defined]
    return render_template(template, page=page, record=None)


# --- view ------------------------------------------------------------------------------------


@bp.get("/records/<int:record_id>")
def view(record_id: int) -> ResponseReturnValue:
    """A record's values, where it stands, and its history from the first version on."""
    record = _record(record_id)
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
    names = _people(session, {record.owner_id, *(h.changed_by for h in history if h.changed_by)})
    team = session.get(Team, record.team_id) if record.team_id else None
    version = session.get(PackVersion, record.pack_version_id)
    shown = evaluate_form(pack, form.id, _typed(form, record.values), stage=record.stage)
    return render_template(
        "records/view.html", record=record, pack=pack, form=form, history=history,
        show=_display(pack, form, value_sets), names=names, team=team, version=version,
        fields={f.id: f for f in form.fields}, title=wtf.record_title(form, record),
        visible=shown.visible,
        stage=stage_label(pack, record.form_id, record.stage),
        may_edit=can_edit(session, current_user, record, role_capabilities=pack.role_capabilities),
        may_restore=record.deleted_at is not None and _may_restore(pack),
    )  # fmt: skip


def _pinned(record: Record) -> CompiledPack:
    """The version the record was saved with; the current one if that no longer compiles."""
    try:
        pack = wtf.compiled_version(request_session(), record.pack_id, record.pack_version_id)
    except wtf.VersionUnavailable:
        pack = _active(record.pack_id)
    if record.form_id not in pack.forms:
        pack = _active(record.pack_id)
        _form_of(pack, record.form_id)
    return pack


def _people(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


# --- edit ------------------------------------------------------------------------------------


def _edit_pack(record: Record) -> tuple[CompiledPack, int]:
    """Edits open with the current version (the record moves to it on save) when it still has
    the form, else with the version the record was saved under."""
    session = request_session()
    pack = _active(record.pack_id)
    if record.form_id in pack.forms:
        return pack, active_version_id(session, record.pack_id)
    return _pinned(record), record.pack_version_id


def _typed(form: FormDef, stored: Mapping[str, Any]) -> dict[str, Any]:
    fields = {f.id: f for f in form.fields}
    return {k: from_storage(fields[k], v) for k, v in stored.items() if k in fields}


@bp.get("/records/<int:record_id>/edit")
def edit(record_id: int) -> ResponseReturnValue:
    """The record's form with its saved values and version number."""
    record = _record(record_id)
    if record.deleted_at is not None:
        flash(_("This record is deleted; restore it to change it."), "error")
        return redirect(url_for("records.view", record_id=record.id))
    record = _record(record_id, edit=True)
    pack, version_id = _edit_pack(record)
    form = pack.forms[record.form_id]
    page = _page(pack, version_id, record.form_id, stage=record.stage,
                 values=_typed(form, record.values), check=False)  # fmt: skip
    return render_template("records/form.html", page=page, record=record,
                           version_no=record.version_no)  # fmt: skip


@bp.post("/records/<int:record_id>/edit")
def update(record_id: int) -> ResponseReturnValue:
    """Save an edit made on top of `version_no`; someone else's save in between → conflict page."""
    record = _record(record_id)
    if record.deleted_at is not None:
        flash(_("This record was deleted while you were editing it; nothing was saved."), "error")
        return redirect(url_for("records.view", record_id=record.id))
    record = _record(record_id, edit=True)
    version_no = request.form.get("version_no", "")
    expected = int(version_no) if version_no.isdigit() else record.version_no
    opened = _opened(record.pack_id, record.form_id)
    if opened is None:
        return _version_gone(record.pack_id, record.form_id, record.stage, "records/form.html",
                             record=record, version_no=expected)  # fmt: skip
    pack, version_id = opened
    page = _page(pack, version_id, record.form_id, stage=record.stage, formdata=request.form)
    if not page.state.ok:
        return render_template("records/form.html", page=page, record=record,
                               version_no=expected), 400  # fmt: skip
    session = request_session()
    amount, record_date = _columns(page.form, page.state.values)
    try:
        update_record(
            session, record.id, values=_stored(page.state.values), actor_id=current_user.id,
            expected_version=expected, pack_version_id=version_id, amount=amount,
            record_date=record_date,
        )  # fmt: skip
    except EditConflict as exc:
        return _conflict(page, exc), 409
    except RecordNotFound:
        abort(404)
    _audit(session, "record_update", record)
    session.commit()
    flash(_("Saved."), "success")
    return redirect(url_for("records.view", record_id=record.id))


def _conflict(page: FormPage, exc: EditConflict) -> str:
    """Their saved values and this person's input side by side; the form re-submits on top."""
    session = request_session()
    current = session.get(Record, exc.record_id)
    if current is None:
        abort(404)
    session.refresh(current)
    page.show = _display(page.pack, page.form, [exc.current, exc.submitted])
    rows = [
        (fdef, exc.current.get(fdef.id), exc.submitted.get(fdef.id)) for fdef in page.form.fields
    ]
    names = _people(session, {current.owner_id})
    return render_template(
        "records/conflict.html", page=page, record=current, version_no=current.version_no,
        rows=rows, names=names,
        changed=[r for r in rows if (r[1] or None) != (r[2] or None)],
    )  # fmt: skip


# --- delete and restore ----------------------------------------------------------------------


@bp.post("/records/<int:record_id>/delete")
def delete(record_id: int) -> ResponseReturnValue:
    """Soft delete: hidden from lists and figures, kept with its history, restorable."""
    record = _record(record_id)
    if record.deleted_at is None:
        record = _record(record_id, edit=True)
        session = request_session()
        delete_record(session, record, actor_id=current_user.id)
        _audit(session, "record_delete", record)
        session.commit()
        flash(_("Deleted. A manager can restore it."), "success")
    return redirect(url_for("records.index", pack_id=record.pack_id, form_id=record.form_id))


@bp.post("/records/<int:record_id>/restore")
def restore(record_id: int) -> ResponseReturnValue:
    """Undo a delete (managers and admins)."""
    record = _record(record_id)
    pack = _active(record.pack_id)
    if not _may_restore(pack):
        abort(403)
    if record.deleted_at is not None:
        session = request_session()
        restore_record(session, record, actor_id=current_user.id)
        _audit(session, "record_restore", record)
        session.commit()
        flash(_("Restored."), "success")
    return redirect(url_for("records.view", record_id=record.id))


# --- navigation and home ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the top navigation: a form of an installed pack."""

    pack_id: str
    form_id: str
    label: str


def nav_items(session: Session) -> list[NavItem]:
    """One entry per form of every installed pack, in the pack's order."""
    from quotaflow.packs.services import active_packs

    items = []
    for pack in active_packs(session):
        items += [
            NavItem(pack.id, f.id, label_text(f.label, current_language(), f.id))
            for f in pack.forms.values()
        ]
    return items


@bp.app_context_processor
def _navigation() -> dict[str, Any]:
    def forms_nav() -> list[NavItem]:
        if not current_user.is_authenticated:
            return []
        return nav_items(request_session())

    return {"forms_nav": forms_nav}


def recent_records(
    session: Session, base: Any, limit: int = 10
) -> tuple[list[Record], dict[tuple[str, str], int]]:
    """The newest records of a visible-records query, and how many there are per form."""
    recent = list(session.scalars(base.order_by(Record.updated_at.desc()).limit(limit)))
    sub = base.subquery()
    counts = session.execute(
        select(sub.c.pack_id, sub.c.form_id, func.count()).group_by(sub.c.pack_id, sub.c.form_id)
    )
    return recent, {(p, f): n for p, f, n in counts}
