"""Friendly error pages for 400/403/404/405/429/500: never a traceback, always a way back."""

from __future__ import annotations

import logging

from flask import Flask, current_app, g, make_response, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Response

from quotaflow.auth.services import safe_next

log = logging.getLogger(__name__)
PAGES = {400, 403, 404, 405, 429, 500}

FALLBACK = (
    "<!doctype html><meta charset=utf-8><title>Error</title>"
    "<h1>Something went wrong</h1><p><a href='/'>Back to the start page</a></p>"
)


def init_app(app: Flask) -> None:
    """Register the handlers (CSRF failures get their own 400 page)."""
    app.register_error_handler(CSRFError, csrf_failed)
    for code in PAGES - {500}:
        app.register_error_handler(code, http_error)
    app.register_error_handler(InternalServerError, server_error)


def http_error(exc: HTTPException) -> Response:
    """The friendly page for an HTTP error (405 keeps its Allow header)."""
    code = exc.code or 500
    if code == 405 and request.method == "GET" and (page := _page_above(request.path)):
        # the address a form posted to, reloaded or opened again (after a refusal the browser
        # shows it): the page the form is on, not "not allowed here"
        return redirect(page, code=303)
    # a description of our own (not werkzeug's stock sentence) says what to do
    detail = exc.description if exc.description != type(exc).description else None
    response = _render(f"errors/{code}.html", code, back=back_url(), detail=detail)
    valid_methods = getattr(exc, "valid_methods", None)
    if code == 405 and valid_methods:
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def csrf_failed(exc: CSRFError) -> Response:
    """400 'this form has expired', with a way back to the form."""
    log.info("CSRF check failed on %s: %s", request.path, exc.description)
    return _render("errors/csrf.html", 400, back=back_url())


def server_error(exc: InternalServerError) -> Response:
    """500 without details; Flask has already logged the original exception and traceback."""
    session = g.get("db_session")
    if session is not None:  # a failed flush leaves it unusable; the page reads the nav
        session.rollback()
    return _render("errors/500.html", 500, back=url_for("core.home"))


def _page_above(path: str) -> str | None:
    """`path` without its last part when that is a page (/records/5/move -> /records/5)."""
    parent = path.rstrip("/").rsplit("/", 1)[0]
    if not parent:
        return None
    adapter = current_app.url_map.bind("localhost")
    try:
        adapter.match(parent, method="GET")
    except HTTPException:
        return None
    return iri_to_uri(request.script_root + parent)  # a header is ASCII: 中文 or CR/LF quoted


def back_url() -> str:
    """Where 'go back' leads: the page the person came from when it is on this site."""
    referrer = request.referrer or ""
    host = request.host_url.rstrip("/")
    if referrer.startswith(host + "/"):
        path = safe_next(referrer[len(host) :])
        if path:
            return path
    return url_for("core.home")


def _render(template: str, code: int, **context: object) -> Response:
    try:
        return make_response(render_template(template, code=code, **context), code)
    except Exception:  # the page itself failed (database down?): still no traceback
        log.exception("error page %s failed to render", template)
        return Response(FALLBACK, code, content_type="text/html; charset=utf-8")
