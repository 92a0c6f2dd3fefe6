"""Languages (English, Simplified Chinese): locale choice, catalogs, formatting filters, labels.

Catalogs live as .po files in quotaflow/translations/; they are compiled to .mo in the instance
folder when the app starts (only when the .po changed), so no compiled file is ever committed
and a read-only install still works.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import get_datetime_format
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import (
    Blueprint,
    Flask,
    current_app,
    g,
    has_request_context,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import (
    Babel,
    format_currency,
    format_decimal,
    format_percent,
    get_locale,
    get_translations,
)
from flask_babel import format_date as babel_date
from flask_babel import format_datetime as babel_datetime
from flask_babel import format_time as babel_time
from flask_login import current_user

from quotaflow.auth.services import safe_next

SOURCE_DIR = Path(__file__).resolve().parent.parent / "translations"
LANGUAGES = {"en": "English", "zh": "中文"}
BLANK = "—"

bp = Blueprint("i18n", __name__)


def init_app(app: Flask) -> None:
    """Compile catalogs, select the locale per request, register filters and `label()`."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "en")
    app.config.setdefault("BABEL_DEFAULT_TIMEZONE", app.config.get("TIMEZONE", "UTC"))
    app.config.setdefault("CURRENCY", "CNY")
    compiled = compile_catalogs(SOURCE_DIR, Path(app.instance_path) / "translations")
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(compiled)
    Babel(app, locale_selector=select_locale, timezone_selector=select_timezone)
    # Templates call _() dozens of times a page; Flask-Babel finds the catalog again on each
    # call (context, locale, cache key). Find it once per request instead.
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        gettext=lambda s: _catalog().ugettext(s),
        ngettext=lambda s, p, n: _catalog().ungettext(s, p, n),
        pgettext=lambda c, s: _catalog().upgettext(c, s),
        npgettext=lambda c, s, p, n: _catalog().unpgettext(c, s, p, n),
        newstyle=True,
    )
    app.jinja_env.filters.update(
        date=date_filter,
        datetime=datetime_filter,
        money=money_filter,
        number=number_filter,
        percent=percent_filter,
        paren=paren_filter,
    )
    app.jinja_env.globals.update(label=label, LANGUAGES=LANGUAGES, colon=colon)
    app.context_processor(lambda: {"locale": current_language()})
    app.register_blueprint(bp)


def _catalog() -> Any:
    found = g.get("qf_catalog")
    if found is None:
        found = g.qf_catalog = get_translations()
    return found


def compile_catalogs(source: Path, target: Path) -> Path:
    """Write each source .po as .mo under `target`, only where the bytes would change."""
    for po_path in sorted(source.glob("*/LC_MESSAGES/*.po")):
        with po_path.open("rb") as fh:
            catalog = read_po(fh)
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        if mo_path.exists() and mo_path.read_bytes() == buffer.getvalue():
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        # write then rename: several workers starting at once never read a half-written file
        fd, tmp = tempfile.mkstemp(dir=mo_path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(buffer.getvalue())
        os.chmod(tmp, 0o644)
        os.replace(tmp, mo_path)
    return target


# Parsed once: Flask-Babel parses what the selector returns on every request, unless it is
# already a Locale (a twentieth of a served-from-memo page).
_LOCALES = {code: Locale.parse(code) for code in LANGUAGES}


def select_locale() -> Locale:
    """The user's language, else the one chosen on the sign-in page, else the browser's, else en."""
    user_locale = getattr(current_user, "locale", None)
    if user_locale in LANGUAGES:
        return _LOCALES[user_locale]
    chosen = session.get("locale")
    if chosen in LANGUAGES:
        return _LOCALES[chosen]
    return _LOCALES[request.accept_languages.best_match(list(LANGUAGES)) or "en"]


def select_timezone() -> str:
    """Moments are shown in the company's time zone: QUOTAFLOW_TIMEZONE when it is set, else
    the installed pack's `timezone` (the first, when there are several), else UTC. Found once
    a request."""
    found = g.get("qf_zone")
    if found is None:
        found = g.qf_zone = _company_zone()
    return str(found)


def _company_zone() -> str:
    if current_app.config.get("TIMEZONE"):
        return str(current_app.config["TIMEZONE"])
    from quotaflow.packs.services import active_packs
    from quotaflow.web import request_session

    packs = active_packs(request_session())
    return packs[0].pack.timezone if packs else "UTC"


def current_language() -> str:
    """'en' or 'zh' for the current request (found once a request: pages ask for it for
    every label)."""
    if not has_request_context():
        return _language_of(get_locale())
    found: str | None = g.get("qf_language")
    if found is None:
        found = g.qf_language = _language_of(get_locale())
    return found


def _language_of(locale: Locale | None) -> str:
    return locale.language if locale is not None else "en"


@bp.post("/locale")
def set_locale() -> ResponseReturnValue:
    """The language switcher: remembered on the user (signed in) or in the session."""
    chosen = request.form.get("locale", "")
    if chosen in LANGUAGES:
        session["locale"] = chosen
        if current_user.is_authenticated:
            _save_user_locale(current_user.id, chosen)
    return redirect(safe_next(request.form.get("next")) or url_for("core.home"))


def _save_user_locale(user_id: int, chosen: str) -> None:
    from quotaflow.org.models import User
    from quotaflow.web import request_session

    db = request_session()
    user = db.get(User, user_id)
    if user is not None:
        user.locale = chosen
        db.commit()


# --- labels and formatting -------------------------------------------------------------------


def label(value: str | Mapping[str, Any] | None, language: str | None = None) -> str:
    """A pack label in the current language: a plain string, or {en:..., zh:...} with fallback."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    language = language or current_language()
    for key in (language, "en"):
        text = value.get(key)
        if text:
            return str(text)
    return next((str(v) for v in value.values() if v), "")


def date_filter(value: date | datetime | str | None, format: str = "medium") -> str:
    """A date in the current locale ('Mar 5, 2027' / '2027年3月5日'); blank as —."""
    if value in (None, ""):
        return BLANK
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        value = value.date()
    return babel_date(value, format)


def datetime_filter(value: datetime | None, format: str = "moment", rebase: bool = True) -> str:
    """A moment in the configured time zone and the current locale; blank as —. "moment" (the
    default): the date as every page writes it, then the time to the minute ('Mar 5, 2027,
    9:30 AM' / '2027年3月5日 09:30'); else a Babel format ("short", "medium", a pattern).
    `rebase=False` shows a wall-clock time as it is (a date-time field typed at 09:30 is 09:30
    wherever the company is), instead of taking it for UTC and converting it."""
    if value is None:
        return BLANK
    if format != "moment":
        return babel_datetime(value, format, rebase=rebase)
    pattern = get_datetime_format("medium", locale=get_locale())
    return str(pattern).format(
        babel_time(value, "short", rebase=rebase), babel_date(value, "medium", rebase=rebase)
    )


def money_filter(
    value: Decimal | int | float | None,
    currency: str | None = None,
    whole: bool = False,
    trim: bool = False,
) -> str:
    """An amount with its currency symbol for the locale ('CN¥1,234.50' / '¥1,234.50');
    `whole` rounds to whole units ('CN¥3,028,250'), for tables of large figures; `trim`
    shows a whole amount without its '.00' and any other exactly."""
    if value is None or value == "":
        return BLANK
    amount, code = Decimal(str(value)), currency or current_app.config["CURRENCY"]
    if whole or (trim and amount == amount.to_integral_value()):
        # half up, as people round money (Babel alone rounds half to even)
        amount = amount.quantize(Decimal(1), rounding=ROUND_HALF_UP)
        return format_currency(amount, code, format="¤#,##0", currency_digits=False)
    return format_currency(amount, code)


def paren_filter(text: object) -> str:
    """Text in brackets as the reader's language writes them: "(team)", "（团队）"."""
    return f"（{text}）" if current_language() == "zh" else f"({text})"


def colon() -> str:
    """The colon after a label in the reader's language: "Owner: ", "负责人："."""
    return "：" if current_language() == "zh" else ": "


def number_filter(value: Decimal | int | float | str | None, format: str | None = None) -> str:
    """A number (or its exact text, as frozen results keep it) with the locale's grouping and
    decimal signs; blank as —."""
    if value is None or value == "":
        return BLANK
    return format_decimal(Decimal(value) if isinstance(value, str) else value, format)


def percent_filter(value: Decimal | float | str | None, format: str | None = None) -> str:
    """0.156 → '16%'; blank as —."""
    if value is None or value == "":
        return BLANK
    return format_percent(Decimal(value) if isinstance(value, str) else value, format)
