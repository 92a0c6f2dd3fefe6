"""Downloading a form's list as a spreadsheet (Excel or CSV): the list's filters and sort,
every page, only the records the person may see, capped and audited. The cells are made by
`records/exporting.py`; this is the route and the names it needs."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, current_app, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import to_user_timezone
from flask_login import current_user
from sqlalchemy import select

from quotaflow.audit import record_event
from quotaflow.forms.engine import evaluate_form
from quotaflow.org.models import Team
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FormDef, label_text
from quotaflow.records import exporting
from quotaflow.records.listing import ListQuery, every_row
from quotaflow.records.models import Record
from quotaflow.records.pages import (
    display_for,
    form_or_404,
    listed_records,
    local_today,
    may_restore,
    pack_or_404,
    people_names,
    stage_label,
    typed_values,
)
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language

bp = Blueprint("record_exports", __name__)


@bp.get("/forms/<pack_id>/<form_id>/records.<fmt>")
def download(pack_id: str, form_id: str, fmt: str) -> ResponseReturnValue:
    """The list as a spreadsheet (CSV or Excel): the same filters and sort, every page."""
    if fmt not in exporting.FORMATS:
        abort(404)
    pack = pack_or_404(pack_id)
    form = form_or_404(pack, form_id)
    query = ListQuery.from_args(request.args, deleted_allowed=may_restore(pack))
    session = request_session()
    limit = int(current_app.config.get("EXPORT_MAX_ROWS", 50_000))
    records = every_row(session, listed_records(pack, form, query), form, query, limit + 1)
    if len(records) > limit:
        flash(
            _("More than %(limit)d records match: narrow the filters (dates, owner, stage) and "
              "download again.", limit=limit),
            "error",
        )  # fmt: skip
        shown: Any = query.args()
        return redirect(url_for("records.index", pack_id=pack.id, form_id=form.id, **shown))
    sheet = exporting.records_sheet(
        form, records, _names(pack, form, records), current_language(), _export_headers(),
        local_time=to_user_timezone,
        computed=lambda r: _computed(pack, form, r),
    )  # fmt: skip
    title = label_text(form.label, current_language(), form.id)
    body = exporting.csv_bytes(sheet) if fmt == "csv" else exporting.xlsx_bytes(sheet, title)
    record_event(
        session, actor=current_user.username, action="records_export", object_type="form",
        object_id=f"{pack.id}/{form.id}",
        details={"format": fmt, "rows": len(records), **query.args(page=1)},
    )  # fmt: skip
    session.commit()
    name = exporting.file_name(form.id, local_today(), fmt)
    return Response(
        body,
        content_type=exporting.MEDIA_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _names(pack: CompiledPack, form: FormDef, records: list[Record]) -> exporting.Names:
    """Who and what the exported cells name: owners and people fields, teams, references."""
    session = request_session()
    show = display_for(pack, form, [r.values for r in records])
    owners = people_names(session, {r.owner_id for r in records} - show.users.keys())
    team_ids = {r.team_id for r in records if r.team_id}
    rows = session.execute(select(Team.id, Team.name).where(Team.id.in_(team_ids)))
    teams = {tid: name for tid, name in rows}
    return exporting.Names(
        people={**show.users, **owners}, teams=teams, records=show.records,
        stage=lambda stage: stage_label(pack, form.id, stage),
    )  # fmt: skip


def _computed(pack: CompiledPack, form: FormDef, record: Record) -> dict[str, Any]:
    """A record's values with its computed fields worked out from its inputs."""
    values = typed_values(form, record.values)
    return evaluate_form(pack, form.id, values, stage=record.stage).values


def _export_headers() -> dict[str, str]:
    return {
        "id": _("ID"), "owner": _("Owner"), "team": _("Team"), "stage": _("Stage"),
        "created": _("Created"), "updated": _("Last changed"),
    }  # fmt: skip
