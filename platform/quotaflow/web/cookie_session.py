"""Flask's signed-cookie sessions with the signing work remembered per process.

Every request opened the session cookie (HMAC check, base64, zlib, JSON) and built a new
signing serializer to do it; every request that flashed a message or read one signed the
cookie again. A rep's cookie is the same string request after request, so this process keeps
what each cookie string it has verified holds and when it was signed, and the cookie it
signed last for each content:

- opening a cookie seen before only checks its age (the signature was checked when it was
  first seen; the same string carries the same signature) and decodes the kept content;
- saving content signed less than REUSE_S seconds ago sends that cookie again: it is as
  valid as a new one, only up to REUSE_S seconds older.

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
_AGES = 2**62  # no age limit


class _KeptSigner:
    """Stands in for the URLSafeTimedSerializer Flask's session interface asks for: the same
    `loads` and `dumps`, remembering what it verified and signed."""

    def __init__(self, signer: URLSafeTimedSerializer, payload: Any) -> None:
        self._signer = signer
        self._payload = payload  # Flask's tagged JSON: kept content is decoded afresh each time
        self._opened: OrderedDict[str, tuple[str, int]] = OrderedDict()  # cookie: content, signed
        self._signed: OrderedDict[str, tuple[str, int]] = OrderedDict()  # content: cookie, signed
        self._lock = Lock()

    def loads(self, cookie: str, max_age: int | None = None) -> Any:
        with self._lock:
            kept = self._opened.get(cookie)
        if kept is not None and 0 <= _age(kept[1]) <= (max_age if max_age is not None else _AGES):
            return self._payload.loads(kept[0])
        data, signed = self._signer.loads(cookie, max_age=max_age, return_timestamp=True)
        self._keep(cookie, self._payload.dumps(data), int(signed.timestamp()))
        return data

    def dumps(self, data: Any) -> str:
        content = self._payload.dumps(data)
        with self._lock:
            kept = self._signed.get(content)
        if kept is not None and 0 <= _age(kept[1]) < REUSE_S:
            return kept[0]
        cookie = self._signer.dumps(data)
        self._keep(cookie, content, int(time.time()))
        return str(cookie)

    def _keep(self, cookie: str, content: str, signed: int) -> None:
        with self._lock:
            self._opened[cookie] = (content, signed)
            self._signed[content] = (cookie, signed)
            for kept in (self._opened, self._signed):
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
        keys = (*(app.config["SECRET_KEY_FALLBACKS"] or ()), app.secret_key)
        found = self._signers.get(keys)
        if found is None:
            signer = super().get_signing_serializer(app)
            found = self._signers[keys] = _KeptSigner(signer, self.serializer)  # type: ignore[arg-type]
        return found
