"""Top-level pages: home and health."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, jsonify, render_template, request
from flask_login import current_user
from sqlalchemy import select, text

from quotaflow.errors import QuotaflowError
from quotaflow.forms.wtf import record_title
from quotaflow.ids import id_from
from quotaflow.org.models import User
from quotaflow.org.roles import Capability, capabilities_of, main_capability
from quotaflow.packs.services import active_pack, installed_packs
from quotaflow.records.access import visible_records
from quotaflow.records.models import Record
from quotaflow.targets.services import Breakdowns
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
        focus = id_from(request.args.get("team")) if role == "manager" else None
        plans = Breakdowns(session, date.today())  # the bars' and the to-dos' alike
        progress, opened, below = _progress(session, role, focus, plans)
        context.update(progress=progress, opened_team=opened, openable=below)
        from quotaflow.web.todos import todos

        context["todos"] = todos(session, current_user, role, plans.today, plans)
    else:
        from quotaflow.web.todos import org_todos, target_todos

        today = date.today()
        context["todos"] = target_todos(session, current_user, today) + org_todos(session, today)
    return render_template("home.html", **context)


def _progress(
    session: Any, role: str, focus: int | None, plans: Breakdowns
) -> tuple[list[Any], Any, set[int]]:
    """(pack, plan, bars) of every target plan running today: a rep's own; a manager's teams,
    the teams right below them and the reps seated in them (or, with `focus`, one team under
    them opened the same way); the team opened, if any; the teams whose rows open them."""
    from quotaflow.org.models import Team
    from quotaflow.org.roles import roles_with
    from quotaflow.org.services import manager_scope
    from quotaflow.packs.services import active_packs
    from quotaflow.targets.progress import progress

    today = plans.today
    out, opened, below = [], None, set()
    for pack in active_packs(session):
        reps: list[int] = [current_user.id] if role == "rep" else []
        teams: list[int] = []
        if role == "manager":
            scope = manager_scope(
                session, current_user.id,
                roles_with(Capability.MANAGER, pack.role_capabilities),
                roles_with(Capability.REP, pack.role_capabilities), today, focus,
            )  # fmt: skip
            teams, reps = scope.teams, list(scope.reps)
            below.update(scope.below)
            if scope.focus is not None:
                opened = session.get(Team, scope.focus)
        for plan_id in pack.target_plans:
            try:
                bars = progress(
                    session, pack, plan_id, reps=reps, teams=teams, today=today, plans=plans
                )
            except QuotaflowError:  # a plan that cannot be split says why on its own page
                continue
            if bars:
                out.append((pack, pack.target_plans[plan_id], bars))
    return out, opened, below


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
