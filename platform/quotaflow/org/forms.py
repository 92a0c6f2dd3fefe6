"""Admin forms: add a user."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, PasswordField, SelectField, StringField
from wtforms.fields import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, Optional, ValidationError

from quotaflow.org.services import MIN_PASSWORD_LENGTH, USERNAME_RE


class AddUserForm(FlaskForm):
    username = StringField(
        _l("Username"),
        validators=[DataRequired(), Length(max=80)],
        render_kw={"autocapitalize": "none"},
    )
    display_name = StringField(_l("Name"), validators=[DataRequired(), Length(max=200)])
    email = EmailField(_l("E-mail"), validators=[Optional(), Length(max=254)])
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=1000)],
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
        render_kw={"autocomplete": "new-password"},
    )
    team = SelectField(_l("Team"), choices=[], validate_choice=True)
    role = SelectField(_l("Role"), choices=[], validate_choice=True)
    locale = SelectField(
        _l("Language"), choices=[SelectChoice("en", "English"), SelectChoice("zh", "中文")]
    )
    is_admin = BooleanField(_l("Administrator"))

    def validate_username(self, field: StringField) -> None:
        field.data = (field.data or "").strip().lower()
        if not USERNAME_RE.match(field.data):
            raise ValidationError(_l("Use 2-80 lower-case letters, digits, '.', '_' or '-'."))

    def validate_role(self, field: SelectField) -> None:
        if self.team.data and not field.data:
            raise ValidationError(_l("Choose a role in the team."))
