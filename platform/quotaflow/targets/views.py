"""Target pages: a plan's split for the teams a manager runs (everything for admins), with
the form to move target between the parts of a team and the versions of the split."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from quotaflow.errors import QuotaflowError
from quotaflow.messages import said_in
from quotaflow.org.models import User
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.services import PackNotInstalled, active_pack
from quotaflow.targets.adjustments import (
    adjust_target,
    resplit_target,
    teams_adjustable_by,
    versions_of,
)
from quotaflow.targets.decompose import Allocation
from quotaflow.targets.services import RESPLIT, SPLIT_ON, breakdown, outside_split
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language

bp = Blueprint("targets", __name__)


def _rows(root: Allocation, allowed: set[int] | None) -> list[dict[str, Any]]:
    """The tree as rows (depth first), each saying whether its amount may be moved here."""
    rows: list[dict[str, Any]] = []

    def visit(node: Allocation, depth: int, movable: bool) -> None:
        rows.append({"node": node, "depth": depth, "movable": movable})
        mine = allowed is None or (node.node.id in allowed and node.node.kind != "rep")
        for child in node.children:
            visit(child, depth + 1, bool(mine and len(node.children) > 1))

    visit(root, 0, False)
    if allowed is None:
        return rows
    return [
        r
        for r in rows
        if r["movable"] or (r["node"].node.kind != "rep" and r["node"].node.id in allowed)
    ]


def _plan_pack(pack_id: str, plan_id: str) -> CompiledPack:
    """The active pack when it has this target plan; else 404."""
    try:
        pack = active_pack(request_session(), pack_id)
    except PackNotInstalled:
        abort(404)
    if plan_id not in pack.target_plans:
        abort(404)
    return pack


def _page(pack_id: str, plan_id: str, status: int = 200, **form: Any) -> ResponseReturnValue:
    session = request_session()
    pack = _plan_pack(pack_id, plan_id)
    allowed = teams_adjustable_by(session, pack, current_user, date.today())
    if allowed is not None and not allowed:
        abort(403)
    plan = breakdown(session, pack, plan_id, today=date.today())
    tier = "ideal" if "ideal" in plan.tiers else plan.main_tier
    versions = versions_of(session, pack.id, plan_id)
    people = {
        u.id: u.display_name
        for u in session.query(User).filter(User.id.in_({v.changed_by for v in versions}))
    }
    # versions name the parts as the table does (a key stays for a part no longer there)
    names = {a.node.key: a.node.name for a in plan.tiers[tier].walk()}
    outside = [
        o for o in outside_split(session, pack, plan_id, date.today(), plan)
        if allowed is None or o.team_id in allowed
    ]  # fmt: skip
    return render_template(
        "targets/plan.html", pack=pack, plan=plan, tier=tier, definition=pack.target_plans[plan_id],
        rows=_rows(plan.tiers[tier], allowed), versions=list(reversed(versions)), people=people,
        form=form, names=names, resplit=RESPLIT, split_on=SPLIT_ON, outside=outside,
    ), status  # fmt: skip


@bp.get("/targets/<pack_id>/<plan_id>")
def plan_page(pack_id: str, plan_id: str) -> ResponseReturnValue:
    return _page(pack_id, plan_id)


@bp.post("/targets/<pack_id>/<plan_id>/resplit")
def resplit(pack_id: str, plan_id: str) -> ResponseReturnValue:
    """Split the plan again on today's org (administrators), as a version."""
    session = request_session()
    pack = _plan_pack(pack_id, plan_id)
    if not current_user.is_admin:
        abort(403)
    reason = request.form.get("reason", "")
    try:
        row = resplit_target(
            session, pack, plan_id, reason=reason, actor=current_user, today=date.today(),
            locale=current_language(),
        )  # fmt: skip
    except QuotaflowError as exc:
        session.rollback()
        return _page(pack_id, plan_id, 400, resplit_reason=reason, resplit_error=str(exc))
    session.commit()
    flash(_("Saved as version %(n)s of the split.", n=row.version_no), "success")
    return redirect(url_for("targets.plan_page", pack_id=pack_id, plan_id=plan_id))


@bp.post("/targets/<pack_id>/<plan_id>/adjust")
def adjust(pack_id: str, plan_id: str) -> ResponseReturnValue:
    session = request_session()
    pack = _plan_pack(pack_id, plan_id)
    allowed = teams_adjustable_by(session, pack, current_user, date.today())
    if allowed is not None and not allowed:
        abort(403)
    node, amount, reason = (request.form.get(k, "") for k in ("node", "amount", "reason"))
    try:
        row = adjust_target(
            session, pack, plan_id, node_key=node, amount=amount, reason=reason,
            actor=current_user, today=date.today(), locale=current_language(),
        )  # fmt: skip
    except QuotaflowError as exc:
        session.rollback()
        return _page(pack_id, plan_id, 400, node=node, amount=amount, reason=reason, error=str(exc))
    session.commit()
    flash(_("Saved as version %(n)s of the split.", n=row.version_no), "success")
    return redirect(url_for("targets.plan_page", pack_id=pack_id, plan_id=plan_id))


@bp.errorhandler(QuotaflowError)
def _plan_error(exc: QuotaflowError) -> ResponseReturnValue:
    """A plan that cannot be split as the pack says (a manual amount for a team gone, a
    negative weight): the reason on the home page, not a server error."""
    flash(said_in(current_language(), exc), "error")
    return redirect(url_for("core.home"))
