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
"""

from __future__ import annotations

import time
from collections import OrderedDict
from threading import Lock
from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
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
        self._opened: OrderedDict[str, tuple[str, int]] = OrderedDict()  # cookie: content, signed
        self._signed: OrderedDict[str, tuple[str, int]] = OrderedDict()  # content: cookie, signed
        self._lock = Lock()

    def loads(self, cookie: str, max_age: int | None = None) -> Any:
        with self._lock:
            kept = self._opened.get(cookie)
        if kept is not None:
            age = _age(kept[1])  # refused as itsdangerous would: from the future, or too old
            if age >= 0 and (max_age is None or age <= max_age):
                return self._payload.loads(kept[0])
        data, signed = self._signer.loads(cookie, max_age=max_age, return_timestamp=True)
        with self._lock:
            self._opened[cookie] = (self._payload.dumps(data), int(signed.timestamp()))
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
            self._opened[cookie] = (content, signed)
            self._signed[content] = (cookie, signed)
            _trim(self._opened)
            _trim(self._signed)
        return cookie


def _trim(kept: OrderedDict[str, tuple[str, int]]) -> None:
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
