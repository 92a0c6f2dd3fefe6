"""Admin forms: add a user, move them to a team, set their password; add and change teams."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import (
    DataRequired,
    EqualTo,
    InputRequired,
    Length,
    Optional,
    Regexp,
    ValidationError,
)

from quotaflow.org.services import EMAIL_RE, MIN_PASSWORD_LENGTH, USERNAME_RE


def new_password_fields(label: str) -> tuple[PasswordField, PasswordField]:
    """A new password and the same typed again (the second must be named `confirm`, beside a
    `password`)."""
    return (
        PasswordField(
            label,
            validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1000)],
            description=_l("At least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            render_kw={"autocomplete": "new-password"},
        ),
        PasswordField(
            _l("Repeat password"),
            validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
            render_kw={"autocomplete": "new-password"},
        ),
    )


EMAIL_VALIDATORS = [
    Optional(),
    Length(max=254),
    Regexp(EMAIL_RE, message=_l("Enter an e-mail address like name@example.com.")),
]
LANGUAGES = [SelectChoice("en", "English"), SelectChoice("zh", "中文")]


class UserDetailsForm(FlaskForm):
    """What an administrator may change about a person after adding them (the username stays:
    records, audit events and imports name people by it)."""

    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("E-mail"), validators=EMAIL_VALIDATORS)
    locale = SelectField(_l("Language"), choices=LANGUAGES)
    is_admin = BooleanField(_l("Administrator"))


class AddUserForm(FlaskForm):
    username = StringField(
        _l("Username"),
        validators=[DataRequired(), Length(max=80)],
        render_kw={"autocapitalize": "none"},
    )
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("E-mail"), validators=EMAIL_VALIDATORS)
    password, confirm = new_password_fields(_l("Password"))
    team = SelectField(_l("Team"), choices=[], validate_choice=True)
    role = SelectField(_l("Role"), choices=[], validate_choice=True)
    locale = SelectField(_l("Language"), choices=LANGUAGES)
    is_admin = BooleanField(_l("Administrator"))

    def validate_username(self, field: StringField) -> None:
        field.data = (field.data or "").strip().lower()
        if not USERNAME_RE.match(field.data):
            raise ValidationError(_l("Use 2-80 lower-case letters, digits, '.', '_' or '-'."))

    def validate_role(self, field: SelectField) -> None:
        if self.team.data and not field.data:
            raise ValidationError(_l("Choose a role in the team."))


class MoveUserForm(FlaskForm):
    """The team and role a user has from a day on (org.services.move_user)."""

    team = SelectField(_l("Team"), choices=[], validate_choice=True, validators=[DataRequired()])
    role = SelectField(_l("Role"), choices=[], validate_choice=True, validators=[DataRequired()])
    valid_from = DateField(
        _l("From"),
        validators=[InputRequired(message=_l("Enter the first day, e.g. 2026-12-01."))],
    )


class LeaveForm(FlaskForm):
    """The day a user stops being in any team (org.services.end_memberships)."""

    left_on = DateField(
        _l("Leaves on"),
        validators=[InputRequired(message=_l("Enter the first day, e.g. 2026-12-01."))],
        description=_l("The first day they are no longer in the team."),
    )


class SetPasswordForm(FlaskForm):
    """A new password for a user, typed twice."""

    password, confirm = new_password_fields(_l("New password"))


class ChangePasswordForm(FlaskForm):
    """A person's own new password: the current one first, the new one typed twice."""

    current = PasswordField(
        _l("Current password"),
        validators=[DataRequired(), Length(max=1000)],
        render_kw={"autocomplete": "current-password"},
    )
    password, confirm = new_password_fields(_l("New password"))


class TeamForm(FlaskForm):
    """A team's name and place in the tree; `key` only when it is added (keys stay)."""

    key = StringField(
        _l("Key"), validators=[DataRequired(), Length(max=80)], render_kw={"autocapitalize": "none"}
    )
    name = StringField(_l("Team name"), validators=[DataRequired(), Length(max=200)])
    parent = SelectField(_l("Under"), choices=[], validate_choice=True)

    def validate_key(self, field: StringField) -> None:
        field.data = (field.data or "").strip().lower()
