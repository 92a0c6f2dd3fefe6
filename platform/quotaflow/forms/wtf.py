"""Generated WTForms forms: the pack's fields as inputs, in the user's language.

WTForms only renders and reads the inputs. What is refused and why comes from
`forms.engine.validate_submission`, so no rule is written twice. Fields live in a
`BaseForm` under the prefix "f-": a pack field called `data`, `errors` or `csrf_token`
can never shadow the form's own API or the hidden inputs (pack ids contain no '-').
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from wtforms import (
    BooleanField,
    Field,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import SelectChoice
from wtforms.fields.core import UnboundField
from wtforms.form import BaseForm
from wtforms.widgets import (
    CheckboxInput,
    DateInput,
    DateTimeLocalInput,
    EmailInput,
    ListWidget,
    TelInput,
)

from quotaflow.errors import QuotaflowError
from quotaflow.expressions.sql import record_column_resolver
from quotaflow.forms.engine import FormState
from quotaflow.forms.values import Raw, choice_values, from_storage, to_input
from quotaflow.org.models import Membership, User
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES, Person
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import ChoiceDef, FieldDef, FormDef, label_text
from quotaflow.packs.models import PackVersion
from quotaflow.packs.services import PackNotInstalled, active_pack, active_version_id
from quotaflow.records.access import managed_teams, visible_records
from quotaflow.records.listing import title_matches
from quotaflow.records.models import Record

log = logging.getLogger(__name__)

PREFIX = "f-"
BLANK_CHOICE = ("", "—")
MAX_REFERENCE_CHOICES = 500  # newest first; the current value is always offered too
DECIMAL_INPUT = {"inputmode": "decimal", "autocomplete": "off"}


# --- the cached form specification ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormSpec:
    """A form's unbound WTForms fields (computed fields excluded), built once per version."""

    form: FormDef
    fields: tuple[tuple[str, UnboundField], ...]


_SPECS: dict[tuple[str, str, str], FormSpec] = {}


def form_spec(pack: CompiledPack, form_id: str, locale: str) -> FormSpec:
    """The form's fields, cached per (pack content hash, form, language)."""
    key = (pack.content_hash, form_id, locale)
    spec = _SPECS.get(key)
    if spec is None:
        form = pack.forms[form_id]
        fields = tuple((f.id, _unbound(f, locale)) for f in form.fields if not is_computed(f))
        spec = _SPECS[key] = FormSpec(form, fields)
    return spec


def is_computed(field: FieldDef) -> bool:
    """True for read-only fields: a formula, or the `computed` type."""
    return field.formula is not None or field.type == "computed"


def choice_label(field: FieldDef, value: str, locale: str) -> str:
    """The label of one stored choice value (the value itself when it has none)."""
    for choice in field.choices:
        if isinstance(choice, ChoiceDef) and choice.value == value:
            return label_text(choice.label, locale, value)
    return value


def _choices(field: FieldDef, locale: str) -> list[tuple[str, str]]:
    return [(v, choice_label(field, v, locale)) for v in choice_values(field)]


def select_choices(options: Iterable[tuple[str, str]], *, blank: bool = True) -> list[SelectChoice]:
    """WTForms options, led by a blank one ('—') unless `blank` is False."""
    return [SelectChoice(v, text) for v, text in ([BLANK_CHOICE] if blank else []) + list(options)]


def _unbound(field: FieldDef, locale: str) -> UnboundField:
    label = label_text(field.label, locale, field.id.replace("_", " ").capitalize())
    common: dict[str, Any] = {"label": label, "description": label_text(field.help, locale)}
    kind = field.type
    if kind == "textarea":
        return TextAreaField(**common, render_kw={"rows": 4})
    if kind in ("number", "money", "percent"):
        return StringField(**common, render_kw=DECIMAL_INPUT)
    if kind == "date":
        return StringField(**common, widget=DateInput())
    if kind == "datetime":
        return StringField(**common, widget=DateTimeLocalInput())
    if kind == "email":
        return StringField(**common, widget=EmailInput())
    if kind == "phone":
        return StringField(**common, widget=TelInput())
    if kind == "bool":
        return BooleanField(**common)
    if kind == "choice":
        choices = select_choices(_choices(field, locale))
        return SelectField(**common, choices=choices, validate_choice=False)
    if kind == "multichoice":
        return SelectMultipleField(
            **common,
            choices=select_choices(_choices(field, locale), blank=False),
            validate_choice=False,
            widget=ListWidget(prefix_label=False),
            option_widget=CheckboxInput(),
        )
    if kind == "rating":
        scale = [(str(i), str(i)) for i in range(1, (field.scale or 5) + 1)]
        return SelectField(**common, choices=select_choices(scale), validate_choice=False)
    if kind in ("user", "reference"):  # options depend on who edits: set per request
        return SelectField(**common, choices=select_choices([]), validate_choice=False)
    render_kw = {"maxlength": field.max_length} if field.max_length else None
    return StringField(**common, render_kw=render_kw)


# --- one form instance ---------------------------------------------------------------------


def build_form(
    spec: FormSpec,
    *,
    formdata: Any = None,
    data: Mapping[str, Any] | None = None,
    options: Mapping[str, Sequence[tuple[str, str]]] | None = None,
) -> BaseForm:
    """A form instance: from the posted data, or from initial input `data` (by field id)."""
    form = BaseForm(spec.fields, prefix=PREFIX)
    for field_id, choices in (options or {}).items():
        if field_id in form:
            form[field_id].choices = select_choices(choices)
    form.process(formdata, data=dict(data or {}))
    return form


def raw_input(form: BaseForm, definition: FormDef) -> dict[str, Raw]:
    """What the person entered, by field id, as the engine reads it."""
    raw: dict[str, Raw] = {}
    for field in definition.fields:
        if field.id not in form:
            continue
        data = form[field.id].data
        if field.type == "multichoice":
            raw[field.id] = [str(v) for v in data or []]
        elif field.type == "bool":
            raw[field.id] = "y" if data else ""
        else:
            raw[field.id] = "" if data is None else str(data)
    return raw


def posted_input(definition: FormDef, formdata: Any) -> dict[str, Raw]:
    """`raw_input` of the form built from `formdata`, read straight from the post (a
    MultiDict): what each input's WTForms field keeps of it. A valid save never shows its
    inputs, and building them was a twentieth of its time."""
    raw: dict[str, Raw] = {}
    for field in definition.fields:
        if is_computed(field):
            continue
        posted = formdata.getlist(PREFIX + field.id)
        if field.type == "multichoice":
            raw[field.id] = [str(v) for v in posted]
        elif field.type == "bool":
            raw[field.id] = "" if not posted or posted[0] in BooleanField.false_values else "y"
        else:
            raw[field.id] = str(posted[0]) if posted else ""
    return raw


def initial_input(definition: FormDef, values: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values as the inputs show them (percent as 15, dates ISO, ids as text)."""
    data: dict[str, Any] = {}
    for field in definition.fields:
        value = values.get(field.id)
        if is_computed(field):
            continue
        if field.type == "multichoice":
            data[field.id] = list(value or [])
        elif field.type == "bool":
            data[field.id] = bool(value)
        elif field.type == "datetime" and isinstance(value, datetime):
            data[field.id] = value.strftime("%Y-%m-%dT%H:%M")
        else:
            data[field.id] = to_input(field, value)
    return data


def field_inputs(form: BaseForm) -> dict[str, Field]:
    """The bound fields by pack field id (computed fields have none)."""
    return {name: form[name] for name in form._fields}


# --- choices that depend on who edits ------------------------------------------------------


def user_options(session: Session, person: Person, today: date) -> list[tuple[str, str]]:
    """Users the editor may pick: admins everyone active; others themselves, their teams' people
    and the people of the teams they manage."""
    query = select(User.id, User.display_name).where(User.is_active.is_(True))
    if not person.is_admin:
        query = query.where(
            or_(User.id == person.id, User.id.in_(_team_mates(session, person.id, today)))
        )
    rows = session.execute(query.order_by(User.display_name, User.id))
    return [(str(uid), name) for uid, name in rows]


def _valid_on(column_from: Any, column_to: Any, today: date) -> Any:
    return (column_from <= today) & or_(column_to.is_(None), column_to > today)


def _team_mates(session: Session, user_id: int, today: date) -> Any:
    managed = managed_teams(session, user_id)
    teams = select(Membership.team_id).where(
        Membership.user_id == user_id, _valid_on(Membership.valid_from, Membership.valid_to, today)
    )
    managed_now = select(managed.c.team_id).where(
        _valid_on(managed.c.valid_from, managed.c.valid_to, today)
    )
    return select(Membership.user_id).where(
        Membership.team_id.in_(teams.union(managed_now)),
        _valid_on(Membership.valid_from, Membership.valid_to, today),
    )


class Offered(NamedTuple):
    """A reference field's options (value, label), and how many of the first were found by
    the query and search (the rest are the records kept on offer)."""

    options: list[tuple[str, str]]
    matched: int


def reference_options(
    session: Session,
    person: Person,
    pack: CompiledPack,
    owner: FormDef,
    field: FieldDef,
    *,
    keep: Iterable[int] = (),
    stored: Iterable[int] = (),
    role_capabilities: Mapping[str, str] = DEFAULT_ROLE_CAPABILITIES,
    today: date | None = None,
    date_text: Callable[[date], str] = date.isoformat,
    search: str = "",
) -> Offered:
    """Records of the referred form the editor can see and the field's `where` admits, newest
    first, by title; with `search`, only those whose title holds it (or whose number it is).
    The records in `keep` (chosen on the page) are offered too when the newest are more than
    a list holds or the search leaves them out; those in `stored` (the saved record's)
    whatever `where` says now: a visit keeps the deal it was made for after that deal is
    lost."""
    target = pack.forms.get(field.form or "")
    if target is None:
        return Offered([], 0)
    base = visible_records(session, person, role_capabilities=role_capabilities).where(
        Record.pack_id == pack.id, Record.form_id == target.id
    )
    offered = base
    if field.where is not None:
        index = owner.fields.index(field)
        where = pack.expression("form", owner.id, "fields", index, "where")
        resolve = record_column_resolver(pack.field_types(target.id))
        offered = base.where(where.to_sql(resolve, today=today))
    searched = offered.where(title_matches(target, search)) if search.strip() else offered
    found = list(
        session.scalars(searched.order_by(Record.updated_at.desc()).limit(MAX_REFERENCE_CHOICES))
    )
    matched = len(found)
    for wanted, query in ((keep, offered), (stored, base)):
        missing = set(wanted) - {r.id for r in found}
        if missing:
            found += list(session.scalars(query.where(Record.id.in_(missing))))
    titles = [record_title(target, r) for r in found]
    counts = Counter(titles)
    # the same customer's deals would read alike in the list: their date and number tell
    # them apart; found by a search, every one says them (the person hunts one record)
    repeated = set(titles) if search.strip() else {t for t, n in counts.items() if n > 1}
    options = [
        (
            str(r.id),
            " · ".join([t, *([date_text(r.record_date)] if r.record_date else []), f"#{r.id}"]),
        )
        if t in repeated
        else (str(r.id), t)
        for r, t in zip(found, titles, strict=True)
    ]
    return Offered(options, matched)


FILLED_MARK = "x-filled-"  # a hidden input per filling reference: the record that last filled


def fill_marks(definition: FormDef, values: Mapping[str, Any]) -> dict[str, str]:
    """reference field -> the record its fields were last filled from, as a page opens: the
    one already chosen (an edited record's), so opening it fills nothing."""
    return {
        f.id: "" if values.get(f.id) in (None, "") else str(values.get(f.id))
        for f in definition.fields
        if f.type == "reference" and f.fill
    }


def filled_from_references(
    session: Session,
    pack: CompiledPack,
    definition: FormDef,
    raw: Mapping[str, Raw],
    options: Mapping[str, Sequence[tuple[str, str]]],
    done: Mapping[str, str] = {},
) -> dict[str, str]:
    """Input text for the blank fields a chosen reference `fill`s, read from the record chosen
    (only one the editor was offered: one they may see). A field with anything typed in it
    is never filled over; nor is one the person emptied after the record they still have
    chosen filled it (`done`: reference field -> the record that last filled, as the page
    says)."""
    out: dict[str, str] = {}
    for field in definition.fields:
        if field.type != "reference" or not field.fill:
            continue
        chosen = raw.get(field.id)
        if not isinstance(chosen, str) or chosen not in {v for v, _l in options.get(field.id, [])}:
            continue
        if done.get(field.id) == chosen:
            continue
        record = session.get(Record, int(chosen))
        referred = pack.forms.get(field.form or "")
        if record is None or referred is None:
            continue
        theirs = {f.id: f for f in referred.fields}
        own = {f.id: f for f in definition.fields}
        for target, source in field.fill.items():
            if raw.get(target) not in (None, "") or target in out or source not in theirs:
                continue
            value = from_storage(theirs[source], record.values.get(source))
            if value is not None:
                out[target] = (
                    value.strftime("%Y-%m-%dT%H:%M")
                    if isinstance(value, datetime)
                    else to_input(own[target], value)
                )
    return out


def record_title(form: FormDef, record: Record) -> str:
    """A record's title: its title field, else '#id'."""
    value = record.values.get(form.title_field or "") if form.title_field else None
    return str(value) if value not in (None, "") else f"#{record.id}"


def check_options(
    state: FormState,
    definition: FormDef,
    options: Mapping[str, Sequence[tuple[str, str]]],
    message: str,
) -> None:
    """Refuse a user or record the editor was not offered (it may be one they cannot see)."""
    for field in definition.fields:
        value = state.values.get(field.id)
        if field.id not in options or value in (None, "") or field.id in state.errors:
            continue
        if str(value) not in {v for v, _label in options[field.id]}:
            state.add_error(field.id, message)


# --- the pack version a form was opened with -----------------------------------------------


class VersionUnavailable(QuotaflowError):
    """The version a form was opened with is unknown, of another pack, or no longer compiles."""


_VERSIONS: dict[str, CompiledPack] = {}


def compiled_version(session: Session, pack_id: str, version_id: int) -> CompiledPack:
    """The compiled pack of one published version (the active one, or an older one)."""
    try:
        if version_id == active_version_id(session, pack_id):  # no content read: the usual case
            return active_pack(session, pack_id)
    except PackNotInstalled:
        raise VersionUnavailable(f"pack {pack_id} is not installed") from None
    version = session.get(PackVersion, version_id)
    if version is None or version.pack_id != pack_id:
        raise VersionUnavailable(f"pack {pack_id} has no version {version_id}")
    compiled = _VERSIONS.get(version.content_hash)
    if compiled is None:
        from quotaflow.packs.validate import compile_installed

        try:
            compiled = compile_installed(version.content)
        except QuotaflowError as exc:  # written for an older engine: no longer valid
            log.warning("pack %s version %s no longer compiles: %s", pack_id, version_id, exc)
            raise VersionUnavailable(str(exc)) from exc
        _VERSIONS[version.content_hash] = compiled
    return compiled
