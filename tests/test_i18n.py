"""Languages: locale choice, the switcher, compiled catalogs, formatting filters, pack labels."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from sqlalchemy import select

from quotaflow.org.models import User
from quotaflow.web.i18n import SOURCE_DIR, compile_catalogs, label
from tests.conftest import REPO, AuthActions, csrf_token

ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}


def test_language_comes_from_the_browser_then_english(client: FlaskClient) -> None:
    assert "<h1>登录</h1>" in client.get("/login", headers=ZH).get_data(as_text=True)
    page = client.get("/login", headers={"Accept-Language": "de-DE"}).get_data(as_text=True)
    assert "<h1>Sign in</h1>" in page and '<html lang="en">' in page
    assert "<h1>Sign in</h1>" in client.get("/login").get_data(as_text=True)


def test_the_users_language_wins_over_the_browser(auth: AuthActions, make_user) -> None:
    make_user("qian.hong", locale="zh")
    auth.login("qian.hong")
    page = auth.client.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "退出登录" in page and '<html lang="zh">' in page


def test_wrong_password_message_is_translated(client: FlaskClient, make_user) -> None:
    make_user("li.wei")
    client.get("/login", headers=ZH)
    data = {"username": "li.wei", "password": "nope-nope", "csrf_token": csrf_token(client)}
    page = client.post("/login", data=data, headers=ZH).get_data(as_text=True)
    assert "用户名或密码错误。" in page


def test_switcher_before_sign_in_is_kept_in_the_session(client: FlaskClient) -> None:
    response = client.post(
        "/locale", data={"locale": "zh", "next": "/login", "csrf_token": csrf_token(client)}
    )
    assert response.headers["Location"] == "/login"
    page = client.get("/login").get_data(as_text=True)
    assert "<h1>登录</h1>" in page and 'value="en"' in page and "English" in page


def test_the_language_picked_on_the_sign_in_page_stays_after_signing_in(
    app: Flask, auth: AuthActions, make_user
) -> None:
    make_user("li.wei")  # English on their account
    auth.post("/locale", {"locale": "zh", "next": "/login"})
    auth.login("li.wei")
    assert "退出登录" in auth.client.get("/").get_data(as_text=True)
    with app.extensions["quotaflow.sessions"]() as session:  # and is theirs from now on
        assert session.scalar(select(User.locale).where(User.username == "li.wei")) == "zh"


def test_switcher_after_sign_in_is_saved_on_the_user(
    app: Flask, auth: AuthActions, make_user
) -> None:
    make_user("li.wei")
    auth.login("li.wei")
    auth.post("/locale", {"locale": "zh", "next": "/"})
    with app.extensions["quotaflow.sessions"]() as session:
        assert session.scalar(select(User.locale).where(User.username == "li.wei")) == "zh"
    auth.logout()
    auth.login("li.wei")  # a new session in another browser: still Chinese
    assert "退出登录" in auth.client.get("/").get_data(as_text=True)


def test_switcher_ignores_unknown_languages_and_foreign_next(auth: AuthActions) -> None:
    response = auth.post("/locale", {"locale": "fr", "next": "//evil.example/"})
    assert response.headers["Location"] == "/"
    assert "<h1>Sign in</h1>" in auth.client.get("/login").get_data(as_text=True)


def test_catalogs_are_compiled_into_the_instance_folder_only_when_changed(
    app: Flask, tmp_path: Path
) -> None:
    mo = Path(app.instance_path) / "translations" / "zh" / "LC_MESSAGES" / "messages.mo"
    assert mo.exists()
    assert not list(SOURCE_DIR.rglob("*.mo")), "compiled catalogs must not be in the source"
    before = mo.stat().st_mtime_ns
    compile_catalogs(SOURCE_DIR, Path(app.instance_path) / "translations")
    assert mo.stat().st_mtime_ns == before
    source = tmp_path / "src" / "zh" / "LC_MESSAGES"
    source.mkdir(parents=True)
    po = (
        'msgid ""\nmsgstr "Content-Type: text/plain; charset=utf-8\\n"\n\nmsgid "Hi"\nmsgstr "%s"\n'
    )
    (source / "messages.po").write_text(po % "你好", encoding="utf-8")
    out = compile_catalogs(tmp_path / "src", tmp_path / "out")
    first = (out / "zh" / "LC_MESSAGES" / "messages.mo").read_bytes()
    (source / "messages.po").write_text(po % "您好", encoding="utf-8")
    compile_catalogs(tmp_path / "src", tmp_path / "out")
    assert (out / "zh" / "LC_MESSAGES" / "messages.mo").read_bytes() != first


def test_every_ui_string_has_a_chinese_translation(tmp_path: Path) -> None:
    """Extract messages from the code and templates now; each needs a zh translation."""
    pot = tmp_path / "messages.pot"
    subprocess.run(
        [
            str(Path(sys.executable).parent / "pybabel"),
            "-q",
            "extract",
            "-F",
            str(SOURCE_DIR / "babel.cfg"),
            "-k",
            "_l",
            "-k",
            "N_",
            "-o",
            str(pot),
            ".",
        ],
        cwd=REPO,
        check=True,
    )
    with pot.open("rb") as fh:
        wanted = {m.id for m in read_po(fh) if m.id}
    with (SOURCE_DIR / "zh" / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        translated = {m.id for m in read_po(fh) if m.id and m.string and not m.fuzzy}
    missing = sorted(str(m) for m in wanted - translated)
    assert not missing, f"translate these in translations/zh/LC_MESSAGES/messages.po: {missing}"


# --- labels and formatting -------------------------------------------------------------------


def test_label_picks_the_language_with_fallback() -> None:
    both = {"en": "Deal", "zh": "商机"}
    assert label(both, "zh") == "商机" and label(both, "en") == "Deal"
    assert label({"en": "Deal"}, "zh") == "Deal"
    assert label({"ja": "取引", "fr": "Affaire"}, "zh") == "取引"
    assert label({"en": "", "zh": "商机"}, "en") == "商机"
    assert label("Deal", "zh") == "Deal" and label(None) == "" and label({}) == ""


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["Deal", "Mar 5, 2027", "CN¥1,234.50", "1,234,567.891", "16%", "—", "$5.00",
                "CN¥1,235", "-$3,028,250", "—", "$5", "CN¥1,234.50"]),
        ("zh", ["商机", "2027年3月5日", "¥1,234.50", "1,234,567.891", "16%", "—", "US$5.00",
                "¥1,235", "-US$3,028,250", "—", "US$5", "¥1,234.50"]),
    ],
)  # fmt: skip
def test_filters_format_for_the_locale(app: Flask, language: str, expected: list[str]) -> None:
    template = (
        "{{ label(l) }}|{{ d|date }}|{{ m|money }}|{{ n|number }}|{{ p|percent }}|"
        "{{ none|money }}|{{ 5|money('USD') }}|{{ m|money(whole=True) }}|"
        "{{ gap|money('USD', whole=True) }}|{{ none|money(whole=True) }}|"
        "{{ 5|money('USD', trim=True) }}|{{ m|money(trim=True) }}"
    )
    values = {
        "l": {"en": "Deal", "zh": "商机"},
        "d": date(2027, 3, 5),
        "m": Decimal("1234.5"),
        "n": Decimal("1234567.891"),
        "p": 0.156,
        "none": None,
        "gap": Decimal("-3028249.50"),
    }
    headers = {"Accept-Language": language}
    with app.test_request_context("/", headers=headers):
        assert render_template_string(template, **values).split("|") == expected


def test_dates_accept_iso_strings_datetimes_and_blanks(app: Flask) -> None:
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        out = render_template_string(
            "{{ a|date }}|{{ b|date }}|{{ c|date }}|{{ d|datetime('short') }}",
            a="2027-03-05",
            b=datetime(2027, 3, 5, 23, tzinfo=UTC),
            c="",
            d=datetime(2027, 3, 5, 9, 30, tzinfo=UTC),
        )
    assert out == "Mar 5, 2027|Mar 5, 2027|—|3/5/27, 9:30\u202fAM"
    # a moment by default: the date as every page writes it, then the time to the minute
    with app.test_request_context("/", headers={"Accept-Language": "zh"}):
        zh = render_template_string("{{ d|datetime }}", d=datetime(2027, 3, 5, 9, 30, tzinfo=UTC))
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        en = render_template_string("{{ d|datetime }}", d=datetime(2027, 3, 5, 9, 30, tzinfo=UTC))
    assert en.startswith("Mar 5, 2027, ") and en.endswith(("AM", "PM"))
    assert zh.startswith("2027年3月5日") and ":" in zh


def test_moments_are_shown_in_the_companys_time_zone(app: Flask) -> None:
    from quotaflow import db
    from quotaflow.packs.install import install_pack
    from quotaflow.packs.validate import load_pack
    from quotaflow.resources import stock_pack_dir

    moment = datetime(2026, 11, 30, 1, 40, tzinfo=UTC)
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        shanghai = render_template_string("{{ d|datetime }}", d=moment)
    assert shanghai == "Nov 30, 2026, 9:40\u202fAM"  # the stock pack's Asia/Shanghai, not UTC
    # a date-time field is a wall-clock time as typed: 09:30 stays 09:30 (not 17:30)
    from quotaflow.packs.definitions import FieldDef
    from quotaflow.records.pages import Display

    call_at = FieldDef(id="call_at", type="datetime")
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        typed = Display("CNY", "en")(call_at, "2026-07-01T09:30:00")
    assert typed == "7/1/26, 9:30\u202fAM"
    app.config["TIMEZONE"] = "Europe/Berlin"  # QUOTAFLOW_TIMEZONE: the server's setting wins
    with app.test_request_context("/", headers={"Accept-Language": "en"}):
        berlin = render_template_string("{{ d|datetime }}", d=moment)
    assert berlin == "Nov 30, 2026, 2:40\u202fAM"


def test_pack_labels_are_escaped(app: Flask) -> None:
    with app.test_request_context("/"):
        out = render_template_string("{{ label(l) }}", l={"en": "<script>x</script>"})
    assert out == "&lt;script&gt;x&lt;/script&gt;"


def test_field_errors_from_the_form_engine_follow_the_locale() -> None:
    """A rep working in Chinese reads why a field was refused in Chinese, parameters kept."""
    from quotaflow.forms.engine import parse_submission
    from quotaflow.packs.definitions import FieldDef, FormDef

    form = FormDef(
        kind="form",
        id="visit",
        label="Visit",
        fields=(
            FieldDef(id="km", type="number", min=1),
            FieldDef(id="day", type="date"),
        ),
    )
    _values, en = parse_submission(form, {"km": "0", "day": "24/11"})
    _values, zh = parse_submission(form, {"km": "0", "day": "24/11"}, "zh")
    assert en == {"km": ["must be at least 1"], "day": ["enter a date as YYYY-MM-DD"]}
    assert zh == {"km": ["不能小于 1"], "day": ["请按 YYYY-MM-DD 格式输入日期"]}
