"""Appraisal pages: periods, a period's overview with calibration, rating forms, a rep's
explained scorecard (and its printable page), notes, exports, close/publish/reopen.

Who sees what: a rep their own scorecard once published and their self-assessment; a manager
the reps of their teams at any time; an administrator everything, and only they open, close,
publish and reopen.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from quotaflow import spreadsheets
from quotaflow.errors import QuotaflowError
from quotaflow.messages import said_in
from quotaflow.org.models import User
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.services import PackNotInstalled, active_pack, active_packs
from quotaflow.scorecards import cycle
from quotaflow.scorecards.engine import group_label, item_id, item_label
from quotaflow.scorecards.exports import csv_bytes, results_table, xlsx_bytes
from quotaflow.scorecards.models import AppraisalNote, AppraisalPeriod
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language

bp = Blueprint("appraisals", __name__)


def _period(period_id: int) -> tuple[AppraisalPeriod, CompiledPack]:
    session = request_session()
    row = session.get(AppraisalPeriod, period_id)
    if row is None:
        abort(404)
    try:
        pack = active_pack(session, row.pack_id)
    except PackNotInstalled:
        abort(404)
    if row.scorecard_id not in pack.scorecards:
        abort(404)
    return row, pack


def _scope(row: AppraisalPeriod, pack: CompiledPack) -> set[int]:
    """The reps this person may see in this period (not their own: see _may_read)."""
    session = request_session()
    if current_user.is_admin:
        return set(cycle.people_of(session, pack, row))
    return cycle.managed_reps(session, pack, row, current_user.id)


def _may_read(row: AppraisalPeriod, pack: CompiledPack, rep_id: int) -> bool:
    if rep_id == current_user.id:
        return row.status == "published" or rep_id in _scope(row, pack)
    return rep_id in _scope(row, pack)


def _names(ids: Any) -> dict[int, tuple[str, str]]:
    rows = request_session().execute(
        select(User.id, User.username, User.display_name).where(User.id.in_(list(ids)))
    )
    return {uid: (username, name) for uid, username, name in rows}


def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403)


@bp.get("/appraisals")
def index() -> ResponseReturnValue:
    return _index()


def _index(status: int = 200, **typed: str) -> ResponseReturnValue:
    """The appraisals; `typed` is what a refused "open" had in its fields, with the error."""
    session = request_session()
    packs = {p.id: p for p in active_packs(session)}
    rows = list(session.scalars(select(AppraisalPeriod).order_by(AppraisalPeriod.opened_at.desc())))
    periods = [(r, packs[r.pack_id]) for r in rows if r.pack_id in packs]
    cards = [(p, c) for p in packs.values() for c in p.scorecards.values()]
    mine = set(r.id for r, p in periods if current_user.id in cycle.people_of(session, p, r))
    return render_template(
        "scorecards/index.html", periods=periods, cards=cards, mine=mine, typed=typed
    ), status


@bp.post("/appraisals/open")
def open_period() -> ResponseReturnValue:
    _require_admin()
    session = request_session()
    pack_id, _sep, card_id = request.form.get("scorecard", "").partition(":")
    try:
        pack = active_pack(session, pack_id)
        row = cycle.open_period(
            session, pack, card_id, request.form.get("period", ""), current_user
        )
    except (QuotaflowError, PackNotInstalled) as exc:
        session.rollback()  # said next to the field, what was typed kept
        return _index(
            400, scorecard=request.form.get("scorecard", ""),
            period=request.form.get("period", ""), error=said_in(current_language(), exc),
        )  # fmt: skip
    session.commit()
    flash(_("Appraisal opened."), "success")
    return redirect(url_for("appraisals.overview", period_id=row.id))


@bp.get("/appraisals/<int:period_id>")
def overview(period_id: int) -> ResponseReturnValue:
    row, pack = _period(period_id)
    scope = _scope(row, pack)
    session = request_session()
    if not scope and not current_user.is_admin:
        if current_user.id in cycle.people_of(session, pack, row):
            return redirect(
                url_for("appraisals.scorecard", period_id=row.id, rep_id=current_user.id)
            )
        abort(403)
    results = {
        k: v
        for k, v in cycle.results_for(session, pack, row, current_language()).items()
        if k in scope
    }
    ratings = cycle.ratings_of(session, row)
    status = {
        rep: (cycle.submitted(ratings, rep, "self"), cycle.submitted(ratings, rep, "manager"))
        for rep in scope
    }
    card = pack.scorecards[row.scorecard_id]
    return render_template(
        "scorecards/overview.html", row=row, pack=pack, card=card,
        results=results, names=_names(scope), status=status,
        calibration=cycle.calibration(session, pack, row, results, current_language()),
        has_self=any(cycle.rates(i, "self") for _id, i in cycle.manual_items(card)),
    )  # fmt: skip


@bp.route("/appraisals/<int:period_id>/rate/<int:rep_id>", methods=["GET", "POST"])
def rate(period_id: int, rep_id: int) -> ResponseReturnValue:
    row, pack = _period(period_id)
    rater = "self" if rep_id == current_user.id else "manager"
    if rater == "manager" and rep_id not in _scope(row, pack):
        abort(403)
    session = request_session()
    if rater == "self" and rep_id not in cycle.people_of(session, pack, row):
        abort(403)
    card = pack.scorecards[row.scorecard_id]
    items = [(iid, it) for iid, it in cycle.manual_items(card) if cycle.rates(it, rater)]
    ratings = [r for r in cycle.ratings_of(session, row) if r.rep_id == rep_id]
    values = {
        r.item_id: "" if r.value is None else str(r.value) for r in ratings if r.rater == rater
    }
    comments = {r.item_id: r.comment for r in ratings if r.rater == rater}
    others = {r.item_id: r for r in ratings if r.rater != rater}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        values = {iid: request.form.get(f"rating-{iid}", "") for iid, _it in items}
        comments = {iid: request.form.get(f"comment-{iid}", "") for iid, _it in items}
        try:
            errors = cycle.save_ratings(
                session, pack, row, rep_id=rep_id, rater=rater, actor=current_user,
                values=values, comments=comments,
                # handed in stays handed in: a draft saved from an older page does not take it back
                submit="submit" in request.form or cycle.submitted(ratings, rep_id, rater),
                today=date.today(), locale=current_language(),
            )  # fmt: skip
        except QuotaflowError as exc:
            session.rollback()
            flash(said_in(current_language(), exc), "error")
            status = 409
        else:
            if not errors:
                session.commit()
                flash(_("Submitted.") if "submit" in request.form else _("Saved."), "success")
                return redirect(url_for("appraisals.rate", period_id=row.id, rep_id=rep_id))
            session.rollback()
            status = 400
    return render_template(
        "scorecards/rate.html", row=row, pack=pack, items=items, values=values,
        comments=comments, errors=errors, rater=rater, others=others,
        rep=session.get(User, rep_id), done=cycle.submitted(ratings, rep_id, rater),
    ), status  # fmt: skip


def _scorecard_context(row: AppraisalPeriod, pack: CompiledPack, rep_id: int) -> dict[str, Any]:
    if not _may_read(row, pack, rep_id):
        abort(403)
    session = request_session()
    shown = cycle.results_for(session, pack, row, current_language()).get(rep_id)
    if shown is None:
        abort(404)
    mine = (AppraisalNote.period_id == row.id) & (AppraisalNote.rep_id == rep_id)
    notes = list(
        session.scalars(select(AppraisalNote).where(mine).order_by(AppraisalNote.created_at))
    )
    authors = _names({n.author_id for n in notes if n.author_id})
    ratings = [r for r in cycle.ratings_of(session, row) if r.rep_id == rep_id]
    card = pack.scorecards[row.scorecard_id]
    language = current_language()
    items = {item_id(item, i): (item, i) for i, item in enumerate(card.items)}
    return {
        "row": row, "pack": pack, "card": card, "shown": shown,
        # named in the reader's language from the pack (a frozen explanation keeps the words
        # of whoever closed the period)
        "item_name": lambda it: (
            item_label(pack, *items[it["id"]], language) if it["id"] in items else it["label"]
        ),
        "group_name": lambda group_id: group_label(card, group_id, language),
        # a KPI item's figures in its KPI's unit (money, percent), as its KPI page shows them
        "unit_of": lambda it: _unit(pack, items[it["id"]][0]) if it["id"] in items else "number",
        "rep": session.get(User, rep_id), "notes": notes, "authors": authors,
        "comments": {(r.item_id, r.rater): r for r in ratings},
        "may_note": rep_id != current_user.id and rep_id in _scope(row, pack),
    }  # fmt: skip


def _unit(pack: CompiledPack, item: Any) -> str:
    kpi = pack.kpis.get(item.kpi) if item.kpi else None
    return kpi.unit if kpi is not None else "number"


@bp.get("/appraisals/<int:period_id>/reps/<int:rep_id>")
def scorecard(period_id: int, rep_id: int) -> ResponseReturnValue:
    row, pack = _period(period_id)
    return render_template("scorecards/scorecard.html", **_scorecard_context(row, pack, rep_id))


@bp.get("/appraisals/<int:period_id>/reps/<int:rep_id>/print")
def printable(period_id: int, rep_id: int) -> ResponseReturnValue:
    row, pack = _period(period_id)
    return render_template("scorecards/print.html", **_scorecard_context(row, pack, rep_id))


@bp.post("/appraisals/<int:period_id>/reps/<int:rep_id>/notes")
def note(period_id: int, rep_id: int) -> ResponseReturnValue:
    row, pack = _period(period_id)
    if rep_id == current_user.id or rep_id not in _scope(row, pack):
        abort(403)
    session = request_session()
    try:
        cycle.add_note(
            session, row, rep_id=rep_id, author=current_user, text=request.form.get("text", "")
        )
    except QuotaflowError as exc:
        flash(said_in(current_language(), exc), "error")
        return redirect(url_for("appraisals.scorecard", period_id=row.id, rep_id=rep_id))
    session.commit()
    flash(_("Note saved."), "success")
    return redirect(url_for("appraisals.scorecard", period_id=row.id, rep_id=rep_id))


@bp.get("/appraisals/<int:period_id>/export.<fmt>")
def export(period_id: int, fmt: str) -> ResponseReturnValue:
    row, pack = _period(period_id)
    if fmt not in ("csv", "xlsx"):
        abort(404)
    scope = _scope(row, pack)
    if not scope and not current_user.is_admin:
        abort(403)
    session = request_session()
    results = {k: v for k, v in cycle.results_for(session, pack, row).items() if k in scope}
    columns, rows = results_table(results, _names(results))
    name = f"{row.scorecard_id}-{row.period}"
    if fmt == "csv":
        body, media_type = csv_bytes(columns, rows), spreadsheets.CSV_MEDIA_TYPE
    else:
        body, media_type = xlsx_bytes(columns, rows, row.period), spreadsheets.XLSX_MEDIA_TYPE
    return Response(
        body, content_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}.{fmt}"'},
    )  # fmt: skip


@bp.post("/appraisals/<int:period_id>/<action>")
def change(period_id: int, action: str) -> ResponseReturnValue:
    """close, publish or reopen (administrators)."""
    _require_admin()
    row, pack = _period(period_id)
    session = request_session()
    try:
        if action == "close":
            count = cycle.close_period(session, pack, row, current_user)
            message = _("Closed: %(n)s results frozen.", n=count)
        elif action == "publish":
            cycle.publish_period(session, row, current_user)
            message = _("Published: every rep can now read their scorecard.")
        elif action == "reopen":
            cycle.reopen_period(session, row, current_user, request.form.get("reason", ""))
            message = _("Reopened.")
        else:
            abort(404)
    except QuotaflowError as exc:
        session.rollback()
        flash(said_in(current_language(), exc), "error")
        return redirect(url_for("appraisals.overview", period_id=row.id))
    session.commit()
    flash(message, "success")
    return redirect(url_for("appraisals.overview", period_id=row.id))
