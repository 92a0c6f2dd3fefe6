"""What record pages are built from: the pack and form of a URL, values shown for people,
the form page (inputs + what the form engine said), navigation and recent records.

Web-layer helpers (they read the request and the signed-in person); the routes that use them
are in records/views.py.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_symbol
from flask import (
    abort,
    flash,
    get_template_attribute,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import format_percent
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from quotaflow.config_cache import remembered
from quotaflow.forms import wtf
from quotaflow.forms.engine import FormState, validate_submission
from quotaflow.forms.values import from_storage
from quotaflow.ids import id_from
from quotaflow.kpis.cache import cache_key
from quotaflow.org.models import User
from quotaflow.org.roles import Capability, capabilities_of
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FieldDef, FormDef, label_text
from quotaflow.packs.services import PackNotInstalled, active_pack, active_version_id
from quotaflow.pipelines.services import pipeline_of
from quotaflow.records.access import can_edit, can_view, visible_records
from quotaflow.records.listing import ListQuery
from quotaflow.records.models import Record
from quotaflow.web import request_session
from quotaflow.web.i18n import (
    BLANK,
    current_language,
    date_filter,
    datetime_filter,
    money_filter,
    number_filter,
    select_timezone,
)

SEARCH_FROM = 12  # a reference list this long gets a search box: past a screenful to scroll

# --- the pack, the form, the person ----------------------------------------------------------


def pack_or_404(pack_id: str) -> CompiledPack:
    try:
        return active_pack(request_session(), pack_id)
    except PackNotInstalled:
        abort(404)


def form_or_404(pack: CompiledPack, form_id: str) -> FormDef:
    form = pack.forms.get(form_id)
    if form is None:
        abort(404)
    return form


def local_today() -> date:
    """Today where the company is (select_timezone): what TODAY() means in a form's rules,
    its computed fields and its defaults alike, whatever zone the server's clock keeps."""
    return datetime.now(ZoneInfo(select_timezone())).date()


def may_restore(pack: CompiledPack) -> bool:
    held = capabilities_of(request_session(), current_user, local_today(), pack.role_capabilities)
    return bool(held & {Capability.ADMIN, Capability.MANAGER})


def record_or_404(
    record_id: int, pack: CompiledPack | None = None, *, edit: bool = False
) -> Record:
    """The record, or 404 when there is none, or 403 when this person may not see/change it."""
    session = request_session()
    record = session.get(Record, record_id)
    if record is None:
        abort(404)
    roles = (pack or pack_or_404(record.pack_id)).role_capabilities
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

    def currency_symbol(self) -> str:
        """The pack's currency as people write it in their language ('CN¥' / '¥'; '$')."""
        return str(get_currency_symbol(self.currency, self.locale))

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
        if kind == "datetime":  # typed as a wall-clock time (naive): shown as typed
            return datetime_filter(value, "short", rebase=value.tzinfo is not None)
        if kind == "choice":
            return wtf.choice_label(fdef, str(value), self.locale)
        if kind == "multichoice":
            return ", ".join(wtf.choice_label(fdef, str(v), self.locale) for v in value)
        if kind == "bool":
            return _("Yes") if value else _("No")
        if kind == "rating":
            return f"{value} / {fdef.scale or 5}"
        if kind in ("user", "reference"):
            names = self.users if kind == "user" else self.records
            found = id_from(value)
            return names.get(found, f"#{value}") if found is not None else f"#{value}"
        return str(value)


def listed_records(pack: CompiledPack, form: FormDef, query: ListQuery) -> Select[Any]:
    """The form's records this person may see (deleted ones when the query asks for them):
    the list page and its downloads."""
    return visible_records(
        request_session(), current_user, include_deleted=query.deleted,
        role_capabilities=pack.role_capabilities,
    ).where(Record.pack_id == pack.id, Record.form_id == form.id)  # fmt: skip


def people_names(session: Session, ids: AbstractSet[int | None]) -> dict[int, str]:
    """Display names of these users, by id."""
    wanted = {i for i in ids if i is not None}
    rows = session.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {uid: name for uid, name in rows}


def typed_values(form: FormDef, stored: Mapping[str, Any]) -> dict[str, Any]:
    """A record's stored values as the form engine takes them (fields the form still has)."""
    fields = {f.id: f for f in form.fields}
    return {k: from_storage(fields[k], v) for k, v in stored.items() if k in fields}


def display_for(
    pack: CompiledPack, form: FormDef, value_sets: Sequence[Mapping[str, Any]]
) -> Display:
    """A Display that knows the names of the users and records these values point at."""
    session = request_session()
    show = Display(pack.pack.currency, current_language())
    user_ids: set[int] = set()
    record_ids: set[int] = set()
    for values in value_sets:
        for fdef in form.fields:
            target = user_ids if fdef.type == "user" else record_ids
            found = id_from(values.get(fdef.id)) if fdef.type in ("user", "reference") else None
            if found:
                target.add(found)
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


def initial_stage(pack: CompiledPack, form_id: str) -> str | None:
    pipeline = pack.pipelines.get(pipeline_of(pack, form_id) or "")
    return pipeline.stages[0].id if pipeline else None


# --- the form page (create, edit, conflict, re-render with errors) ----------------------------


@dataclass
class FormPage:
    """Everything a form template needs: the version, the inputs and what the engine said."""

    pack: CompiledPack
    version_id: int
    form: FormDef
    build_inputs: Callable[[], Any]  # the wtforms BaseForm, built when a page shows them
    state: FormState
    stage: str | None
    show: Display
    preview: bool = False
    options: Mapping[str, list[tuple[str, str]]] = field(default_factory=dict)
    fields_html: Markup | None = None  # the inputs, already rendered (blank_form_page)
    key: str | None = None  # what a blank page is kept under (blank_form_page)
    built_inputs: Any = field(default=None, repr=False)  # build_inputs() once it has run
    filled: frozenset[str] = frozenset()  # fields a chosen reference filled in (`fill`)
    fill_marks: Mapping[str, str] = field(default_factory=dict)  # see wtf.fill_marks

    @property
    def inputs(self) -> Any:
        """The form's inputs (wtforms BaseForm), built on first use."""
        if self.built_inputs is None:
            self.built_inputs = self.build_inputs()
        return self.built_inputs

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
        """The field's help text; for a list of records cut at its length, that it is."""
        return field_help(fdef, len(self.options.get(fdef.id, ())))

    def searchable(self, fdef: FieldDef) -> bool:
        """A reference field whose list is long enough to want a search box beside it."""
        return fdef.type == "reference" and len(self.options.get(fdef.id, ())) >= SEARCH_FROM


def field_help(fdef: FieldDef, listed: int = 0) -> str:
    """A field's help text; for a reference list of `listed` records cut at its length (not
    narrowed by a search), that it is."""
    text = label_text(fdef.help, current_language())
    limit = wtf.MAX_REFERENCE_CHOICES
    if fdef.type == "reference" and listed >= limit:
        cut = _(
            "Only the %(n)s most recently changed are listed: search to find the others.",
            n=number_filter(limit),
        )
        return f"{text} {cut}".strip()
    return text


def field_options(
    pack: CompiledPack, form: FormDef, keep: Mapping[str, Any], stored: Mapping[str, Any]
) -> dict[str, list[tuple[str, str]]]:
    """Choices of user and reference fields for the signed-in person; `keep` holds the values
    on the page, `stored` the saved record's (see wtf.reference_options)."""
    session = request_session()
    options: dict[str, list[tuple[str, str]]] = {}
    users: list[tuple[str, str]] | None = None
    for fdef in form.fields:
        if fdef.type == "user":
            users = (
                users
                if users is not None
                else wtf.user_options(session, current_user, local_today())
            )
            options[fdef.id] = users
        elif fdef.type == "reference":
            options[fdef.id] = reference_choices(
                pack, form, fdef, keep.get(fdef.id), stored.get(fdef.id)
            ).options
    return options


def reference_choices(
    pack: CompiledPack, form: FormDef, fdef: FieldDef, on_page: Any, saved: Any, search: str = ""
) -> wtf.Offered:
    """The records a reference field offers the signed-in person (see wtf.reference_options):
    the one chosen on the page and the saved one stay offered whatever `search` finds."""
    return wtf.reference_options(
        request_session(), current_user, pack, form, fdef,
        keep=[found] if (found := id_from(on_page)) is not None else [],
        stored=[found] if (found := id_from(saved)) is not None else [],
        role_capabilities=pack.role_capabilities, today=local_today(), date_text=date_filter,
        search=search,
    )  # fmt: skip


def form_page(
    pack: CompiledPack,
    version_id: int,
    form_id: str,
    *,
    stage: str | None,
    formdata: Any = None,
    values: Mapping[str, Any] | None = None,
    stored: Mapping[str, Any] | None = None,
    check: bool = True,
) -> FormPage:
    """Build the inputs (from the post or from typed values) and run the engine on them.
    `stored` is the saved record's values when it is edited (`values`, when they are given)."""
    form = pack.forms[form_id]
    spec = wtf.form_spec(pack, form_id, current_language())
    data = wtf.initial_input(form, values or {}) if formdata is None else None
    kept = values or {k[len(wtf.PREFIX) :]: v for k, v in (formdata or {}).items()}
    options = field_options(pack, form, kept, stored if stored is not None else values or {})

    def build_inputs() -> Any:
        return wtf.build_form(spec, formdata=formdata, data=data, options=options)

    filled: dict[str, str] = {}
    marks = wtf.fill_marks(form, values or {})
    if formdata is None:
        inputs = build_inputs()
        raw = wtf.raw_input(inputs, form)
    else:  # a post: its inputs are built only if the page is shown again
        inputs, raw = None, wtf.posted_input(form, formdata)
        marks = {k: str(formdata.get(wtf.FILLED_MARK + k, "")) for k in marks}
        filled = wtf.filled_from_references(request_session(), pack, form, raw, options, marks)
        marks = {k: str(raw.get(k) or "") if k in _filling(form, filled) else v
                 for k, v in marks.items()}  # fmt: skip
        if filled:  # as if typed: the inputs, the engine and the save all see them
            formdata = formdata.copy()
            for field_id, text in filled.items():
                formdata[wtf.PREFIX + field_id] = text
            raw = {**raw, **filled}
    state = validate_submission(
        pack, form_id, raw, stage=stage, locale=current_language(), today=local_today()
    )
    wtf.check_options(state, form, options, _("choose one of the options offered"))
    if not check:  # a fresh form: no complaints before the person has typed anything
        state.errors, state.form_errors = {}, []
    return FormPage(
        pack, version_id, form, build_inputs, state, stage,
        display_for(pack, form, [state.values]), options=options, built_inputs=inputs,
        filled=frozenset(filled), fill_marks=marks,
    )  # fmt: skip


def _filling(form: FormDef, filled: Mapping[str, str]) -> set[str]:
    """The reference fields whose `fill` wrote any of these fields."""
    return {f.id for f in form.fields if f.fill and any(t in filled for t in f.fill)}


# A blank form is the same for everyone who gets the same choices: the page (inputs, what
# the engine says of the defaults, and the rendered field markup) is built once per (pack
# content, version, form, stage, language, day, defaults, choices) and reused. Building the
# inputs and rendering them through Jinja macros was most of a form page's cost. A reused
# page is shared between requests and threads: templates only read it.
_BLANK_PAGES: OrderedDict[str, FormPage] = OrderedDict()
_BLANK_PAGES_MAX = 256


def blank_form_page(
    pack: CompiledPack, version_id: int, form_id: str, stage: str | None,
    values: Mapping[str, Any],
) -> FormPage:  # fmt: skip
    """The page of a new form opened with `values` (its defaults), its inputs rendered."""
    options = field_options(pack, pack.forms[form_id], values, values)
    key = cache_key(
        pack.content_hash, version_id, form_id, stage, current_language(), local_today(),
        sorted(values.items()), sorted(options.items()),
    )  # fmt: skip
    page = _BLANK_PAGES.get(key)
    if page is None:
        page = form_page(pack, version_id, form_id, stage=stage, values=values, check=False)
        page.fields_html = Markup(get_template_attribute("forms/_fields.html", "field_grid")(page))
        page.key = key
        _BLANK_PAGES[key] = page
        while len(_BLANK_PAGES) > _BLANK_PAGES_MAX:
            _BLANK_PAGES.popitem(last=False)
    return page


def quiet_blank_errors(page: FormPage) -> None:
    """While typing, blank fields are not scolded: they may simply not be reached yet."""
    raw = wtf.raw_input(page.inputs, page.form)
    for field_id in list(page.state.errors):
        if raw.get(field_id) in (None, "", []):
            del page.state.errors[field_id]


def opened_version(pack_id: str, form_id: str) -> tuple[CompiledPack, int] | None:
    """The version the posted form was opened with, if it still has this form."""
    session = request_session()
    version_id = id_from(request.form.get("pack_version_id"))
    if version_id is None:
        return None
    try:
        pack = wtf.compiled_version(session, pack_id, version_id)
    except wtf.VersionUnavailable:
        return None
    return (pack, version_id) if form_id in pack.forms else None


def version_gone(
    pack_id: str, form_id: str, stage: str | None, template: str,
    stored: Mapping[str, Any] | None = None, **ctx: Any,
) -> Any:  # fmt: skip
    """The opened version can no longer be used: the current form, the input kept, a message.
    `stored`: the edited record's values (a reference it holds stays offered)."""
    pack = pack_or_404(pack_id)
    if form_id not in pack.forms:
        flash(_("This form was removed while you had it open; your input could not be saved."),
              "error")  # fmt: skip
        return redirect(url_for("core.home"))
    version_id = active_version_id(request_session(), pack_id)
    page = form_page(
        pack, version_id, form_id, stage=stage, formdata=request.form, stored=stored or {}
    )
    message = _(
        "This form was changed by an administrator while you had it open. Your input is kept "
        "below on the new form: check it and save again."
    )
    return render_template(template, page=page, version_message=message, **ctx), 409


# --- navigation and home ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the top navigation: a form of an installed pack."""

    pack_id: str
    form_id: str
    label: str
    url: str  # its list page


def nav_items(session: Session) -> list[NavItem]:
    """One entry per form of every installed pack, in the pack's order (built once per
    language and change of the installed packs: every page shows them)."""
    language, root = current_language(), request.script_root
    return remembered(session, ("nav", language, root), lambda: _nav_items(session, language))


def _nav_items(session: Session, language: str) -> list[NavItem]:
    from quotaflow.packs.services import active_packs

    return [
        NavItem(pack.id, f.id, label_text(f.label, language, f.id),
                url_for("records.index", pack_id=pack.id, form_id=f.id))
        for pack in active_packs(session)
        for f in pack.forms.values()
    ]  # fmt: skip


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
