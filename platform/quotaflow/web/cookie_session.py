"""Flask's signed-cookie sessions with the signing work remembered per process.

Every request opened the session cookie (HMAC check, base64, zlib, JSON) and built a new
signing serializer to do it; every request that flashed a message or read one signed the
cookie again. A rep's cookie is the same string request after request, so this process keeps
what each cookie string it has verified holds and when it was signed, and the cookie it
signed last for each content:

- opening a cookie seen before only checks its age (the signature was checked when it was
  first seen; the same string carries the same signature) and decodes the kept content;
- saving content this process signed less than REUSE_S seconds ago (and under a tenth of
  the session's lifetime) sends that cookie again: it is as valid as a new one, only that
  much older. Cookies that came from clients are never sent back this way (one may have been
  signed with a retired key, SECRET_KEY_FALLBACKS, and must be signed anew).

A cookie never seen, changed by one byte, or past its age goes through itsdangerous as before.

The CSRF token a page carries is the session's raw token signed with a timestamp
(Flask-WTF's generate_csrf, a new signature on every page). `kept_csrf_token` sends the
token this process signed for the same raw token and secret less than REUSE_S seconds ago
again: it proves the same thing and expires that much sooner (of a 12-hour limit; under a
tenth of WTF_CSRF_TIME_LIMIT, as for cookies).
"""

from __future__ import annotations

import hmac
import time
from collections import OrderedDict
from threading import Lock
from typing import Any

from flask import Flask, current_app, g, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import generate_csrf
from itsdangerous import URLSafeTimedSerializer

KEPT = 4096  # cookies (and contents) remembered; past it the oldest go
REUSE_S = 60  # a cookie signed this recently is sent again for the same content


class _KeptSigner:
    """Stands in for the URLSafeTimedSerializer Flask's session interface asks for: the same
    `loads` and `dumps`, remembering what it verified and signed."""

    def __init__(self, signer: URLSafeTimedSerializer, payload: Any, reuse_s: int) -> None:
        self._signer = signer
        self._payload = payload  # Flask's tagged JSON: kept content is decoded afresh each time
        self._reuse_s = reuse_s
        # cookie: content, signed, and the content itself when its values are plain scalars
        # (a signed-in session's are): copied, not decoded, when the cookie comes back
        self._opened: OrderedDict[str, tuple[str, int, dict[str, Any] | None]] = OrderedDict()
        self._signed: OrderedDict[str, tuple[str, int]] = OrderedDict()  # content: cookie, signed
        self._lock = Lock()

    def loads(self, cookie: str, max_age: int | None = None) -> Any:
        with self._lock:
            kept = self._opened.get(cookie)
        if kept is not None:
            age = _age(kept[1])  # refused as itsdangerous would: from the future, or too old
            if age >= 0 and (max_age is None or age <= max_age):
                return dict(kept[2]) if kept[2] is not None else self._payload.loads(kept[0])
        data, signed = self._signer.loads(cookie, max_age=max_age, return_timestamp=True)
        content, flat = self._payload.dumps(data), _flat(data)
        with self._lock:
            self._opened[cookie] = (content, int(signed.timestamp()), flat)
            _trim(self._opened)
        return data

    def dumps(self, data: Any) -> str:
        content = self._payload.dumps(data)
        with self._lock:
            kept = self._signed.get(content)
        if kept is not None and 0 <= _age(kept[1]) < self._reuse_s:
            return kept[0]
        signed = int(time.time())  # read before signing: the age reckoned from it is never less
        cookie = str(self._signer.dumps(data))
        with self._lock:
            self._opened[cookie] = (content, signed, _flat(data))
            self._signed[content] = (cookie, signed)
            _trim(self._opened)
            _trim(self._signed)
        return cookie


def _flat(data: Any) -> dict[str, Any] | None:
    """A copy of `data` when it is a dict of plain scalars (nothing in it can be changed in
    place, and tagged JSON gives them back as they are); else None."""
    if type(data) is dict and all(type(v) in _SCALARS for v in data.values()):
        return dict(data)
    return None


_SCALARS = frozenset({str, int, bool, float, type(None)})


def _trim(kept: OrderedDict[Any, Any]) -> None:
    while len(kept) > KEPT:
        kept.popitem(last=False)


def _age(signed: int) -> int:
    return int(time.time()) - signed


class KeptCookieSessionInterface(SecureCookieSessionInterface):
    """SecureCookieSessionInterface with one remembering signer per secret key."""

    def __init__(self) -> None:
        self._signers: dict[tuple[Any, ...], _KeptSigner] = {}

    def get_signing_serializer(self, app: Flask) -> Any:
        if not app.secret_key:
            return None
        lifetime = int(app.permanent_session_lifetime.total_seconds())
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key, lifetime)
        found = self._signers.get(keys)
        if found is None:
            signer = super().get_signing_serializer(app)
            reuse_s = min(REUSE_S, lifetime // 10)
            found = _KeptSigner(signer, self.serializer, reuse_s)  # type: ignore[arg-type]
            self._signers = {keys: found}  # only the current keys' signer is ever needed
        return found


_CSRF_SIGNED: OrderedDict[tuple[Any, str], tuple[str, int]] = OrderedDict()
_CSRF_LOCK = Lock()


def kept_csrf_token() -> str:
    """generate_csrf(), but a token this process signed for the session's raw token (under
    the same secret) less than REUSE_S seconds ago is sent again instead of a new signature."""
    config = current_app.config
    field = config["WTF_CSRF_FIELD_NAME"]
    if field in g:  # this request's token, from generate_csrf or from here
        return str(g.get(field))
    raw = session.get(field)
    key = (config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key, raw)
    limit = config.get("WTF_CSRF_TIME_LIMIT")
    reuse_s = REUSE_S if limit is None else min(REUSE_S, int(limit) // 10)
    if isinstance(raw, str):
        with _CSRF_LOCK:
            kept = _CSRF_SIGNED.get(key)
        if kept is not None and 0 <= _age(kept[1]) < reuse_s:
            setattr(g, field, kept[0])  # where generate_csrf looks first, templates included
            return kept[0]
    signed = int(time.time())  # read before signing: the age reckoned from it is never less
    token = str(generate_csrf())
    with _CSRF_LOCK:
        _CSRF_SIGNED[(key[0], session[field])] = (token, signed)
        _trim(_CSRF_SIGNED)
    return token


# (secret, the session's raw token, signed token): when it was signed, read from the token
_CSRF_CHECKED: OrderedDict[tuple[Any, str, str], int] = OrderedDict()


def csrf_token_known(token: str | None) -> bool:
    """True when `token` is one this process signed for the session's raw token under the
    current secret (kept_csrf_token) or accepted for it before (note_checked_csrf), and is
    within WTF_CSRF_TIME_LIMIT: what Flask-WTF's validate_csrf would find, without its HMAC.
    Anything else (another worker's token, a changed secret, a stranger) is not known."""
    config = current_app.config
    raw = session.get(config["WTF_CSRF_FIELD_NAME"])
    if not token or not isinstance(raw, str):
        return False
    secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    with _CSRF_LOCK:
        kept = _CSRF_SIGNED.get((secret, raw))
        if kept is not None and hmac.compare_digest(kept[0], token):
            signed: int | None = kept[1]  # read before signing: the token is no older
        else:
            signed = _CSRF_CHECKED.get((secret, raw, token))
    if signed is None:
        return False
    limit = config.get("WTF_CSRF_TIME_LIMIT", 3600)  # validate_csrf's default
    age = _age(signed)
    return age >= 0 and (limit is None or age <= int(limit))


def note_checked_csrf(token: str) -> None:
    """Remember a token validate_csrf has just accepted for this session, with the time it
    was signed (read from the token, whose signature was just checked)."""
    from itsdangerous.encoding import base64_decode, bytes_to_int

    config = current_app.config
    raw = session.get(config["WTF_CSRF_FIELD_NAME"])
    parts = token.rsplit(".", 2)
    if not isinstance(raw, str) or len(parts) != 3:
        return
    try:
        signed = bytes_to_int(base64_decode(parts[1]))
    except ValueError:  # (BadData is a ValueError too) not a token this code understands
        return
    secret = config.get("WTF_CSRF_SECRET_KEY") or current_app.secret_key
    with _CSRF_LOCK:
        _CSRF_CHECKED[(secret, raw, token)] = signed
        _trim(_CSRF_CHECKED)
