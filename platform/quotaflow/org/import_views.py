"""The org import page for administrators (/admin/org-import): upload a .csv or .xlsx of
people, teams and memberships (the columns `quotaflow org import` reads), check it (nothing
written) and import it, all or nothing. The upload waits in the instance folder under a random
name, as record imports do, and is deleted once imported or after a week."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from quotaflow.messages import said_in
from quotaflow.org.importing import OrgImportError, import_org, read_sheet
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES
from quotaflow.org.services import OrgError
from quotaflow.packs.services import active_packs
from quotaflow.timeutil import utcnow
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language
from quotaflow.web.uploads import admin_only, read_as, saved_upload, upload_path

bp = Blueprint("org_import", __name__, url_prefix="/admin/org-import")
PREFIX = "org-"  # beside record imports in the same folder


def _roles() -> dict[str, str]:
    """The role names a row may give: the packs' own, else the built-in ones."""
    declared: dict[str, str] = {
        role.id: role.capability
        for pack in active_packs(request_session())
        for role in pack.pack.roles
        if role.capability != "admin"
    }
    return declared or dict(DEFAULT_ROLE_CAPABILITIES)


@bp.get("")
def start() -> ResponseReturnValue:
    admin_only()
    return render_template("admin/org_import.html", token=None, roles=sorted(_roles()))


@bp.post("")
def upload() -> ResponseReturnValue:
    admin_only()
    token = saved_upload(PREFIX)
    if token is None:
        return redirect(url_for("org_import.start"))
    name = request.files["file"].filename
    return redirect(url_for("org_import.check", token=token, name=name))


@bp.get("/<token>")
def check(token: str) -> ResponseReturnValue:
    """Check the upload: what it would change, or every problem by row; nothing written."""
    admin_only()
    return _run(token, write=False)


@bp.post("/<token>")
def run(token: str) -> ResponseReturnValue:
    admin_only()
    return _run(token, write=True)


def _run(token: str, *, write: bool) -> ResponseReturnValue:
    path = upload_path(token, PREFIX)
    session = request_session()
    name = request.args.get("name", "")
    try:
        rows = read_sheet(path)
        report = import_org(
            session, rows, actor=current_user.username, today=utcnow().date(),
            role_capabilities=_roles(),
        )  # fmt: skip
    except OrgImportError as exc:
        session.rollback()
        return render_template(
            "admin/org_import.html", token=token, name=name,
            problems=exc.problems_in(current_language()),
            roles=sorted(_roles()), read_as=read_as(path),
        ), 400  # fmt: skip
    except OrgError as exc:
        session.rollback()
        return render_template(
            "admin/org_import.html", token=token, name=name,
            problems=[said_in(current_language(), exc)],
            roles=sorted(_roles()), read_as=read_as(path),
        ), 400  # fmt: skip
    if not write:
        session.rollback()
        return render_template(
            "admin/org_import.html", token=token, name=name, report=report, rows=len(rows),
            roles=sorted(_roles()), read_as=read_as(path),
        )  # fmt: skip
    session.commit()
    path.unlink(missing_ok=True)
    flash(
        _("Imported: %(teams)s teams created, %(users)s people added, %(updated)s updated, "
          "%(memberships)s memberships added.", teams=report.teams_created,
          users=report.users_created, updated=report.users_updated,
          memberships=report.memberships_added),
        "success",
    )  # fmt: skip
    return redirect(url_for("admin.teams"))
