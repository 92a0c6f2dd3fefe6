"""Whole pages that depend only on the set-up, rendered once per person and URL.

A new-record form is the same page every time a rep opens it until an admin changes the pack,
the rep, their team or the navigation: rendering its layout, menus and inputs through Jinja was
half of what opening the form cost the server. Such a page is kept with the config stamp it
was rendered under (config_cache.py) and served only while a request reads that same stamp, so
any change to the set-up, made through any worker, retires it before the next request. Pages
have their own bounded store (least recently used go first): they are large next to the memo's
entries, and filling the memo would empty it for everyone.

Two parts differ between two requests for the same page: the CSRF token and the messages
waiting to be flashed. The page is kept split at its token and joined with the current
request's on the way out, so a kept page never carries another request's (or person's) token;
the token is URL-safe base64 with dots, written the same in an attribute, a JSON string or
text, so no escaping can tell the copies apart. Where the layout shows messages, a kept page
holds a marker that each request replaces with its own messages (most often none; after a
save, "Saved.").

What the key must hold: everything the template reads that is not in the set-up. Here that
is the person, the language, the URL (the language switcher sends you back to it) with the
prefix the app is mounted under (links are built with it), and what the caller passes (for a
form: the blank page's own key, which holds the pack version, the day, the defaults and the
choices offered). A URL with a query string is rendered afresh and not kept: the form ignores
queries, and keeping one page per made-up query would let anyone fill the store.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock
from typing import Any

from flask import Flask, current_app, g, get_flashed_messages, render_template, request
from flask_login import current_user
from markupsafe import Markup

from quotaflow.config_cache import stamp_of
from quotaflow.web import request_session
from quotaflow.web.cookie_session import kept_csrf_token
from quotaflow.web.i18n import current_language

_TOKEN = re.compile(r"[A-Za-z0-9_.\-]{16,}")
_KEEPING = "qf_keeping_page"  # g: the page being rendered is to be kept
# Made per process: no pack label or typed value can know it in advance.
_MESSAGES = f"<!--messages {secrets.token_hex(16)}-->"
KEPT_PAGES = 1024  # per process; about 8 kB each
_PAGES: OrderedDict[Hashable, tuple[Hashable, tuple[str, ...]]] = OrderedDict()
_LOCK = Lock()


def init_app(app: Flask) -> None:
    app.add_template_global(flashed_messages)


def flashed_messages() -> Markup:
    """The markup of the messages waiting to be shown (in a page being kept: its marker)."""
    if g.get(_KEEPING):
        return Markup(_MESSAGES)
    if not get_flashed_messages():
        return Markup("")
    return Markup(current_app.jinja_env.get_template("auth/_messages.html").render())


def render_kept(key: Hashable, template: str, **context: Any) -> str:
    """`render_template(template, **context)`, kept while the set-up is unchanged; `key`
    names everything else the page depends on (see the module's doc)."""
    token = kept_csrf_token()
    stamp = stamp_of(request_session())
    if stamp is None or request.query_string or not _TOKEN.fullmatch(token):
        return render_template(template, **context)
    full_key = (
        key, template, current_user.get_id(), current_language(), request.script_root,
        request.path,
    )  # fmt: skip
    with _LOCK:
        kept = _PAGES.get(full_key)
        if kept is not None and kept[0] == stamp:
            _PAGES.move_to_end(full_key)
    if kept is None or kept[0] != stamp:
        g.setdefault(_KEEPING, True)
        try:
            kept = (stamp, tuple(render_template(template, **context).split(token)))
        finally:
            g.pop(_KEEPING)
        with _LOCK:
            _PAGES[full_key] = kept
            while len(_PAGES) > KEPT_PAGES:
                _PAGES.popitem(last=False)
    return token.join(kept[1]).replace(_MESSAGES, flashed_messages(), 1)
