"""Messages that domain code gives to people, in their language, without Flask.

Domain code (form validation, imports) marks a message with `N_` so `pybabel extract -k N_`
finds it, keeps it as an English template with named parameters, and renders it for a
locale with `translate`. The catalogs are the same .po files the web layer uses, read once
per process; a message without a translation stays English.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.pofile import read_po

from quotaflow.errors import QuotaflowError

CATALOGS = Path(__file__).resolve().parent / "translations"


def N_(msgid: str) -> str:  # noqa: N802 - the conventional gettext marker name
    """Mark a message for extraction; it is translated later, where the locale is known."""
    return msgid


@cache
def _catalog(locale: str) -> dict[str, str]:
    path = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    return {m.id: m.string for m in catalog if isinstance(m.id, str) and m.string}


def translate(locale: str | None, msgid: str, **params: Any) -> str:
    """`msgid` in `locale` (falling back to English), with its {named} parameters filled."""
    base = (locale or "en").replace("-", "_").split("_")[0]
    text = _catalog(base).get(msgid, msgid) if base != "en" else msgid
    return text.format(**params) if params else text


class LocalizedError(QuotaflowError):
    """A refusal whose message is an `N_` template: str() is English (logs, the CLI), and a
    page shows `in_locale(the reader's language)`."""

    def __init__(self, msgid: str, /, **params: Any) -> None:
        super().__init__(msgid.format(**params) if params else msgid)
        self.msgid = msgid
        self.params = params

    def in_locale(self, locale: str | None) -> str:
        return translate(locale, self.msgid, **self.params)


def said_in(locale: str | None, exc: BaseException) -> str:
    """An error's message in `locale` when it carries a template, else as it was raised."""
    in_locale = getattr(exc, "in_locale", None)
    return str(in_locale(locale)) if callable(in_locale) else str(exc)
