"""The admin import page: upload a CSV/XLSX, see its first rows and the column -> field
mapping (pre-filled by names and labels), check it (nothing written), then import all or the
good rows. The uploaded file waits in the instance folder under a random name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from quotaflow.audit import record_event
from quotaflow.errors import QuotaflowError
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import label_text
from quotaflow.packs.services import PackNotInstalled, active_pack, active_packs
from quotaflow.pipelines.services import pipeline_of
from quotaflow.records.importing import (
    ImportPlan,
    ImportRejected,
    import_records,
    read_table,
)
from quotaflow.spreadsheets import XLSX_MEDIA_TYPE, xlsx_bytes
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language
from quotaflow.web.uploads import (
    admin_only,
    is_token_stem,
    read_as,
    saved_upload,
    upload_path,
    uploads_folder,
)

bp = Blueprint("imports", __name__, url_prefix="/admin/import")
PREVIEW_ROWS = 10
REJECTED = ".rejected.json"  # beside the upload's name: the rows an import left out
OWNER_COLUMNS = ("owner", "owner name", "account owner", "deal owner", "sales rep", "salesperson",
                 "rep", "负责人", "所有者", "销售", "销售员", "业务员", "跟进人")  # fmt: skip
STAGE_COLUMNS = ("stage", "deal stage", "sales stage", "阶段", "销售阶段", "商机阶段")


@bp.get("")
def start() -> ResponseReturnValue:
    admin_only()
    forms = [
        (p.id, f.id, label_text(f.label, current_language(), f.id))
        for p in active_packs(request_session())
        for f in p.forms.values()
    ]
    return render_template("records/import_start.html", forms=forms)


@bp.post("")
def upload() -> ResponseReturnValue:
    admin_only()
    token = saved_upload()
    if token is None:
        return redirect(url_for("imports.start"))
    pack_id, _sep, form_id = request.form.get("form", "").partition(":")
    name = request.files["file"].filename
    return redirect(url_for("imports.mapping", token=token, pack=pack_id, form=form_id, name=name))


def _context(
    pack: CompiledPack, form_id: str, header: list[str], rows: list[Any]
) -> dict[str, Any]:
    form = pack.forms[form_id]
    locale = current_language()
    fields = [(f.id, label_text(f.label, locale, f.id)) for f in form.fields if f.formula is None]
    names = (
        {f.id.lower(): f.id for f in form.fields}
        | {label_text(f.label, locale, f.id).lower(): f.id for f in form.fields}
        | {label_text(f.label, "en", f.id).lower(): f.id for f in form.fields}
    )
    has_pipeline = pipeline_of(pack, form_id) is not None
    # the columns every CRM export has besides the form's fields: who owns a row, its stage
    stage_words = (*STAGE_COLUMNS, _("Stage").lower()) if has_pipeline else ()
    names = {
        **{word: "_owner" for word in (*OWNER_COLUMNS, _("Owner").lower())},
        **{word: "_stage" for word in stage_words},
        **names,
    }
    guess = {c: names.get(c.strip().lower(), "") for c in header}
    return {
        "pack": pack, "form": form, "header": header, "preview": rows[:PREVIEW_ROWS],
        "total": len(rows), "fields": fields, "guess": guess,
        "has_pipeline": has_pipeline,
        "dates": [(fid, name) for fid, name in fields if _type(form, fid) == "date"],
    }  # fmt: skip


def _type(form: Any, field_id: str) -> str:
    return next(f.type for f in form.fields if f.id == field_id)


def _read(token: str) -> tuple[Path, list[str], list[Any]]:
    path = upload_path(token)
    try:
        header, rows = read_table(path)
    except QuotaflowError as exc:
        path.unlink(missing_ok=True)
        flash(str(exc).replace(path.name, request.args.get("name", "the file")), "error")
        abort(redirect(url_for("imports.start")))
    return path, header, rows


def _pack_form() -> tuple[CompiledPack, str]:
    values = request.values
    try:
        pack = active_pack(request_session(), values.get("pack", ""))
    except PackNotInstalled:
        abort(404)
    form_id = values.get("form", "")
    if form_id not in pack.forms:
        abort(404)
    return pack, form_id


@bp.get("/<token>")
def mapping(token: str) -> ResponseReturnValue:
    admin_only()
    pack, form_id = _pack_form()
    path, header, rows = _read(token)
    return render_template(
        "records/import_map.html", token=token, chosen={}, read_as=read_as(path),
        **_context(pack, form_id, header, rows),
    )  # fmt: skip


@bp.post("/<token>")
def run(token: str) -> ResponseReturnValue:
    admin_only()
    pack, form_id = _pack_form()
    path, header, rows = _read(token)
    f = request.form
    columns = {c: f.get(f"map-{i}", "") for i, c in enumerate(header)}
    plan = ImportPlan(
        form_id,
        {c: field for c, field in columns.items() if field and not field.startswith("_")},
        owner_column=next((c for c, v in columns.items() if v == "_owner"), None),
        default_owner=None if any(v == "_owner" for v in columns.values()) else current_user.id,
        stage_column=next((c for c, v in columns.items() if v == "_stage"), None),
        date_field=f.get("date_field") or None,
        closed_field=f.get("closed_field") or None,
    )
    check_only = f.get("action") != "import"
    partial = bool(f.get("partial"))
    session = request_session()
    context = {**_context(pack, form_id, header, rows), "read_as": read_as(path)}
    chosen = {
        **columns,
        "date_field": f.get("date_field", ""),
        "closed_field": f.get("closed_field", ""),
        "partial": partial,
    }
    try:
        result = import_records(
            session,
            pack,
            plan,
            header,
            rows,
            actor_id=current_user.id,
            partial=partial or check_only,
            locale=current_language(),
        )
    except ImportRejected as exc:
        session.rollback()
        return render_template(
            "records/import_map.html", token=token, chosen=chosen, problems=exc.problems, **context
        ), 400
    except QuotaflowError as exc:
        session.rollback()
        return render_template(
            "records/import_map.html",
            token=token,
            chosen=chosen,
            problems=str(exc).splitlines(),
            **context,
        ), 400
    if check_only:
        session.rollback()
        return render_template(
            "records/import_map.html",
            token=token,
            chosen=chosen,
            checked=result,
            problems=result.problems,
            **context,
        )
    session.commit()
    path.unlink(missing_ok=True)
    flash(
        _(
            "%(n)s of %(total)s rows imported; %(bad)s rejected.",
            n=result.imported,
            total=result.total,
            bad=len(result.problems),
        ),
        "success",
    )
    if result.problems:  # which ones, and a sheet of them to fix and import again
        stem = token.partition(".")[0]
        by_number = dict(rows)
        left_out = zip(result.rejected, result.problems, strict=True)
        kept = {
            "pack": pack.id, "form": form_id, "header": header,
            "rows": [[number, by_number[number], problem] for number, problem in left_out],
        }  # fmt: skip
        (uploads_folder() / f"{stem}{REJECTED}").write_text(json.dumps(kept), encoding="utf-8")
        return redirect(url_for("imports.rejected", stem=stem))
    return redirect(url_for("records.index", pack_id=pack.id, form_id=form_id))


def _rejected(stem: str) -> dict[str, Any]:
    if not is_token_stem(stem):
        abort(404)
    path = uploads_folder() / f"{stem}{REJECTED}"
    if not path.is_file():
        abort(404)
    kept: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return kept


@bp.get("/<stem>/rejected")
def rejected(stem: str) -> ResponseReturnValue:
    """The rows an import left out, each with why, and the sheet of them to download."""
    admin_only()
    kept = _rejected(stem)
    try:
        pack = active_pack(request_session(), kept["pack"])
    except PackNotInstalled:
        abort(404)
    form = pack.forms.get(kept["form"])
    name = label_text(form.label, current_language(), kept["form"]) if form else kept["form"]
    return render_template(
        "records/import_rejected.html", stem=stem, kept=kept, pack=pack, form=form, form_label=name
    )


@bp.get("/<stem>/rejected.xlsx")
def rejected_sheet(stem: str) -> ResponseReturnValue:
    """The rejected rows as they were read, a "Problem" column last: fix them, import again
    (the extra column maps to nothing)."""
    admin_only()
    kept = _rejected(stem)
    session = request_session()
    record_event(
        session, actor=current_user.username, action="import_rejected_download",
        object_type="form", object_id=f"{kept['pack']}/{kept['form']}",
        details={"rows": len(kept["rows"])},
    )  # fmt: skip
    session.commit()
    header = [*kept["header"], _("Problem")]
    rows = [
        [row.get(c, "") for c in kept["header"]] + [problem] for _n, row, problem in kept["rows"]
    ]
    body = xlsx_bytes(header, rows, _("Rejected rows"))
    return Response(
        body, content_type=XLSX_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="rejected-{kept["form"]}.xlsx"'},
    )  # fmt: skip
