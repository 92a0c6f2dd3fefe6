"""Field values: what a person typed → typed values → the JSON stored in a record, and back.

Money is Decimal to the cent; percent is typed as a percent (15 or 15 %) and kept as the
fraction 0.15 the expression language uses; dates are ISO. Every refusal is a sentence a
rep can act on, and the raw text is kept by the caller so nothing typed is lost.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from quotaflow.ids import id_from
from quotaflow.messages import N_, translate
from quotaflow.packs.definitions import ChoiceDef, FieldDef
from quotaflow.records.services import json_value as to_storage

__all__ = [
    "FieldValueError",
    "choice_values",
    "from_storage",
    "parse_value",
    "to_input",
    "to_storage",
]

Raw = str | Sequence[str] | None
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+?[0-9 ()\-./]{5,30}$")
TRUE_WORDS = {"y", "yes", "on", "true", "1"}
MAX_TEXT = 10_000


class FieldValueError(ValueError):
    """A typed value cannot be read from what was entered; the message says why.

    The message is an English template with named parameters (marked with N_), so it can be
    shown in the user's language with `in_locale`.
    """

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid.format(**params) if params else msgid)
        self.msgid = msgid
        self.params = params

    def in_locale(self, locale: str | None) -> str:
        return translate(locale, self.msgid, **self.params)


def choice_values(field: FieldDef) -> list[str]:
    """The stored values a choice field allows."""
    return [c.value if isinstance(c, ChoiceDef) else c for c in field.choices]


def parse_value(field: FieldDef, raw: Raw) -> Any:
    """The typed value of `raw` for this field (None when blank); FieldValueError if unreadable."""
    if field.type == "multichoice":
        items = [raw] if isinstance(raw, str) else list(raw or [])
        chosen = [item for item in items if item]
        unknown = [item for item in chosen if item not in choice_values(field)]
        if unknown:
            raise FieldValueError(N_("'{value}' is not one of the choices"), value=unknown[0])
        return chosen or None
    text = (raw if isinstance(raw, str) else (raw[-1] if raw else "")).strip()
    if field.type == "bool":
        return text.lower() in TRUE_WORDS
    if text == "":
        return None
    value = _PARSERS.get(field.type, _parse_text)(field, text)
    _check_bounds(field, value)
    return value


def _parse_text(field: FieldDef, text: str) -> str:
    limit = field.max_length or MAX_TEXT
    if len(text) > limit:
        raise FieldValueError(
            N_("at most {limit} characters ({entered} entered)"), limit=limit, entered=len(text)
        )
    if field.pattern and not re.fullmatch(field.pattern, text):
        raise FieldValueError(N_("not in the expected format"))
    return text


def _decimal(text: str, example: str = N_("enter a number, e.g. 1250.50")) -> Decimal:
    cleaned = text.replace(",", "").replace(" ", "").replace("\u00a0", "")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise FieldValueError(example) from None
    if not value.is_finite() or abs(value) >= Decimal("1e15"):
        raise FieldValueError(N_("enter a number below a million billion"))
    return value


def _parse_number(_field: FieldDef, text: str) -> int | float:
    value = _decimal(text)
    return int(value) if value == value.to_integral_value() else float(value)


def _parse_money(_field: FieldDef, text: str) -> Decimal:
    value = _decimal(text.lstrip("¥$€£").strip())
    if value != value.quantize(Decimal("0.01")):
        raise FieldValueError(N_("money has at most 2 decimals"))
    return value.quantize(Decimal("0.01"))


def _parse_percent(_field: FieldDef, text: str) -> Decimal:
    return _decimal(text.rstrip("%").strip(), N_("enter a percentage, e.g. 15")) / 100


def _parse_rating(field: FieldDef, text: str) -> int:
    value = _decimal(text)
    top = field.scale or 5
    if value != value.to_integral_value() or not 1 <= value <= top:
        raise FieldValueError(N_("choose a rating from 1 to {top}"), top=top)
    return int(value)


def _parse_date(_field: FieldDef, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise FieldValueError(N_("enter a date as YYYY-MM-DD")) from None


def _parse_datetime(_field: FieldDef, text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise FieldValueError(N_("enter a date and time as YYYY-MM-DD HH:MM")) from None


def _parse_choice(field: FieldDef, text: str) -> str:
    if text not in choice_values(field):
        raise FieldValueError(N_("'{value}' is not one of the choices"), value=text[:40])
    return text


def _parse_email(field: FieldDef, text: str) -> str:
    if not EMAIL.match(text):
        raise FieldValueError(N_("enter an e-mail address like name@example.com"))
    return _parse_text(field, text)


def _parse_phone(field: FieldDef, text: str) -> str:
    if not PHONE.match(text):
        raise FieldValueError(N_("enter a phone number: digits, spaces, + ( ) -"))
    return _parse_text(field, text)


def _parse_reference(_field: FieldDef, text: str) -> int:
    record_id = id_from(text)
    if record_id is None:
        raise FieldValueError(N_("choose a record from the list"))
    return record_id


_PARSERS = {
    "number": _parse_number,
    "computed": _parse_number,
    "money": _parse_money,
    "percent": _parse_percent,
    "rating": _parse_rating,
    "date": _parse_date,
    "datetime": _parse_datetime,
    "choice": _parse_choice,
    "email": _parse_email,
    "phone": _parse_phone,
    "reference": _parse_reference,
}


def _check_bounds(field: FieldDef, value: Any) -> None:
    if not isinstance(value, int | float | Decimal) or isinstance(value, bool):
        return
    shown = (
        (lambda v: f"{(Decimal(str(v)) * 100).normalize():f} %")
        if field.type == "percent"
        else (lambda v: f"{v:g}")
    )
    if field.min is not None and value < Decimal(str(field.min)):
        raise FieldValueError(N_("must be at least {limit}"), limit=shown(field.min))
    if field.max is not None and value > Decimal(str(field.max)):
        raise FieldValueError(N_("must be at most {limit}"), limit=shown(field.max))


# --- storage -------------------------------------------------------------------------------


def from_storage(field: FieldDef, stored: Any) -> Any:
    """The typed value of a stored JSON value (tolerant: old versions may differ)."""
    if stored is None:
        return None
    try:
        if field.type in ("money", "percent"):
            return Decimal(str(stored))
        if field.type == "date":
            return date.fromisoformat(str(stored)[:10])
        if field.type == "datetime":
            return datetime.fromisoformat(str(stored))
    except (ValueError, InvalidOperation):
        return None
    return stored


def to_input(field: FieldDef, value: Any) -> str:
    """The text to show in an input for a typed value (percent back as 15, not 0.15)."""
    if value is None:
        return ""
    if field.type == "percent":
        text = f"{Decimal(str(value)) * 100:f}"
        return text.rstrip("0").rstrip(".") if "." in text else text  # 0 stays "0", not ""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if field.type == "money":  # grouped as people read amounts ("3,000,000.00"); read back
        return f"{Decimal(str(value)):,f}"  # the same, separators skipped
    return str(value)
