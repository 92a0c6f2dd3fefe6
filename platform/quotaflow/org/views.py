"""Admin pages: users (list, add, deactivate) and the team tree. Admins only."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields import SelectChoice

from quotaflow.audit import record_event
from quotaflow.auth import admin_required
from quotaflow.org.forms import AddUserForm
from quotaflow.org.models import Team, User
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES
from quotaflow.org.services import (
    OrgError,
    add_membership,
    add_user,
    current_memberships,
    set_active,
    team_tree,
)
from quotaflow.timeutil import utcnow
from quotaflow.web import request_session

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.get("/users")
@admin_required
def users() -> ResponseReturnValue:
    """Every user with their current teams and roles."""
    return _users_page(_add_form())


@bp.post("/users")
@admin_required
def add() -> ResponseReturnValue:
    """Create a user (and optionally their membership from today)."""
    form = _add_form()
    if not form.validate_on_submit():
        return _users_page(form), 400
    db = request_session()
    try:
        user = add_user(
            db,
            username=form.username.data,
            display_name=form.display_name.data.strip(),
            password=form.password.data,
            email=form.email.data or None,
            is_admin=form.is_admin.data,
            locale=form.locale.data,
        )
        if form.team.data:
            team = db.get(Team, int(form.team.data))
            assert team is not None  # validate_choice guarantees it
            add_membership(
                db, user=user, team=team, role=form.role.data, valid_from=utcnow().date()
            )
    except OrgError as exc:
        db.rollback()
        form.username.errors = [*form.username.errors, str(exc)]
        return _users_page(form), 400
    _audit("user_add", user, team=form.team.data or "", role=form.role.data or "")
    db.commit()
    flash(_("User %(name)s added.", name=user.username), "success")
    return redirect(url_for("admin.users"))


@bp.post("/users/<int:user_id>/deactivate")
@admin_required
def deactivate(user_id: int) -> ResponseReturnValue:
    """Stop a user signing in; they are signed out at their next request."""
    return _set_active(user_id, False)


@bp.post("/users/<int:user_id>/activate")
@admin_required
def activate(user_id: int) -> ResponseReturnValue:
    """Let a deactivated user sign in again."""
    return _set_active(user_id, True)


@bp.get("/teams")
@admin_required
def teams() -> ResponseReturnValue:
    """The org tree with who is in each team today."""
    tree = team_tree(request_session(), utcnow().date())
    return render_template("admin/teams.html", tree=tree)


def _set_active(user_id: int, active: bool) -> ResponseReturnValue:
    db = request_session()
    user = db.get(User, user_id)
    if user is None:
        abort(404)
    if user.id == current_user.id and not active:
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for("admin.users"))
    set_active(user, active)
    _audit("user_activate" if active else "user_deactivate", user)
    db.commit()
    if active:
        flash(_("%(name)s can sign in again.", name=user.username), "success")
    else:
        flash(_("%(name)s is deactivated.", name=user.username), "success")
    return redirect(url_for("admin.users"))


def _add_form() -> AddUserForm:
    form = AddUserForm()
    teams = request_session().scalars(select(Team).order_by(Team.name))
    form.team.choices = [SelectChoice("", _("(no team)"))]
    form.team.choices += [SelectChoice(str(t.id), t.name) for t in teams]
    form.role.choices = [SelectChoice("", "—")]
    form.role.choices += [SelectChoice(r) for r in sorted(DEFAULT_ROLE_CAPABILITIES)]
    return form


def _users_page(form: AddUserForm) -> str:
    db = request_session()
    people = db.scalars(select(User).order_by(User.username)).all()
    memberships = current_memberships(db, utcnow().date())
    return render_template("admin/users.html", users=people, memberships=memberships, form=form)


def _audit(action: str, user: User, **details: str) -> None:
    record_event(
        request_session(),
        actor=current_user.username,
        action=action,
        object_type="user",
        object_id=user.username,
        details=details,
    )
