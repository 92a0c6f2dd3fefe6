"""The org import page for administrators (/admin/org-import): upload a .csv or .xlsx of
people, teams and memberships (the columns `quotaflow org import` reads), check it (nothing
written) and import it, all or nothing. The upload waits in the instance folder under a random
name, as record imports do, and is deleted once imported or after a week."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from quotaflow.org.importing import OrgImportError, import_org, read_sheet
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES
from quotaflow.org.services import OrgError
from quotaflow.packs.services import active_packs
from quotaflow.records.import_views import forget_old_files
from quotaflow.records.importing import MAX_IMPORT_BYTES
from quotaflow.timeutil import utcnow
from quotaflow.web import request_session

bp = Blueprint("org_import", __name__, url_prefix="/admin/org-import")
SUFFIXES = (".csv", ".xlsx")


def _admin_only() -> None:
    if not current_user.is_admin:
        abort(403)


def _folder() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _upload(token: str) -> Path:
    name, dot, suffix = token.partition(".")
    valid = len(name) == 32 and all(c in "0123456789abcdef" for c in name)
    if not (dot and valid and f".{suffix}" in SUFFIXES):
        abort(404)
    path = _folder() / f"org-{token}"
    if not path.is_file():
        abort(404)
    return path


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
    _admin_only()
    return render_template("admin/org_import.html", token=None, roles=sorted(_roles()))


@bp.post("")
def upload() -> ResponseReturnValue:
    _admin_only()
    file = request.files.get("file")
    suffix = Path(file.filename or "").suffix.lower() if file else ""
    if file is None or not file.filename:
        flash(_("Choose a file to import."), "error")
        return redirect(url_for("org_import.start"))
    if suffix not in SUFFIXES:
        flash(_("Expected a .csv or .xlsx file, not %(name)s.", name=file.filename), "error")
        return redirect(url_for("org_import.start"))
    data = file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        flash(_("The file is larger than %(mb)s MB.", mb=MAX_IMPORT_BYTES // 1024 // 1024), "error")
        return redirect(url_for("org_import.start"))
    forget_old_files()
    token = f"{secrets.token_hex(16)}{suffix}"
    (_folder() / f"org-{token}").write_bytes(data)
    return redirect(url_for("org_import.check", token=token, name=file.filename))


@bp.get("/<token>")
def check(token: str) -> ResponseReturnValue:
    """Check the upload: what it would change, or every problem by row; nothing written."""
    _admin_only()
    return _run(token, write=False)


@bp.post("/<token>")
def run(token: str) -> ResponseReturnValue:
    _admin_only()
    return _run(token, write=True)


def _run(token: str, *, write: bool) -> ResponseReturnValue:
    path = _upload(token)
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
            "admin/org_import.html", token=token, name=name, problems=exc.problems,
            roles=sorted(_roles()),
        ), 400  # fmt: skip
    except OrgError as exc:
        session.rollback()
        return render_template(
            "admin/org_import.html", token=token, name=name, problems=[str(exc)],
            roles=sorted(_roles()),
        ), 400  # fmt: skip
    if not write:
        session.rollback()
        return render_template(
            "admin/org_import.html", token=token, name=name, report=report, rows=len(rows),
            roles=sorted(_roles()),
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
