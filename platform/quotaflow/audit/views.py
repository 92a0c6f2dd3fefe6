"""The audit log page for administrators (/admin/audit): who changed what, when."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask.typing import ResponseReturnValue
from flask_login import current_user

from quotaflow.audit.reading import AuditQuery, audit_actions, audit_page
from quotaflow.ids import id_from
from quotaflow.web import request_session

bp = Blueprint("audit", __name__, url_prefix="/admin/audit")


@bp.get("")
def log() -> ResponseReturnValue:
    if not current_user.is_admin:
        abort(403)
    args = request.args
    query = AuditQuery(
        action=args.get("action", "")[:64], actor=args.get("actor", "")[:200],
        about=args.get("about", "")[:200], page=id_from(args.get("page")) or 1,
    )  # fmt: skip
    session = request_session()
    return render_template(
        "admin/audit.html", query=query, result=audit_page(session, query),
        actions=audit_actions(session),
    )  # fmt: skip
