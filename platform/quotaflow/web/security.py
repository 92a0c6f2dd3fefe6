"""CSRF on every POST, cookie flags, and the security headers every response carries.

Settings: QUOTAFLOW_SECURE_COOKIES=1 behind HTTPS; QUOTAFLOW_TRUSTED_PROXIES=N when N reverse
proxies sit in front (otherwise every client shares the proxy's address for login throttling).
"""

from __future__ import annotations

from flask import Flask, abort, current_app, g, request
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from quotaflow.web.cookie_session import (
    KeptCookieSessionInterface,
    csrf_token_known,
    note_checked_csrf,
)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    """CSRFProtect app-wide, cookie flags from QUOTAFLOW_SECURE_COOKIES, headers on responses."""
    if truthy(app.config.get("SECURE_COOKIES")):  # behind HTTPS: cookies never sent in clear
        app.config["SESSION_COOKIE_SECURE"] = True
        app.config["REMEMBER_COOKIE_SECURE"] = True
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    # a rep may keep a form open for a working day; the token is still bound to the session
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", 12 * 3600)
    app.session_interface = KeptCookieSessionInterface()  # same cookies, signing remembered
    app.before_request(refuse_nul_bytes)  # first: before the sign-in gate reads anything
    KeptCSRFProtect(app)
    app.after_request(add_security_headers)
    proxies = int(app.config.get("TRUSTED_PROXIES") or 0)
    if proxies:  # behind nginx & co: the client address and scheme come from X-Forwarded-*
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]


def refuse_nul_bytes() -> None:
    """400 for a NUL character anywhere in the address or a posted form: never text a person
    typed, and PostgreSQL cannot store or even compare one (its driver raised, a 500). Read
    from the raw request where it can be (every request pays for this check)."""
    environ = request.environ
    query = environ.get("QUERY_STRING", "")
    if "%00" in query or "\x00" in query or "\x00" in environ.get("PATH_INFO", ""):
        abort(400, description=str(NUL_REFUSED))
    if environ.get("REQUEST_METHOD") != "POST":
        return
    kind = request.mimetype  # lower-cased, as werkzeug reads it to parse the form
    if kind == "application/x-www-form-urlencoded":
        body = request.get_data(cache=True)  # the form is parsed from this copy later
        if b"%00" in body or b"\x00" in body:
            abort(400, description=str(NUL_REFUSED))
    elif kind == "multipart/form-data" and any(
        "\x00" in v for _k, vs in request.form.lists() for v in vs
    ):
        abort(400, description=str(NUL_REFUSED))


NUL_REFUSED = _l("The request held a NUL character, which no field can store: remove it and retry.")


class KeptCSRFProtect(CSRFProtect):
    """Flask-WTF's CSRFProtect, but a token this process signed or accepted before for the
    session is accepted again without checking its signature anew
    (`cookie_session.csrf_token_known`: same session token, same secret, within the time
    limit); any other goes through Flask-WTF's own check and, if it passes, is remembered.
    Checking the HMAC was a twelfth of a form post's time in the worker."""

    def protect(self, apply_exemptions: bool = False) -> None:
        if apply_exemptions and (not request.endpoint or self._is_exempt()):
            return  # as Flask-WTF does for views and blueprints marked exempt
        config = current_app.config
        strict = request.is_secure and config["WTF_CSRF_SSL_STRICT"]  # (a referrer check too)
        if strict or request.method not in config["WTF_CSRF_METHODS"]:
            super().protect()
            return
        token = self._get_csrf_token()
        if csrf_token_known(token):
            g.csrf_valid = True  # as Flask-WTF marks a request it checked
            return
        super().protect()  # an error response for a bad token
        note_checked_csrf(token)


_LOWER = tuple((name.lower(), name, value) for name, value in HEADERS.items())


def add_security_headers(response: Response) -> Response:
    """The headers in HEADERS, plus no-store on signed-in pages (nothing private in caches);
    a header the view set itself is kept. (Headers.setdefault raises and catches an
    exception per missing header: a twentieth of a served-from-memo page.)"""
    headers = response.headers
    present = {name.lower() for name, _value in headers}
    for lower, name, value in _LOWER:
        if lower not in present:
            headers.add(name, value)
    if "cache-control" not in present and request.endpoint != "static":
        user = current_user._get_current_object()  # one look through the proxy, not four
        if user and user.is_authenticated:
            headers.add("Cache-Control", "no-store")
    return response


def truthy(value: object) -> bool:
    """'1', 'true', 'yes', 'on' (any case) or True."""
    return value is True or str(value).strip().lower() in {"1", "true", "yes", "on"}
