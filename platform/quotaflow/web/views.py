"""Top-level pages: home and health."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from sqlalchemy import text

from quotaflow.packs.services import installed_packs
from quotaflow.web import request_session

bp = Blueprint("core", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Liveness and database reachability, for load balancers."""
    request_session().execute(text("SELECT 1"))
    return jsonify(status="ok")


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    """Home page: the installed packs (role-specific home pages build on this)."""
    return render_template("home.html", packs=installed_packs(request_session()))
