"""Admin pages: users (list, add, a page each to move them between teams and set their
password, deactivate) and teams (the tree, add, a page each to rename or move them), admins
only; and everyone's own account page (their teams and roles, a new password)."""

from __future__ import annotations

from collections.abc import Set

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user, login_user
from sqlalchemy import select
from wtforms.fields import SelectChoice

from quotaflow.audit import record_event
from quotaflow.auth import SignedInUser, admin_required
from quotaflow.auth.services import Outcome, change_own_password
from quotaflow.auth.views import client_ip, policy
from quotaflow.messages import said_in
from quotaflow.org.forms import (
    AddUserForm,
    ChangePasswordForm,
    LeaveForm,
    MoveUserForm,
    SetPasswordForm,
    TeamForm,
    UserDetailsForm,
)
from quotaflow.org.models import Team, User
from quotaflow.org.roles import DEFAULT_ROLE_CAPABILITIES
from quotaflow.org.services import (
    OrgError,
    add_membership,
    add_team,
    add_user,
    change_details,
    change_team,
    current_memberships,
    end_memberships,
    inactive_in_teams,
    memberships_of,
    move_user,
    set_active,
    set_password,
    team_and_subteams,
    team_tree,
)
from quotaflow.packs.definitions import label_text, readable_id
from quotaflow.packs.services import active_packs
from quotaflow.timeutil import utcnow
from quotaflow.web import request_session
from quotaflow.web.i18n import current_language, date_filter

bp = Blueprint("admin", __name__, url_prefix="/admin")
account_bp = Blueprint("account", __name__, url_prefix="/account")


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
        form.username.errors = [*form.username.errors, said_in(current_language(), exc)]
        return _users_page(form), 400
    _audit("user_add", user, team=form.team.data or "", role=form.role.data or "")
    db.commit()
    flash(_("User %(name)s added.", name=user.username), "success")
    return redirect(url_for("admin.users"))


@bp.get("/users/<int:user_id>")
@admin_required
def user_page(user_id: int) -> ResponseReturnValue:
    """One user: their details, memberships over time, a move to another team, a password."""
    return _user_page(_user_or_404(user_id))


@bp.post("/users/<int:user_id>/details")
@admin_required
def details(user_id: int) -> ResponseReturnValue:
    """Change a user's name, e-mail, language and administrator flag."""
    user = _user_or_404(user_id)
    form = UserDetailsForm()
    if not form.validate_on_submit():
        return _user_page(user, details_form=form), 400
    db = request_session()
    try:
        changes = change_details(
            user, display_name=form.display_name.data or "", email=form.email.data,
            locale=form.locale.data or "en", is_admin=bool(form.is_admin.data),
            by=db.get(User, current_user.id),
        )  # fmt: skip
    except OrgError as exc:
        db.rollback()
        form.display_name.errors = [*form.display_name.errors, said_in(current_language(), exc)]
        return _user_page(user, details_form=form), 400
    if changes:
        record_event(
            db, actor=current_user.username, action="user_change", object_type="user",
            object_id=user.username, details=changes,
        )  # fmt: skip
        db.commit()
        flash(_("%(name)s saved.", name=user.username), "success")
    else:
        flash(_("Nothing changed."), "info")
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.post("/users/<int:user_id>/move")
@admin_required
def move(user_id: int) -> ResponseReturnValue:
    """From a day on, the user is in another team (or has another role); before it, as was."""
    user = _user_or_404(user_id)
    form = _move_form()
    if not form.validate_on_submit():
        return _user_page(user, move_form=form), 400
    db = request_session()
    team = db.get(Team, int(form.team.data))
    assert team is not None  # validate_choice guarantees it
    try:
        move_user(db, user, team=team, role=form.role.data, on=form.valid_from.data)
    except OrgError as exc:
        db.rollback()
        form.valid_from.errors = [*form.valid_from.errors, said_in(current_language(), exc)]
        return _user_page(user, move_form=form), 400
    _audit("user_move", user, team=team.key, role=form.role.data,
           valid_from=form.valid_from.data.isoformat())  # fmt: skip
    db.commit()
    flash(
        _("%(name)s is in %(team)s from %(day)s.", name=user.username, team=team.name,
          day=form.valid_from.data.isoformat()),
        "success",
    )  # fmt: skip
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.post("/users/<int:user_id>/leave")
@admin_required
def leave(user_id: int) -> ResponseReturnValue:
    """From a day on, the user is in no team (they left); before it, as was."""
    user = _user_or_404(user_id)
    form = LeaveForm()
    if not form.validate_on_submit():
        return _user_page(user, leave_form=form), 400
    db = request_session()
    day = form.left_on.data
    try:
        ended = end_memberships(db, user, day)
    except OrgError as exc:
        db.rollback()
        form.left_on.errors = [*form.left_on.errors, said_in(current_language(), exc)]
        return _user_page(user, leave_form=form), 400
    if not ended:
        form.left_on.errors = [*form.left_on.errors, _("They are in no team on that day.")]
        return _user_page(user, leave_form=form), 400
    _audit("user_leave", user, left_on=day.isoformat())
    db.commit()
    flash(_("%(name)s is in no team from %(day)s.", name=user.display_name, day=date_filter(day)),
          "success")  # fmt: skip
    return redirect(url_for("admin.user_page", user_id=user.id))


@bp.post("/users/<int:user_id>/password")
@admin_required
def password(user_id: int) -> ResponseReturnValue:
    """Set a user's password; their signed-in sessions end."""
    user = _user_or_404(user_id)
    form = SetPasswordForm()
    if not form.validate_on_submit():
        return _user_page(user, password_form=form), 400
    try:
        set_password(user, form.password.data)
    except OrgError as exc:
        form.password.errors = [*form.password.errors, said_in(current_language(), exc)]
        return _user_page(user, password_form=form), 400
    _audit("user_password", user)
    request_session().commit()
    if user.id == current_user.id:
        login_user(SignedInUser.of(user))  # their other sessions end, not this one
    flash(_("New password set for %(name)s.", name=user.username), "success")
    return redirect(url_for("admin.user_page", user_id=user.id))


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
    """The org tree with who is in each team today, and a form to add a team."""
    return _teams_page(_team_form())


@bp.post("/teams")
@admin_required
def add_team_view() -> ResponseReturnValue:
    """Add a team under another (or at the top)."""
    form = _team_form()
    if not form.validate_on_submit():
        return _teams_page(form), 400
    db = request_session()
    try:
        team = add_team(db, key=form.key.data, name=form.name.data, parent=_parent(form))
    except OrgError as exc:
        db.rollback()
        form.key.errors = [*form.key.errors, said_in(current_language(), exc)]
        return _teams_page(form), 400
    _audit_team("team_add", team)
    db.commit()
    flash(_("Team %(name)s added.", name=team.name), "success")
    return redirect(url_for("admin.teams"))


@bp.get("/teams/<int:team_id>")
@admin_required
def team_page(team_id: int) -> ResponseReturnValue:
    """One team: rename it or put it under another."""
    team = _team_or_404(team_id)
    form = _team_form(team)
    if not form.is_submitted():
        form.name.data = team.name
        form.parent.data = str(team.parent_id or "")
    return _team_page(team, form)


@bp.post("/teams/<int:team_id>")
@admin_required
def change_team_view(team_id: int) -> ResponseReturnValue:
    """Save a team's new name or place in the tree."""
    team = _team_or_404(team_id)
    form = _team_form(team)
    form.key.data = team.key  # keys stay as they were made
    if not form.validate_on_submit():
        return _team_page(team, form), 400
    db = request_session()
    try:
        change_team(db, team, name=form.name.data, parent=_parent(form))
    except OrgError as exc:
        db.rollback()
        form.parent.errors = [*form.parent.errors, said_in(current_language(), exc)]
        return _team_page(team, form), 400
    _audit_team("team_change", team)
    db.commit()
    flash(_("Team %(name)s saved.", name=team.name), "success")
    return redirect(url_for("admin.teams"))


def _team_page(team: Team, form: TeamForm) -> str:
    today = utcnow().date()
    members = [
        m for ms in current_memberships(request_session(), today).values() for m in ms
        if m.team_id == team.id
    ]  # fmt: skip
    members.sort(key=lambda m: m.user.display_name)
    return render_template(
        "admin/team.html", team=team, form=form, members=members, role_labels=_role_labels()
    )


def _team_or_404(team_id: int) -> Team:
    team = request_session().get(Team, team_id)
    if team is None:
        abort(404)
    return team


def _team_form(team: Team | None = None) -> TeamForm:
    """The form with every team it may go under (for a team: not itself nor its sub-teams)."""
    form = TeamForm()
    own = set(team_and_subteams(request_session(), team.id)) if team is not None else set()
    form.parent.choices = [SelectChoice("", _("(top level)")), *_team_choices(leaving_out=own)]
    return form


def _parent(form: TeamForm) -> Team | None:
    return request_session().get(Team, int(form.parent.data)) if form.parent.data else None


def _teams_page(form: TeamForm) -> str:
    tree = team_tree(request_session(), utcnow().date())
    return render_template("admin/teams.html", tree=tree, role_labels=_role_labels(), form=form)


def _audit_team(action: str, team: Team) -> None:
    parent = request_session().get(Team, team.parent_id) if team.parent_id else None
    _event(action, "team", team.key, name=team.name, parent=parent.key if parent else "")


def _user_or_404(user_id: int) -> User:
    user = request_session().get(User, user_id)
    if user is None:
        abort(404)
    return user


def _set_active(user_id: int, active: bool) -> ResponseReturnValue:
    db = request_session()
    user = _user_or_404(user_id)
    if user.id == current_user.id and not active:
        flash(_("You cannot deactivate yourself."), "error")
        return redirect(url_for("admin.users"))
    set_active(user, active)
    _audit("user_activate" if active else "user_deactivate", user)
    db.commit()
    from_page = request.form.get("from") == "page"  # the person's own page, not the list
    if active:
        flash(_("%(name)s can sign in again.", name=user.display_name), "success")
    else:
        flash(_("%(name)s is deactivated.", name=user.display_name), "success")
    # someone deactivated but still in a team: their page says so, where the day they left is set
    still = not active and inactive_in_teams(db, utcnow().date(), user.id)
    if from_page or still:
        return redirect(url_for("admin.user_page", user_id=user.id))
    return redirect(url_for("admin.users"))


def _add_form() -> AddUserForm:
    form = AddUserForm()
    form.team.choices = [SelectChoice("", _("(no team)")), *_team_choices()]
    form.role.choices = [SelectChoice("", "—"), *_role_choices()]
    return form


def _move_form() -> MoveUserForm:
    form = MoveUserForm()
    form.team.choices = [SelectChoice("", "—"), *_team_choices()]
    form.role.choices = [SelectChoice("", "—"), *_role_choices()]
    if form.valid_from.data is None and not form.is_submitted():
        form.valid_from.data = utcnow().date()
    return form


def _team_choices(leaving_out: Set[int] = frozenset()) -> list[SelectChoice]:
    teams = request_session().scalars(select(Team).order_by(Team.name))
    return [SelectChoice(str(t.id), t.name) for t in teams if t.id not in leaving_out]


def _role_choices() -> list[SelectChoice]:
    """The team roles a membership may have, by their names in the reader's language."""
    labels = _role_labels()
    declared = {
        role.id
        for pack in active_packs(request_session())
        for role in pack.pack.roles
        if role.capability != "admin"  # admin is a user flag, not a team role
    }
    # the packs' own roles when they declare any (the built-in names would only be noise
    # beside them), else the built-in ones
    team_roles = declared or set(DEFAULT_ROLE_CAPABILITIES)
    named = sorted((labels.get(r) or readable_id(r), r) for r in team_roles)
    return [SelectChoice(role, label) for label, role in named]


def _role_labels() -> dict[str, str]:
    """Role name -> its label in the reader's language, as the installed packs declare them
    (a role no pack labels shows as its name)."""
    language = current_language()
    return {r: readable_id(r) for r in DEFAULT_ROLE_CAPABILITIES} | {
        role.id: label_text(role.label, language, role.id)
        for pack in active_packs(request_session())
        for role in pack.pack.roles
    }


def _user_page(
    user: User,
    *,
    move_form: MoveUserForm | None = None,
    password_form: SetPasswordForm | None = None,
    details_form: UserDetailsForm | None = None,
    leave_form: LeaveForm | None = None,
) -> str:
    """The user's page; a form given is the one refused, shown with its input and errors."""
    today = utcnow().date()
    if leave_form is None:
        leave_form = LeaveForm()
        leave_form.left_on.data = today  # who leaves is most often leaving now
    still_in = inactive_in_teams(request_session(), today, user.id)
    return render_template(
        "admin/user.html", user=user, memberships=memberships_of(request_session(), user),
        move_form=move_form or _move_form(), password_form=password_form or SetPasswordForm(),
        details_form=details_form or UserDetailsForm(obj=user),
        leave_form=leave_form, today=today, role_labels=_role_labels(),
        still_in=still_in[0][1] if still_in else [],
    )  # fmt: skip


def _users_page(form: AddUserForm) -> str:
    db = request_session()
    people = db.scalars(select(User).order_by(User.username)).all()
    memberships = current_memberships(db, utcnow().date())
    return render_template(
        "admin/users.html", users=people, memberships=memberships, form=form,
        role_labels=_role_labels(),
    )  # fmt: skip


def _audit(action: str, user: User, **details: str) -> None:
    _event(action, "user", user.username, **details)


def _event(action: str, object_type: str, object_id: str, **details: str) -> None:
    record_event(
        request_session(), actor=current_user.username, action=action,
        object_type=object_type, object_id=object_id, details=details,
    )  # fmt: skip


# --- everyone's own account ------------------------------------------------------------------


@account_bp.get("")
def account() -> ResponseReturnValue:
    """The signed-in person's own page: who they are, their teams and roles, a new password."""
    return _account_page(ChangePasswordForm())


@account_bp.post("/password")
def change_password() -> ResponseReturnValue:
    """Replace one's own password; this session stays signed in, every other one ends."""
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _account_page(form), 400
    db = request_session()
    user = _user_or_404(current_user.id)
    try:
        result = change_own_password(
            db, user, form.current.data, form.password.data, client_ip(), policy=policy()
        )
    except OrgError as exc:
        db.rollback()
        form.password.errors = [*form.password.errors, said_in(current_language(), exc)]
        return _account_page(form), 400
    db.commit()  # a failure counts towards the sign-in limit: kept whatever the outcome
    if result.outcome is Outcome.THROTTLED:
        minutes = max(1, (result.retry_after + 59) // 60)
        form.current.errors = [
            _("Too many failed attempts. Try again in %(minutes)d minutes.", minutes=minutes)
        ]
        return _account_page(form), 429
    if result.outcome is not Outcome.OK:
        form.current.errors = [_("This is not your current password.")]
        return _account_page(form), 400
    login_user(SignedInUser.of(user))
    flash(_("Your password is changed. Your other sessions are signed out."), "success")
    return redirect(url_for("account.account"))


def _account_page(form: ChangePasswordForm) -> str:
    user = _user_or_404(current_user.id)
    return render_template(
        "account.html", user=user, memberships=memberships_of(request_session(), user),
        form=form, today=utcnow().date(), role_labels=_role_labels(),
    )  # fmt: skip
