"""The packs page for administrators (/admin/packs): what is installed, every version (who
published it, when), the active one as a .zip to edit and install again, and links to what
people use from each pack (its forms, target plans). Installing stays a deliberate step on the
command line (`quotaflow pack install`), where its plan is printed before anything changes."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template
from flask.typing import ResponseReturnValue
from flask_login import current_user

from quotaflow.packs.services import (
    PackNotInstalled,
    active_pack,
    active_packs,
    installed_packs,
    pack_versions,
    pack_zip,
)
from quotaflow.web import request_session

bp = Blueprint("packs", __name__, url_prefix="/admin/packs")


def _admin_only() -> None:
    if not current_user.is_admin:
        abort(403)


@bp.get("")
def index() -> ResponseReturnValue:
    _admin_only()
    session = request_session()
    compiled = {p.id: p for p in active_packs(session)}
    installed = installed_packs(session)
    return render_template(
        "admin/packs.html", installed=installed, compiled=compiled,
        versions={p.id: pack_versions(session, p.id) for p in installed},
    )  # fmt: skip


@bp.get("/<pack_id>.zip")
def download(pack_id: str) -> ResponseReturnValue:
    _admin_only()
    session = request_session()
    try:
        pack = active_pack(session, pack_id)
    except PackNotInstalled:
        abort(404)
    return Response(
        pack_zip(session, pack_id), content_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{pack.id}-{pack.version}.zip"'},
    )  # fmt: skip
