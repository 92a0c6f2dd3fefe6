"""Generated forms in the web app: every field type renders and is checked on the server,
the live preview, the user's language, and pack text shown as text (never as markup)."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from quotaflow import db
from quotaflow.packs.install import install_pack
from quotaflow.packs.models import PackVersion
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record
from tests.conftest import AuthActions
from tests.packfiles import write_pack

PACK = """\
kind: pack
id: acme
name: {en: ACME, zh: 艾克米}
version: 1.0.0
"""
DEAL = """\
kind: form
id: deal
label: {en: Deal, zh: 商机}
title_field: customer
fields:
  - {id: customer, type: text, required: true, max_length: 50, pattern: "[A-Za-z0-9 ]+"}
  - {id: notes, type: textarea, help: {en: Anything worth knowing, zh: 备注}}
  - {id: qty, type: number, min: 1, max: 100}
  - {id: amount, type: money, min: 0}
  - {id: discount, type: percent, min: 0, max: 0.5}
  - id: approval_note
    type: textarea
    visible_if: "discount > 0.15"
    required_if: "discount > 0.15"
  - {id: close_on, type: date}
  - {id: call_at, type: datetime}
  - id: industry
    type: choice
    label: {en: Industry, zh: 行业}
    choices:
      - {value: auto, label: {en: Automotive, zh: 汽车}}
      - energy
  - {id: tags, type: multichoice, choices: [hot, cold, repeat]}
  - {id: strategic, type: bool}
  - {id: score, type: rating, scale: 5}
  - {id: email, type: email}
  - {id: phone, type: phone}
  - {id: helper, type: user}
  - {id: visit, type: reference, form: visit}
  - {id: net, type: money, formula: "ROUND(amount * (1 - COALESCE(discount, 0)), 2)"}
  - {id: grade, type: choice, choices: [A, B, C], formula: "IF(amount >= 1000000, 'A', 'B')"}
  - {id: double_qty, type: computed, formula: "qty * 2"}
rules:
  - when: "discount > 0.3 and amount < 50000"
    error: {en: "Small deals get at most 30 % off", zh: 小额商机折扣不超过30%}
    fields: [discount]
"""
VISIT = """\
kind: form
id: visit
label: {en: Visit, zh: 拜访}
title_field: customer
fields:
  - {id: customer, type: text, required: true}
  - {id: visit_date, type: date, required: true}
"""
PIPELINE = """\
kind: pipeline
id: sales
form: deal
stages:
  - {id: lead, label: {en: Lead, zh: 线索}}
  - {id: quotation}
  - {id: won, outcome: won}
  - {id: lost, outcome: lost}
"""


def acme_files(**changes: str | None) -> dict[str, str]:
    """The test pack (currency USD); keyword arguments replace files (dots as '__': forms__deal)."""
    files: dict[str, str | None] = {
        "pack.yaml": PACK,
        "forms/deal.yaml": DEAL,
        "forms/visit.yaml": VISIT,
        "pipelines/sales.yaml": PIPELINE,
    }
    for key, text in changes.items():
        files[key.replace("__", "/").replace("_yaml", ".yaml")] = text
    return {k: v for k, v in files.items() if v is not None}


def install_files(app: Flask, folder: Path, files: dict[str, str]) -> int:
    """Install a pack written into `folder`; returns the new active version's id."""
    write_pack(folder, files)
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(folder), actor="test")
    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalars(select(PackVersion.id).order_by(PackVersion.id.desc())).first()


@pytest.fixture
def installer(app: Flask, tmp_path: Path) -> Callable[..., int]:
    """installer(files=None) installs the test pack (or `files`) as a new version."""
    return make_installer(app, tmp_path)


def make_installer(app: Flask, tmp_path: Path) -> Callable[..., int]:
    counter = iter(range(100))

    def install(files: dict[str, str] | None = None) -> int:
        return install_files(app, tmp_path / f"pack{next(counter)}", files or acme_files())

    return install


@pytest.fixture
def people(app: Flask, make_user) -> dict[str, int]:
    """An admin, a manager of team east with two reps, and a rep in team west (both teams
    directly under the company)."""
    return make_people(app, make_user)


def make_people(app: Flask, make_user) -> dict[str, int]:  # type: ignore[no-untyped-def]
    from quotaflow.org.services import ensure_team

    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        ensure_team(session, key="company", name="Company")
    return {
        "admin": make_user("boss", is_admin=True).id,
        "manager": make_user("wang.fang", team="east", role="sales_manager").id,
        "rep": make_user("li.wei", team="east", role="account_manager").id,
        "mate": make_user("zhang.min", team="east", role="account_manager").id,
        "other": make_user("zhao.lei", team="west", role="account_manager").id,
    }


@pytest.fixture
def rep(auth: AuthActions, installer, people) -> AuthActions:
    installer()
    auth.login("li.wei")
    return auth


def signing_in(app: Flask) -> Callable[[str], AuthActions]:
    """sign_in('li.wei') -> a fresh client signed in as that person."""

    def sign_in(username: str) -> AuthActions:
        auth = AuthActions(app.test_client())
        assert auth.login(username).status_code == 302
        return auth

    return sign_in


def version_id(page: str) -> str:
    found = re.search(r'name="pack_version_id" value="(\d+)"', page)
    assert found, "the form carries the pack version it was opened with"
    return found.group(1)


def field_errors(page: str, field_id: str) -> list[str]:
    block = re.search(rf'<div id="e-{field_id}"[^>]*>(.*?)</div>', page, re.S)
    assert block, f"no error block for {field_id}"
    return [html.unescape(m) for m in re.findall(r'field-error">([^<]*)<', block.group(1))]


def input_value(page: str, field_id: str) -> str:
    found = re.search(rf'<input[^>]*name="f-{field_id}"[^>]*>', page)
    assert found, f"no input for {field_id}"
    value = re.search(r'value="([^"]*)"', found.group(0))
    return html.unescape(value.group(1)) if value else ""


def post_deal(auth: AuthActions, data: dict[str, Any], url: str = "/forms/acme/deal/new"):  # type: ignore[no-untyped-def]
    page = auth.client.get("/forms/acme/deal/new").get_data(as_text=True)
    form = {"pack_version_id": version_id(page), **{f"f-{k}": v for k, v in data.items()}}
    return auth.post(url, form)


def stored(app: Flask) -> list[Record]:
    with app.extensions["quotaflow.sessions"]() as session:
        return list(session.scalars(select(Record).order_by(Record.id)))


# --- rendering -------------------------------------------------------------------------------


def test_every_field_type_renders(rep: AuthActions) -> None:
    response = rep.client.get("/forms/acme/deal/new")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    expected = {
        "customer": r'<input[^>]*maxlength="50"[^>]*name="f-customer"[^>]*type="text"',
        "notes": r'<textarea[^>]*name="f-notes"',
        "qty": r'<input[^>]*inputmode="decimal"[^>]*name="f-qty"',
        "amount": r'<span class="unit">\$</span><input[^>]*inputmode="decimal"[^>]*name="f-amount"',
        "discount": r'name="f-discount"[^>]*>\s*<span class="unit">%</span>',
        "approval_note": r'<textarea[^>]*name="f-approval_note"',
        "close_on": r'<input[^>]*name="f-close_on"[^>]*type="date"',
        "call_at": r'<input[^>]*name="f-call_at"[^>]*type="datetime-local"',
        "industry": r'<select[^>]*name="f-industry"[^>]*><option selected value="">—</option>'
        r'<option value="auto">Automotive</option><option value="energy">energy</option>',
        "tags": r'<input[^>]*name="f-tags"[^>]*type="checkbox" value="cold"',
        "strategic": r'<input[^>]*name="f-strategic"[^>]*type="checkbox"',
        "score": r'<select[^>]*name="f-score"[^>]*>.*<option value="5">5</option></select>',
        "email": r'<input[^>]*name="f-email"[^>]*type="email"',
        "phone": r'<input[^>]*name="f-phone"[^>]*type="tel"',
        "helper": r'<select[^>]*name="f-helper"[^>]*>.*>Li\.Wei</option>',
        "visit": r'<select[^>]*name="f-visit"',
        "net": r'<output id="c-net"',
        "grade": r'<output id="c-grade"',
        "double_qty": r'<output id="c-double_qty"',
    }
    for field_id, pattern in expected.items():
        assert re.search(pattern, page, re.S), field_id
    assert "Anything worth knowing" in page  # help text
    assert re.search(r'<span id="v-approval_note" class="vis" data-hidden>', page)
    assert re.search(r'<span id="v-discount" class="vis">', page)
    assert '<span class="badge" data-testid="stage">Lead</span>' in page
    assert "this field is required" not in page  # a fresh form scolds nobody


def test_labels_and_choices_in_the_users_language(rep: AuthActions) -> None:
    rep.post("/locale", {"locale": "zh", "next": "/"})
    text = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert "新建商机" in text and ">行业<" in text and ">汽车</option>" in text
    assert '<span class="unit">US$</span><input' in text  # the money field's currency, in zh
    assert ">线索</span>" in text and "备注" in text
    assert ">商机</a>" in text and ">拜访</a>" in text  # navigation from the pack


def test_the_form_spec_is_cached_per_version_form_and_language(app: Flask, installer) -> None:
    from quotaflow.forms.wtf import form_spec
    from quotaflow.packs.services import active_pack

    installer()
    with app.extensions["quotaflow.sessions"]() as session:
        pack = active_pack(session, "acme")
    assert form_spec(pack, "deal", "en") is form_spec(pack, "deal", "en")
    assert form_spec(pack, "deal", "zh") is not form_spec(pack, "deal", "en")
    assert [name for name, _ in form_spec(pack, "deal", "en").fields][:3] == [
        "customer",
        "notes",
        "qty",
    ]


def test_a_blank_form_renders_once_per_choices_and_never_shows_someone_elses(
    auth: AuthActions, installer, people
) -> None:
    """The inputs of a new form are rendered once and reused — but only for whoever gets the
    same choices: a rep in another team never sees the first rep's team mates offered."""
    from quotaflow.records import pages

    installer()
    pages._BLANK_PAGES.clear()

    def fields(page: str) -> str:
        block = re.search(r'<div class="form-grid">(.*?)<div class="actions">', page, re.S)
        assert block
        return block.group(1)

    def helpers(page: str) -> list[str]:
        select_ = re.search(r'<select[^>]*name="f-helper"[^>]*>(.*?)</select>', page, re.S)
        assert select_
        return re.findall(r'<option[^>]*value="(\d+)"', select_.group(1))

    auth.login("li.wei")
    first = auth.client.get("/forms/acme/deal/new").get_data(as_text=True)
    again = auth.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert len(pages._BLANK_PAGES) == 1 and fields(again) == fields(first)
    pages._BLANK_PAGES.clear()  # rendered afresh it is the same markup
    assert fields(auth.client.get("/forms/acme/deal/new").get_data(as_text=True)) == fields(first)
    assert str(people["mate"]) in helpers(first)
    auth.logout()
    auth.login("zhao.lei")
    theirs = auth.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert helpers(theirs) == [str(people["other"])]
    assert len(pages._BLANK_PAGES) == 2


# --- server-side checks, input kept ------------------------------------------------------------

BAD = {
    "customer": ("bad!chars", "not in the expected format"),
    "qty": ("500", "must be at most 100"),
    "amount": ("1.234", "money has at most 2 decimals"),
    "discount": ("abc", "enter a percentage, e.g. 15"),
    "close_on": ("31/12/2025", "enter a date as YYYY-MM-DD"),
    "call_at": ("soon", "enter a date and time as YYYY-MM-DD HH:MM"),
    "industry": ("steel", "'steel' is not one of the choices"),
    "tags": ("lukewarm", "'lukewarm' is not one of the choices"),
    "score": ("9", "choose a rating from 1 to 5"),
    "email": ("not-an-address", "enter an e-mail address like name@example.com"),
    "phone": ("call me", "enter a phone number: digits, spaces, + ( ) -"),
    "helper": ("999999", "choose one of the options offered"),
    "visit": ("999999", "choose one of the options offered"),
}


@pytest.mark.parametrize("field_id", sorted(BAD))
def test_each_field_type_is_checked_on_the_server_and_the_input_kept(
    app: Flask, rep: AuthActions, field_id: str
) -> None:
    typed, message = BAD[field_id]
    response = post_deal(rep, {"customer": "Good Co", field_id: typed})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert field_errors(page, field_id) == [message]
    if field_id not in ("industry", "tags", "score", "helper", "visit"):
        assert input_value(page, field_id) == typed
    assert stored(app) == []


def test_required_required_if_and_cross_field_rules(rep: AuthActions) -> None:
    page = post_deal(rep, {"customer": "", "discount": "20"}).get_data(as_text=True)
    assert field_errors(page, "customer") == ["this field is required"]
    assert field_errors(page, "approval_note") == ["this field is required"]
    assert '<span id="v-approval_note" class="vis">' in page  # now shown
    assert input_value(page, "discount") == "20"
    page = post_deal(
        rep, {"customer": "Small Co", "discount": "40", "amount": "1000", "approval_note": "ok"}
    ).get_data(as_text=True)
    assert field_errors(page, "discount") == ["Small deals get at most 30 % off"]


def test_a_valid_submission_stores_typed_values(app: Flask, rep: AuthActions, people) -> None:
    with app.extensions["quotaflow.sessions"]() as session:
        from quotaflow.records.services import create_record

        visit = create_record(
            session, pack_id="acme", pack_version_id=1, form_id="visit", owner_id=people["rep"],
            team_id=None, values={"customer": "Visited Co"}, actor_id=people["rep"],
        )  # fmt: skip
        session.commit()
        visit_id = visit.id
    response = post_deal(
        rep,
        {
            "customer": "Big Co",
            "notes": "line one\nline two",
            "qty": "3",
            "amount": "1,250,000.50",
            "discount": "20",
            "approval_note": "strategic account",
            "close_on": "2026-09-30",
            "call_at": "2026-07-01T09:30",
            "industry": "auto",
            "tags": ["hot", "repeat"],
            "strategic": "y",
            "score": "4",
            "email": "buyer@big.example",
            "phone": "+86 21 5555 0100",
            "helper": str(people["mate"]),
            "visit": str(visit_id),
        },
    )
    assert response.status_code == 302, field_errors(response.get_data(as_text=True), "helper")
    deal = stored(app)[-1]
    assert deal.values == {
        "customer": "Big Co",
        "notes": "line one\nline two",
        "qty": 3,
        "amount": "1250000.50",
        "discount": "0.2",
        "approval_note": "strategic account",
        "close_on": "2026-09-30",
        "call_at": "2026-07-01T09:30:00",
        "industry": "auto",
        "tags": ["hot", "repeat"],
        "strategic": True,
        "score": 4,
        "email": "buyer@big.example",
        "phone": "+86 21 5555 0100",
        "helper": str(people["mate"]),
        "visit": visit_id,
        "net": "1000000.40",
        "grade": "A",
        "double_qty": 6,
    }
    assert deal.amount == Decimal("1250000.50") and deal.stage == "lead"
    view = rep.client.get(response.headers["Location"]).get_data(as_text=True)
    for shown in ["$1,250,000.50", "20%", "Automotive", "hot, repeat", "Yes", "4 / 5",
                  "Zhang.Min", "Visited Co", "$1,000,000.40", "Sep 30, 2026"]:  # fmt: skip
        assert shown in view, shown


# --- live preview (htmx) -----------------------------------------------------------------------


def test_preview_returns_only_the_dependent_pieces(rep: AuthActions) -> None:
    page = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    data = {"pack_version_id": version_id(page), "f-discount": "20", "f-amount": "2000000",
            "f-qty": "x"}  # fmt: skip
    response = rep.post("/forms/acme/deal/preview", data, headers={"HX-Request": "true"})
    assert response.status_code == 200
    part = response.get_data(as_text=True)
    assert "<input" not in part and "<textarea" not in part  # typing is never overwritten
    assert '<span id="v-approval_note" class="vis" hx-swap-oob="true">' in part
    assert re.search(r'<output id="c-grade"[^>]*hx-swap-oob="true">A</output>', part)
    assert re.search(r'<output id="c-net"[^>]*>\$1,600,000.00</output>', part)
    assert field_errors(part, "qty") == ["enter a number, e.g. 1250.50"]
    assert field_errors(part, "customer") == []  # blank and required: not scolded while typing
    assert re.search(r'<label id="l-approval_note"[^>]*>[^<]*<span class="req"', part)
    full = rep.post("/forms/acme/deal/preview", data)  # without htmx: the whole page
    assert "<textarea" in full.get_data(as_text=True)


def test_preview_refuses_without_csrf_and_for_strangers(client, installer, people) -> None:
    installer()
    response = client.post("/forms/acme/deal/preview", headers={"HX-Request": "true"})
    assert response.status_code in (400, 401)


# --- pack text is text -------------------------------------------------------------------------

XSS = "<script>alert(1)</script>"
XSS_DEAL = f"""\
kind: form
id: deal
label: "{XSS}"
title_field: customer
fields:
  - {{id: customer, type: text, label: "{XSS}", help: "<img src=x onerror=alert(2)>"}}
  - id: kind
    type: choice
    label: "<b>kind</b>"
    choices: [{{value: a, label: "<i onmouseover=alert(3)>a</i>"}}]
rules:
  - when: "customer == 'x'"
    error: "<svg onload=alert(4)>"
    fields: [customer]
"""


def test_pack_labels_help_choices_and_messages_render_as_text(
    app: Flask, auth: AuthActions, installer, people
) -> None:
    installer(acme_files(forms__deal_yaml=XSS_DEAL, pipelines__sales_yaml=None))
    auth.login("li.wei")
    pages = [auth.client.get("/forms/acme/deal/new").get_data(as_text=True)]
    pages.append(post_deal(auth, {"customer": "x"}).get_data(as_text=True))
    created = post_deal(auth, {"customer": XSS, "kind": "a"})
    assert created.status_code == 302
    pages.append(auth.client.get(created.headers["Location"]).get_data(as_text=True))
    pages.append(auth.client.get("/forms/acme/deal/records").get_data(as_text=True))
    pages.append(auth.client.get("/").get_data(as_text=True))
    for page in pages:
        for raw in ["<script>alert", "<img src=x", "<b>kind", "<i onmouseover", "<svg onload"]:
            assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0]
    assert "&lt;img src=x onerror=alert(2)&gt;" in pages[0]
    assert "&lt;i onmouseover=alert(3)&gt;a&lt;/i&gt;" in pages[0]
    assert "&lt;svg onload=alert(4)&gt;" in pages[1]


# --- a post read without building its inputs ---------------------------------------------------


@pytest.fixture(scope="module")
def deal_definition(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("posted")
    write_pack(folder, acme_files())
    return load_pack(folder)


POSTED_NAMES = [f"f-{name}" for name in re.findall(r"\{id: (\w+)", DEAL)] + ["f-nope", "csrf_token"]
POSTED_VALUES = st.one_of(
    st.sampled_from(["", "false", "False", "y", "on", "hot", "A", "0", " 1 ", "None"]),
    st.text(max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(posted=st.lists(st.tuples(st.sampled_from(POSTED_NAMES), POSTED_VALUES), max_size=40))
def test_a_post_reads_as_the_inputs_built_from_it_read_it(
    deal_definition: Any, posted: list[tuple[str, str]]
) -> None:
    """Every field type, repeated, missing, blank or odd values: what the save reads straight
    from the post is what the WTForms inputs built from it would have given."""
    from werkzeug.datastructures import MultiDict

    from quotaflow.forms import wtf

    formdata = MultiDict(posted)
    form = deal_definition.forms["deal"]
    built = wtf.build_form(wtf.form_spec(deal_definition, "deal", "en"), formdata=formdata)
    assert wtf.posted_input(form, formdata) == wtf.raw_input(built, form)


def test_records_with_the_same_title_are_told_apart_in_a_reference_list(
    app: Flask, rep: AuthActions, people
) -> None:  # type: ignore[no-untyped-def]
    from datetime import date

    from quotaflow.records.services import create_record

    ids = []
    with app.extensions["quotaflow.sessions"]() as session:
        for customer, day in (("Sany Heavy", 3), ("Sany Heavy", 17), ("Gree", 5)):
            visit = create_record(
                session, pack_id="acme", pack_version_id=1, form_id="visit",
                owner_id=people["rep"], team_id=None, values={"customer": customer},
                actor_id=people["rep"], record_date=date(2026, 11, day),
            )  # fmt: skip
            ids.append(visit.id)
        session.commit()
    page = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    options = dict(re.findall(r'<option value="(\d+)">([^<]+)</option>', page))
    assert options[str(ids[0])] == f"Sany Heavy · Nov 3, 2026 · #{ids[0]}"
    assert options[str(ids[1])] == f"Sany Heavy · Nov 17, 2026 · #{ids[1]}"
    assert options[str(ids[2])] == "Gree"  # a title of its own needs nothing more
    # the date reads as the reader reads dates
    rep.post("/locale", {"locale": "zh", "next": "/"})
    page = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert f"Sany Heavy · 2026年11月3日 · #{ids[0]}" in page


# --- defaults and the records a reference field offers --------------------------------------

VISIT_WITH_DEFAULTS = """\
kind: form
id: visit
label: {en: Visit, zh: 拜访}
title_field: customer
fields:
  - {id: customer, type: text, required: true}
  - {id: visit_date, type: date, required: true, default_formula: "TODAY()"}
  - {id: kind, type: choice, choices: [onsite, phone], default: phone}
  - {id: deal, type: reference, form: deal, where: "stage != 'lost'",
     fill: {customer: customer, note: notes}}
  - {id: note, type: textarea}
"""


def test_a_new_form_starts_with_its_defaults_today_being_the_companys(
    app: Flask, auth: AuthActions, installer, people
) -> None:  # type: ignore[no-untyped-def]
    from datetime import datetime
    from zoneinfo import ZoneInfo

    # fourteen hours ahead of UTC: for most of the day the company's date is not the server's
    pack = PACK + "timezone: Pacific/Kiritimati\n"
    installer(acme_files(pack_yaml=pack, forms__visit_yaml=VISIT_WITH_DEFAULTS))
    auth.login("li.wei")
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    today = datetime.now(ZoneInfo("Pacific/Kiritimati")).date()
    assert input_value(page, "visit_date") == today.isoformat()
    assert re.search(r'<option selected value="phone">|<option value="phone" selected', page)
    # a default is where a form starts, not a value forced on it
    form = {"pack_version_id": version_id(page), "f-customer": "Gree", "f-visit_date": "2026-11-02",
            "f-kind": "onsite"}  # fmt: skip
    assert auth.post("/forms/acme/visit/new", form).status_code == 302
    assert stored(app)[-1].values == {
        "customer": "Gree", "visit_date": "2026-11-02", "kind": "onsite"
    }  # fmt: skip


def _rep_deals(
    app: Flask, rep_id: int, stages: tuple[str, ...], customer: str, **values: str
) -> dict[str, int]:
    """A deal of the rep's in each stage (customer named from its stage); stage -> id."""
    from quotaflow.records.services import create_record

    with app.extensions["quotaflow.sessions"]() as session:
        deals = {
            stage: create_record(
                session, pack_id="acme", pack_version_id=1, form_id="deal", owner_id=rep_id,
                team_id=None, values={"customer": customer.format(stage=stage), **values},
                actor_id=rep_id, stage=stage,
            ).id
            for stage in stages
        }  # fmt: skip
        session.commit()
    return deals


def test_a_reference_offers_only_the_records_its_filter_admits_but_keeps_a_chosen_one(
    app: Flask, auth: AuthActions, installer, people
) -> None:  # type: ignore[no-untyped-def]
    from quotaflow.records.services import create_record

    installer(acme_files(forms__visit_yaml=VISIT_WITH_DEFAULTS))
    deals = _rep_deals(app, people["rep"], ("lead", "won", "lost"), "{stage} Co")
    with app.extensions["quotaflow.sessions"]() as session:
        visit = create_record(
            session, pack_id="acme", pack_version_id=1, form_id="visit",
            owner_id=people["rep"], team_id=None,
            values={"customer": "lost Co", "visit_date": "2026-11-02", "deal": deals["lost"]},
            actor_id=people["rep"],
        )  # fmt: skip
        session.commit()
    auth.login("li.wei")
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    offered = dict(re.findall(r'<option value="(\d+)">([^<]+)</option>', page))
    assert offered == {str(deals["lead"]): "lead Co", str(deals["won"]): "won Co"}
    # a visit made before its deal was lost still shows (and keeps) that deal
    page = auth.client.get(f"/records/{visit.id}/edit").get_data(as_text=True)
    assert re.search(rf'<option selected value="{deals["lost"]}">lost Co</option>', page)
    # and a lost deal is refused on a new visit, as any record not offered is
    form = {"pack_version_id": version_id(page), "f-customer": "X", "f-visit_date": "2026-11-02",
            "f-deal": str(deals["lost"])}  # fmt: skip
    page = auth.post("/forms/acme/visit/new", form).get_data(as_text=True)
    assert field_errors(page, "deal") == ["choose one of the options offered"]
    # an edit saved from a version gone meanwhile comes back on the new form, the lost deal
    # it holds still listed and chosen, not refused
    gone = auth.post(
        f"/records/{visit.id}/edit",
        {"pack_version_id": "999", "version_no": "1", "f-customer": "lost Co",
         "f-visit_date": "2026-11-02", "f-deal": str(deals["lost"])},
    )  # fmt: skip
    assert gone.status_code == 409
    page = gone.get_data(as_text=True)
    assert re.search(rf'<option selected value="{deals["lost"]}">lost Co</option>', page)
    assert field_errors(page, "deal") == []


def test_choosing_a_record_fills_the_blank_fields_it_names_and_never_what_was_typed(
    app: Flask, auth: AuthActions, installer, people
) -> None:  # type: ignore[no-untyped-def]

    installer(acme_files(forms__visit_yaml=VISIT_WITH_DEFAULTS))
    deals = _rep_deals(app, people["rep"], ("lead", "lost"), "{stage} <Co>", notes="call the buyer")
    auth.login("li.wei")
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    base = {"pack_version_id": version_id(page), "f-visit_date": "2026-11-02", "f-kind": "phone"}
    # while typing: the blank customer and note come back filled, as inputs swapped in place
    live = auth.post(
        "/forms/acme/visit/preview", {**base, "f-deal": str(deals["lead"]), "f-customer": ""},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)  # fmt: skip
    customer = (
        r'<input(?=[^>]*hx-swap-oob="true")(?=[^>]*name="f-customer")[^>]*value="lead &lt;Co&gt;"'
    )
    assert re.search(customer, live)  # the record's text, escaped
    assert re.search(
        r'<textarea(?=[^>]*hx-swap-oob="true")[^>]*name="f-note"[^>]*>\s*call the buyer</textarea>',
        live,
    )
    # the page now knows the deal filled them: emptied again with that deal still chosen, the
    # customer is left empty (the person cleared it); choosing another deal fills again
    assert re.search(
        rf'<input type="hidden" id="x-filled-deal" name="x-filled-deal" value="{deals["lead"]}" hx-swap-oob="true">',
        live,
    )
    cleared = auth.post(
        "/forms/acme/visit/preview",
        {**base, "f-deal": str(deals["lead"]), "f-customer": "", "x-filled-deal": str(deals["lead"])},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)  # fmt: skip
    assert 'name="f-customer"' not in cleared
    # what was typed stays: no input comes back for it
    typed = auth.post(
        "/forms/acme/visit/preview", {**base, "f-deal": str(deals["lead"]), "f-customer": "Gree"},
        headers={"HX-Request": "true"},
    ).get_data(as_text=True)  # fmt: skip
    assert 'name="f-customer"' not in typed and 'name="f-note"' in typed
    # without JavaScript the save fills them
    saved = auth.post("/forms/acme/visit/new", {**base, "f-deal": str(deals["lead"])})
    assert saved.status_code == 302
    assert stored(app)[-1].values == {
        "deal": deals["lead"], "customer": "lead <Co>", "note": "call the buyer",
        "visit_date": "2026-11-02", "kind": "phone",
    }  # fmt: skip
    # the visit's page links the deal it was made for, with its number
    shown = auth.client.get(saved.headers["Location"]).get_data(as_text=True)
    link = f'<a href="/records/{deals["lead"]}">lead &lt;Co&gt;</a> <small class="muted">#{deals["lead"]}</small>'
    assert link in shown
    # a record not offered fills nothing (and is refused)
    page = auth.post("/forms/acme/visit/new", {**base, "f-deal": str(deals["lost"])}).get_data(
        as_text=True
    )
    assert field_errors(page, "customer") == ["this field is required"]
    assert field_errors(page, "deal") == ["choose one of the options offered"]
    # a new form marks nothing filled; an edited visit marks its deal (opening it fills nothing)
    assert 'name="x-filled-deal" value=""' in auth.client.get("/forms/acme/visit/new").get_data(
        as_text=True
    )
    visit_id = stored(app)[-1].id
    edit = auth.client.get(f"/records/{visit_id}/edit").get_data(as_text=True)
    assert f'name="x-filled-deal" value="{deals["lead"]}"' in edit


def test_a_record_list_cut_at_its_length_says_so(
    app: Flask, auth: AuthActions, installer, people, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from quotaflow.forms import wtf

    installer(acme_files(forms__visit_yaml=VISIT_WITH_DEFAULTS))
    _rep_deals(app, people["rep"], ("lead", "won"), "{stage} Co")
    auth.login("li.wei")
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    assert "most recently changed" not in page  # two deals, all of them listed
    monkeypatch.setattr(wtf, "MAX_REFERENCE_CHOICES", 1)
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    assert len(re.findall(r'<option value="\d+">', page)) == 1
    assert (
        '<p class="help" id="h-deal">Only the 1 most recently changed are listed: search to find'
        " the others.</p>" in page
    )


def _deals_named(app: Flask, owner: int, names: dict[str, str]) -> dict[str, int]:
    """A deal of `owner` per customer name (name -> stage), oldest first; name -> id."""
    from quotaflow.records.services import create_record

    with app.extensions["quotaflow.sessions"]() as session:
        ids = {
            name: create_record(
                session, pack_id="acme", pack_version_id=1, form_id="deal", owner_id=owner,
                team_id=None, values={"customer": name}, actor_id=owner, stage=stage,
            ).id
            for name, stage in names.items()
        }  # fmt: skip
        session.commit()
    return ids


def test_a_long_record_list_is_searched_by_name_or_number_among_what_one_may_choose(
    app: Flask, auth: AuthActions, installer, people, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from quotaflow.forms import wtf

    installer(acme_files(forms__visit_yaml=VISIT_WITH_DEFAULTS))
    few = _deals_named(app, people["rep"], {"Gree Electric": "lead", "Midea": "lead"})
    auth.login("li.wei")
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    assert 'data-testid="find-deal"' not in page  # two deals: the list is short enough
    mine = _deals_named(
        app, people["rep"],
        {"GREE Wuhan": "lead", "Gree Lost": "lost", **{f"Customer {i:02}": "lead" for i in range(10)}},
    )  # fmt: skip
    theirs = _deals_named(app, people["other"], {"Gree West": "lead"})  # another team's
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    assert 'data-testid="find-deal"' in page
    base = {"pack_version_id": version_id(page)}

    def search(text: str, **form: str) -> tuple[dict[str, str], str, str]:
        answer = auth.post(
            "/forms/acme/visit/choices/deal", {**base, **form, "x-find": text},
            headers={"HX-Request": "true"},
        ).get_data(as_text=True)  # fmt: skip
        # found by a search, every record says its date and number: "Midea · #12"
        labels = dict(re.findall(r'<option value="(\d+)"[^>]*>([^<]+)</option>', answer))
        assert all(label.endswith(f" · #{value}") for value, label in labels.items())
        options = {value: label.split(" · ")[0] for value, label in labels.items()}
        status = re.search(r'<span id="n-deal"[^>]*>([^<]*)</span>', answer)
        chosen = re.findall(r'<option value="(\d+)" selected>', answer)
        return options, status.group(1) if status else "", chosen[0] if chosen else ""

    # any case; never a lost deal (the field's `where`) nor another team's deal
    options, status, _chosen = search("gree")
    assert options == {
        str(few["Gree Electric"]): "Gree Electric",
        str(mine["GREE Wuhan"]): "GREE Wuhan",
    }
    assert status == "2 records match."
    assert str(theirs["Gree West"]) not in options and str(mine["Gree Lost"]) not in options
    # by number, with or without '#'
    assert search(f"#{few['Midea']}")[0] == {str(few["Midea"]): "Midea"}
    assert str(few["Midea"]) in search(str(few["Midea"]))[0]  # (and titles holding the digits)
    # the deal already chosen stays listed and chosen whatever is searched
    options, status, chosen = search("Customer 0", **{"f-deal": str(few["Midea"])})
    assert chosen == str(few["Midea"]) and str(few["Midea"]) in options
    assert len(options) == 11 and status == "10 records match."
    options, status, chosen = search("nobody", **{"f-deal": str(few["Midea"])})
    assert options == {str(few["Midea"]): "Midea"} and chosen == str(few["Midea"])
    assert status == "No record matches “nobody”."
    # what was typed reads back as text
    assert search("<b>zz")[1] == "No record matches “&lt;b&gt;zz”."
    # a deal older than the list holds is found, chosen and saved
    monkeypatch.setattr(wtf, "MAX_REFERENCE_CHOICES", 3)
    assert search("Customer")[1] == "3 or more records match: type more to narrow them."

    def help_line(text: str) -> str:
        answer = auth.post(
            "/forms/acme/visit/choices/deal", {**base, "x-find": text},
            headers={"HX-Request": "true"},
        ).get_data(as_text=True)  # fmt: skip
        found = re.search(r'<p id="h-deal" hx-swap-oob="innerHTML">([^<]*)</p>', answer)
        assert found is not None
        return found.group(1)

    # "only the 3 most recent" goes while a search narrows the list, and comes back after it
    assert help_line("gree") == ""
    assert (
        help_line("") == "Only the 3 most recently changed are listed: search to find the others."
    )
    page = auth.client.get("/forms/acme/visit/new").get_data(as_text=True)
    assert f'<option value="{few["Gree Electric"]}">' not in page
    assert search("electric")[0] == {str(few["Gree Electric"]): "Gree Electric"}
    form = {**base, "f-customer": "Gree", "f-visit_date": "2026-11-02",
            "f-deal": str(few["Gree Electric"])}  # fmt: skip
    assert auth.post("/forms/acme/visit/new", form).status_code == 302
    assert stored(app)[-1].values["deal"] == few["Gree Electric"]
    # from a visit's edit page: its saved deal stays offered; a record of another form is no
    # visit's page
    visit = stored(app)[-1].id
    assert search("nobody", record_id=str(visit))[0] == {str(few["Gree Electric"]): "Gree Electric"}
    other_form = auth.post(
        "/forms/acme/visit/choices/deal", {**base, "x-find": "g", "record_id": str(few["Midea"])}
    )  # fmt: skip
    assert other_form.status_code == 404
    # searching from the page of a record one may not open is refused like opening it
    refused = auth.post(
        "/forms/acme/visit/choices/deal", {**base, "x-find": "g", "record_id": str(theirs["Gree West"])}
    )  # fmt: skip
    assert refused.status_code in (403, 404) and "Gree West" not in refused.get_data(as_text=True)
    # a form field that is no reference has no search
    assert (
        auth.post("/forms/acme/visit/choices/customer", {**base, "x-find": "g"}).status_code == 404
    )
