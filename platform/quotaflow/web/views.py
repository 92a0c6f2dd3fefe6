"""Top-level pages: home and health."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, jsonify, render_template
from flask_login import current_user
from sqlalchemy import select, text

from quotaflow.forms.wtf import record_title
from quotaflow.org.models import User
from quotaflow.org.roles import Capability, capabilities_of, main_capability
from quotaflow.packs.services import active_pack, installed_packs
from quotaflow.records.access import visible_records
from quotaflow.records.models import Record
from quotaflow.web import request_session

bp = Blueprint("core", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Liveness and database reachability, for load balancers."""
    request_session().execute(text("SELECT 1"))
    return jsonify(status="ok")


@bp.get("/")
def home():  # type: ignore[no-untyped-def]
    """Home per role: a rep's own recent records, a manager's team's, an admin's packs."""
    from quotaflow.records.pages import nav_items, recent_records

    session = request_session()
    packs = installed_packs(session)
    roles: dict[str, str] = {}
    for installed in packs:
        roles.update(active_pack(session, installed.id).role_capabilities)
    held = capabilities_of(session, current_user, date.today(), roles)
    role = (main_capability(held) or Capability.REP).value
    context: dict[str, Any] = {"packs": packs, "role": role, "forms": nav_items(session)}
    if role != "admin":
        base = visible_records(session, current_user, role_capabilities=roles)
        if role == "rep":
            base = base.where(Record.owner_id == current_user.id)
        recent, counts = recent_records(session, base)
        context.update(counts=counts, recent=_titled(session, recent), owners=_owners(recent))
        context["progress"] = _progress(session, role)
        from quotaflow.web.todos import todos

        context["todos"] = todos(session, current_user, role, date.today())
    return render_template("home.html", **context)


def _progress(session: Any, role: str) -> list[tuple[Any, list[Any]]]:
    """(pack, bars) of every target plan running today: a rep's own, or a manager's teams
    and the reps in them."""
    from quotaflow.org.models import Membership
    from quotaflow.org.roles import roles_with
    from quotaflow.org.services import team_and_subteams
    from quotaflow.packs.services import active_packs
    from quotaflow.targets.progress import progress

    today = date.today()
    valid = (Membership.valid_from <= today) & (
        Membership.valid_to.is_(None) | (Membership.valid_to > today)
    )
    out = []
    for pack in active_packs(session):
        reps: list[int] = [current_user.id] if role == "rep" else []
        teams: list[int] = []
        if role == "manager":
            managers = roles_with(Capability.MANAGER, pack.role_capabilities)
            teams = list(session.scalars(select(Membership.team_id).where(
                Membership.user_id == current_user.id, Membership.role.in_(managers), valid
            )))  # fmt: skip
            under = {t for team in teams for t in team_and_subteams(session, team)}
            rep_roles = roles_with(Capability.REP, pack.role_capabilities)
            reps = sorted(set(session.scalars(select(Membership.user_id).where(
                Membership.team_id.in_(under), Membership.role.in_(rep_roles), valid
            ))))  # fmt: skip
        for plan_id in pack.target_plans:
            bars = progress(session, pack, plan_id, reps=reps, teams=teams, today=today)
            if bars:
                out.append((pack, pack.target_plans[plan_id], bars))
    return out


def _titled(session: Any, records: list[Record]) -> list[tuple[Record, str, str]]:
    from quotaflow.web.i18n import label

    out = []
    for record in records:
        form = active_pack(session, record.pack_id).forms.get(record.form_id)
        title = record_title(form, record) if form else f"#{record.id}"
        out.append((record, title, label(form.label) if form else record.form_id))
    return out


def _owners(records: list[Record]) -> dict[int, str]:
    ids = {r.owner_id for r in records}
    rows = request_session().execute(select(User.id, User.display_name).where(User.id.in_(ids)))
    return {uid: name for uid, name in rows}
