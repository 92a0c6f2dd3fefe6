"""One form's behaviour, evaluated on the server from the compiled pack.

The same functions answer an htmx round trip while a rep types (which fields show, what
the computed fields are) and the final submission (what is refused and why), so no rule
is ever written twice, and nothing here knows about Flask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from quotaflow.expressions import ExpressionError
from quotaflow.forms.values import FieldValueError, Raw, parse_value
from quotaflow.messages import N_, translate
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FieldDef, FormDef, label_text

REQUIRED = "required"


@dataclass
class FormState:
    """Values (typed, computed ones filled in), what shows, what is required, what is wrong."""

    values: dict[str, Any]
    visible: dict[str, bool]
    required: dict[str, bool]
    errors: dict[str, list[str]] = field(default_factory=dict)
    form_errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and not self.form_errors

    def add_error(self, field_id: str | None, message: str) -> None:
        if field_id is None:
            self.form_errors.append(message)
        else:
            self.errors.setdefault(field_id, []).append(message)


def _condition(
    pack: CompiledPack,
    form: FormDef,
    path: tuple[str | int, ...],
    names: Mapping[str, Any],
    today: date | None,
) -> bool:
    try:
        return pack.expression("form", form.id, *path).evaluate(names, today=today) is True
    except ExpressionError:
        return False  # a runtime limit hit: the condition does not hold


def evaluate_form(
    pack: CompiledPack,
    form_id: str,
    values: Mapping[str, Any],
    *,
    stage: str | None = None,
    today: date | None = None,
    unreadable: frozenset[str] = frozenset(),
) -> FormState:
    """Computed fields filled in (in dependency order), then visibility and requiredness.
    A computed field that reads an `unreadable` field (one whose text was refused), directly
    or through another computed field, is blank: a net amount worked out as if a refused
    120 % discount were no discount at all would be shown as a fact."""
    form = pack.forms[form_id]
    by_id = {f.id: (i, f) for i, f in enumerate(form.fields)}
    names: dict[str, Any] = {f.id: values.get(f.id) for f in form.fields}
    names["stage"] = stage
    unknown = set(unreadable)
    for field_id in pack.computed_order[form_id]:
        index, _fdef = by_id[field_id]
        formula = pack.expression("form", form_id, "fields", index, "formula")
        if unknown and not unknown.isdisjoint(formula.names):
            names[field_id] = None
            unknown.add(field_id)
            continue
        try:
            names[field_id] = formula.evaluate(names, today=today)
        except ExpressionError:
            names[field_id] = None
    visible, required = {}, {}
    for i, fdef in enumerate(form.fields):
        visible[fdef.id] = fdef.visible_if is None or _condition(
            pack, form, ("fields", i, "visible_if"), names, today
        )
        required[fdef.id] = visible[fdef.id] and (
            fdef.required
            or (
                fdef.required_if is not None
                and _condition(pack, form, ("fields", i, "required_if"), names, today)
            )
        )
    typed = {k: v for k, v in names.items() if k != "stage"}
    return FormState(typed, visible, required)


def starting_values(pack: CompiledPack, form_id: str, today: date) -> dict[str, Any]:
    """A new form's values: each field's `default`, or its `default_formula` worked out for
    `today` (left blank if it fails at run time: the person fills it in)."""
    values: dict[str, Any] = {}
    for i, fdef in enumerate(pack.forms[form_id].fields):
        if fdef.default_formula is not None:
            try:
                value = pack.expression("form", form_id, "fields", i, "default_formula").evaluate(
                    {}, today=today
                )
            except ExpressionError:
                value = None
            if value is not None:
                values[fdef.id] = value
        elif fdef.default is not None:
            values[fdef.id] = fdef.default
    return values


def parse_submission(
    form: FormDef, raw: Mapping[str, Raw], locale: str = "en"
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Typed values of every editable field, and the fields whose text cannot be read (the
    reasons in `locale`)."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for fdef in form.fields:
        if fdef.formula is not None:
            continue
        try:
            values[fdef.id] = parse_value(fdef, raw.get(fdef.id))
        except FieldValueError as exc:
            errors[fdef.id] = [exc.in_locale(locale)]
            values[fdef.id] = None
    return values, errors


def validate_submission(
    pack: CompiledPack,
    form_id: str,
    raw: Mapping[str, Raw],
    *,
    stage: str | None = None,
    locale: str = "en",
    today: date | None = None,
) -> FormState:
    """Everything wrong with a submission, per field and for the form, in the user's locale."""
    form = pack.forms[form_id]
    values, parse_errors = parse_submission(form, raw, locale)
    state = evaluate_form(
        pack, form_id, values, stage=stage, today=today, unreadable=frozenset(parse_errors)
    )
    for field_id, messages in parse_errors.items():
        for message in messages:
            state.add_error(field_id, message)
    for fdef in form.fields:
        if (
            state.required[fdef.id]
            and _blank(state.values.get(fdef.id))
            and fdef.id not in state.errors
        ):
            state.add_error(fdef.id, _required_message(fdef, locale))
    if not parse_errors:
        for i, rule in enumerate(form.rules):
            if _condition(
                pack, form, ("rules", i, "when"), {**state.values, "stage": stage}, today
            ):
                message = label_text(rule.error, locale)
                for target in rule.fields or (None,):
                    state.add_error(target, message)
    return state


def _blank(value: Any) -> bool:
    return value is None or value == "" or value == [] or value is False


def _required_message(fdef: FieldDef, locale: str) -> str:
    if fdef.type == "bool":
        return translate(locale, N_("please tick this box"))
    return translate(locale, N_("this field is required"))
