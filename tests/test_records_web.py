"""Record pages: create, view with history, edit, the conflict page, a republished pack,
list filters/sort/pages, delete and restore, who may see what, the home page per role."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from quotaflow.org.models import Team
from quotaflow.pipelines.models import StageMove
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import create_record
from tests.conftest import AuthActions
from tests.test_forms_web import (
    DEAL,
    acme_files,
    field_errors,
    input_value,
    install_files,
    make_installer,
    make_people,
    post_deal,
    signing_in,
    stored,
    version_id,
)


@pytest.fixture
def people(app: Flask, make_user) -> dict[str, int]:
    """An admin, a manager of team east with two reps, and a rep in team west."""
    return make_people(app, make_user)


@pytest.fixture
def signed_in(app: Flask, tmp_path: Path, people) -> Callable[[str], AuthActions]:
    """sign_in('li.wei') -> a fresh client signed in as that person (the pack is installed)."""
    make_installer(app, tmp_path)()
    return signing_in(app)


def make_deals(app: Flask, owner: int, count: int, **values: object) -> list[int]:
    """Deals saved directly (fast), customer 'Customer 00'..., one day apart."""
    with app.extensions["quotaflow.sessions"]() as session:
        team = session.scalar(
            select(Team.id).where(Team.key == ("west" if values.pop("west", False) else "east"))
        )
        ids = []
        for i in range(count):
            record = create_record(
                session, pack_id="acme", pack_version_id=1, form_id="deal", owner_id=owner,
                team_id=team, values={"customer": f"Customer {i:02d}", **values},
                actor_id=owner, stage="lead" if i % 2 else "quotation",
                amount=Decimal(1000 * (i + 1)), record_date=date(2026, 1, 1 + i % 28),
            )  # fmt: skip
            ids.append(record.id)
        session.commit()
    return ids


def titles(page: str) -> list[str]:
    return re.findall(r'<a href="/records/\d+">([^<]+)</a>', page)


# --- create, view, edit --------------------------------------------------------------------------


def test_create_view_and_history(app: Flask, signed_in, people) -> None:
    rep = signed_in("li.wei")
    response = post_deal(rep, {"customer": "Acme Motors", "amount": "5000", "discount": "10"})
    assert response.status_code == 302
    record = stored(app)[-1]
    assert (record.owner_id, record.stage, record.pack_version_id) == (people["rep"], "lead", 1)
    with app.extensions["quotaflow.sessions"]() as session:
        assert session.get(Team, record.team_id).key == "east"  # the rep's team today
        moves = session.scalars(select(StageMove).where(StageMove.record_id == record.id))
        assert [m.to_stage for m in moves] == ["lead"]
    assert response.headers["Location"].endswith("?saved=1")  # the page says it, not a cookie
    assert "Set-Cookie" not in response.headers  # a save writes no session cookie
    page = rep.client.get(response.headers["Location"]).get_data(as_text=True)
    assert '<h1 data-testid="record-title">Acme Motors</h1>' in page
    assert "Saved." in page and "Created" in page and "by Li.Wei" in page
    # nowhere else: the next page says nothing of it
    assert "Saved." not in rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert "$5,000.00" in page and "$4,500.00" in page  # net amount computed


def test_a_record_saved_without_its_computed_values_shows_them_worked_out(
    app: Flask, signed_in, people
) -> None:  # (an import or the demo writes the inputs only)
    [deal] = make_deals(app, people["rep"], 1, amount="5000", discount="0.1")
    with app.extensions["quotaflow.sessions"]() as session:
        assert "net" not in session.get(Record, deal).values  # type: ignore[union-attr]
    page = signed_in("li.wei").client.get(f"/records/{deal}").get_data(as_text=True)
    assert re.search(r'<dd data-field="net">\$4,500\.00</dd>', page)


def test_edit_keeps_history_old_to_new(app: Flask, signed_in) -> None:
    rep = signed_in("li.wei")
    post_deal(rep, {"customer": "Acme Motors", "amount": "5000"})
    record_id = stored(app)[-1].id
    form = rep.client.get(f"/records/{record_id}/edit").get_data(as_text=True)
    assert input_value(form, "amount") == "5,000.00"  # grouped as amounts are read
    assert 'name="version_no" value="1"' in form
    data = {"pack_version_id": version_id(form), "version_no": "1",
            "f-customer": "Acme Motors", "f-amount": "7000"}  # fmt: skip
    assert rep.post(f"/records/{record_id}/edit", data).status_code == 302
    record = stored(app)[-1]
    assert record.version_no == 2 and record.amount == Decimal("7000.00")
    page = rep.client.get(f"/records/{record_id}").get_data(as_text=True)
    history = page[page.index('data-testid="history"') :]
    assert history.index("Created") < history.index("Changed")  # oldest first
    assert re.search(r"<del>\$5,000.00</del> → <ins>\$7,000.00</ins>", history)


def test_an_edit_with_errors_keeps_the_input(app: Flask, signed_in) -> None:
    rep = signed_in("li.wei")
    post_deal(rep, {"customer": "Acme Motors"})
    record_id = stored(app)[-1].id
    form = rep.client.get(f"/records/{record_id}/edit").get_data(as_text=True)
    data = {"pack_version_id": version_id(form), "version_no": "1", "f-customer": "",
            "f-qty": "many"}  # fmt: skip
    response = rep.post(f"/records/{record_id}/edit", data)
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert field_errors(page, "customer") == ["this field is required"]
    assert input_value(page, "qty") == "many"
    assert stored(app)[-1].version_no == 1


def test_conflict_page_shows_both_versions_and_keeps_the_input(app: Flask, signed_in) -> None:
    rep, manager = signed_in("li.wei"), signed_in("wang.fang")
    post_deal(rep, {"customer": "Acme Motors", "amount": "5000"})
    record_id = stored(app)[-1].id
    mine = rep.client.get(f"/records/{record_id}/edit").get_data(as_text=True)
    theirs = manager.client.get(f"/records/{record_id}/edit").get_data(as_text=True)
    manager.post(f"/records/{record_id}/edit", {"pack_version_id": version_id(theirs),
                 "version_no": "1", "f-customer": "Acme Motors", "f-amount": "6000"})  # fmt: skip
    data = {"pack_version_id": version_id(mine), "version_no": "1",
            "f-customer": "Acme Motors Ltd", "f-amount": "5500"}  # fmt: skip
    response = rep.post(f"/records/{record_id}/edit", data)
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "Someone saved this record after you opened it" in page
    compare = page[page.index('data-testid="conflict"') :]
    assert re.search(r"Amount</th>\s*<td>\$6,000.00</td>\s*<td>\$5,500.00</td>", compare)
    assert input_value(page, "customer") == "Acme Motors Ltd"  # their input kept
    assert input_value(page, "amount") == "5500"
    assert 'name="version_no" value="2"' in page  # re-submits on top of the current version
    assert stored(app)[-1].amount == Decimal("6000.00")
    data["version_no"] = "2"
    assert rep.post(f"/records/{record_id}/edit", data).status_code == 302
    assert stored(app)[-1].values["customer"] == "Acme Motors Ltd"


# --- a pack republished while the form is open ---------------------------------------------------


def test_a_republished_pack_accepts_the_submission_against_the_opened_version(
    app: Flask, signed_in, tmp_path: Path
) -> None:
    rep = signed_in("li.wei")
    opened = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert version_id(opened) == "1"
    v2 = DEAL.replace("  - {id: notes, type: textarea", "  - {id: region, type: text, "
                      "required: true}\n  - {id: notes, type: textarea")  # fmt: skip
    files = acme_files(forms__deal_yaml=v2)
    files["pack.yaml"] = files["pack.yaml"].replace("1.0.0", "1.1.0")
    new_version = install_files(app, tmp_path / "v2", files)
    assert new_version != 1
    response = rep.post("/forms/acme/deal/new", {"pack_version_id": "1",
                        "f-customer": "Opened Before"})  # fmt: skip
    assert response.status_code == 302  # valid against version 1: accepted, pinned to it
    assert stored(app)[-1].pack_version_id == 1
    fresh = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert version_id(fresh) == str(new_version) and 'name="f-region"' in fresh
    refused = rep.post("/forms/acme/deal/new", {"pack_version_id": str(new_version),
                       "f-customer": "Opened After"})  # fmt: skip
    assert field_errors(refused.get_data(as_text=True), "region") == ["this field is required"]


def test_an_unusable_opened_version_gives_a_message_and_keeps_the_input(
    app: Flask, signed_in, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rep = signed_in("li.wei")
    response = rep.post("/forms/acme/deal/new", {"pack_version_id": "999",
                        "f-customer": "Kept Co", "f-qty": "7"})  # fmt: skip
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "changed by an administrator while you had it open" in page
    assert input_value(page, "customer") == "Kept Co" and input_value(page, "qty") == "7"
    assert version_id(page) == "1"  # the current version, to save again
    # an old version that no longer compiles (e.g. after an engine upgrade)
    files = acme_files()
    files["pack.yaml"] = files["pack.yaml"].replace("1.0.0", "1.0.1")
    install_files(app, tmp_path / "v101", files | {"forms/visit.yaml": VISIT_V2})
    from quotaflow.errors import QuotaflowError
    from quotaflow.forms import wtf

    rep.client.get("/")  # the active version is compiled (and cached) before the engine "changes"

    def broken(_content: object) -> None:
        raise QuotaflowError("no longer valid")

    monkeypatch.setattr(wtf, "_VERSIONS", {})
    monkeypatch.setattr("quotaflow.packs.validate.compile_installed", broken)
    response = rep.post("/forms/acme/deal/new", {"pack_version_id": "1", "f-customer": "Kept"})
    assert response.status_code == 409 and "Kept" in response.get_data(as_text=True)
    assert stored(app) == []


VISIT_V2 = """\
kind: form
id: visit
label: {en: Visit, zh: 拜访}
title_field: customer
fields:
  - {id: customer, type: text, required: true}
  - {id: visit_date, type: date, required: true}
  - {id: outcome, type: text}
"""


# --- list: visibility, filters, sort, pages -------------------------------------------------------


def test_list_shows_only_visible_records(app: Flask, signed_in, people) -> None:
    make_deals(app, people["rep"], 2)
    make_deals(app, people["mate"], 1, customer="Mate Co")
    make_deals(app, people["other"], 1, customer="West Co", west=True)
    rep_page = signed_in("li.wei").client.get("/forms/acme/deal/records").get_data(as_text=True)
    assert sorted(titles(rep_page)) == ["Customer 00", "Customer 01"]
    manager = signed_in("wang.fang").client.get("/forms/acme/deal/records").get_data(as_text=True)
    assert sorted(titles(manager)) == ["Customer 00", "Customer 01", "Mate Co"]
    admin = signed_in("boss").client.get("/forms/acme/deal/records").get_data(as_text=True)
    assert len(titles(admin)) == 4 and "4 records" in admin


def test_list_filters_sort_and_pages(app: Flask, signed_in, people) -> None:
    make_deals(app, people["rep"], 30)
    make_deals(app, people["mate"], 2, customer="Mate Co")
    manager = signed_in("wang.fang").client

    def get(query: str) -> str:
        response = manager.get(f"/forms/acme/deal/records?{query}")
        assert response.status_code == 200
        return response.get_data(as_text=True)

    first = get("sort=title")
    assert titles(first)[:3] == ["Customer 00", "Customer 01", "Customer 02"]
    assert len(titles(first)) == 25 and "Page 1 of 2" in first
    second = get("sort=title&page=2")
    assert titles(second) == [f"Customer {i}" for i in range(25, 30)] + ["Mate Co", "Mate Co"]
    assert titles(get("sort=-amount"))[0] == "Customer 29"
    # a first click on Amount shows the biggest first, on Title A first; a second turns it round
    assert "?sort=-amount" in get("") and "?sort=title" in get("")
    assert "?sort=amount" in get("sort=-amount") and "?sort=-title" in get("sort=title")
    assert titles(get("q=customer%2012"))[0] == "Customer 12" and "1 record" in get("q=ustomer 12")
    assert sorted(titles(get(f"owner={people['mate']}"))) == ["Mate Co", "Mate Co"]
    assert "15 records" in get("stage=quotation&q=customer")  # even ones
    assert "1 record" in get("from=2026-01-03&to=2026-01-03")
    assert "3 records" in get("from=2026-01-01&to=2026-01-01")  # two of the rep's, one mate's
    assert "Page 2 of 2" in get("sort=title&page=99")  # past the end: the last page
    assert "32 records" in get("sort=nonsense&owner=abc&from=bad")  # bad values are ignored
    assert "No records match." in get("q=%25_nothing")


# --- delete and restore ----------------------------------------------------------------------


def test_delete_hides_and_a_manager_restores(app: Flask, signed_in, people) -> None:
    (record_id,) = make_deals(app, people["rep"], 1)
    rep, manager = signed_in("li.wei"), signed_in("wang.fang")
    assert rep.post(f"/records/{record_id}/delete").status_code == 302
    assert titles(rep.client.get("/forms/acme/deal/records").get_data(as_text=True)) == []
    assert rep.client.get(f"/records/{record_id}/edit").status_code == 302  # "restore it first"
    assert rep.post(f"/records/{record_id}/restore").status_code == 403
    assert 'name="deleted"' not in rep.client.get("/forms/acme/deal/records").get_data(as_text=True)
    deleted = manager.client.get("/forms/acme/deal/records?deleted=1").get_data(as_text=True)
    assert titles(deleted) == ["Customer 00"] and ">deleted</span>" in deleted
    assert manager.post(f"/records/{record_id}/restore").status_code == 302
    assert titles(rep.client.get("/forms/acme/deal/records").get_data(as_text=True)) == [
        "Customer 00"
    ]
    with app.extensions["quotaflow.sessions"]() as session:
        actions = session.scalars(
            select(RecordHistory.action)
            .where(RecordHistory.record_id == record_id)
            .order_by(RecordHistory.id)
        )
        assert list(actions) == ["create", "delete", "restore"]


# --- permissions ---------------------------------------------------------------------------------


def test_other_people_get_403_and_unknown_records_404(app: Flask, signed_in, people) -> None:
    (record_id,) = make_deals(app, people["rep"], 1)
    other = signed_in("zhao.lei")
    assert other.client.get(f"/records/{record_id}").status_code == 403
    assert other.client.get(f"/records/{record_id}/edit").status_code == 403
    assert other.post(f"/records/{record_id}/edit", {"f-customer": "x"}).status_code == 403
    assert other.post(f"/records/{record_id}/delete").status_code == 403
    assert other.client.get("/records/999999").status_code == 404
    assert other.client.get("/forms/acme/nothing/records").status_code == 404
    assert other.client.get("/forms/nopack/deal/new").status_code == 404
    mate = signed_in("zhang.min")  # same team, not a manager
    assert mate.client.get(f"/records/{record_id}").status_code == 403
    assert stored(app)[-1].values == {"customer": "Customer 00"}


def test_a_reference_to_an_invisible_record_is_refused(app: Flask, signed_in, people) -> None:
    (west_id,) = make_deals(app, people["other"], 1, customer="West Co", west=True)
    rep = signed_in("li.wei")
    page = rep.client.get("/forms/acme/deal/new").get_data(as_text=True)
    assert "West Co" not in page
    response = post_deal(rep, {"customer": "Mine", "visit": str(west_id)})
    assert field_errors(response.get_data(as_text=True), "visit") == [
        "choose one of the options offered"
    ]


# --- home and navigation -------------------------------------------------------------------------


def test_home_per_role(app: Flask, signed_in, people) -> None:
    make_deals(app, people["rep"], 2)
    make_deals(app, people["mate"], 1, customer="Mate Co")
    rep = signed_in("li.wei").client.get("/").get_data(as_text=True)
    assert "My records" in rep and sorted(titles(rep)) == ["Customer 00", "Customer 01"]
    assert re.search(r'<span class="figure">2</span>\s*<span>Deal</span>', rep)
    assert 'href="/forms/acme/deal/records">Deal</a>' in rep  # navigation from the pack
    assert 'href="/forms/acme/visit/records">Visit</a>' in rep
    manager = signed_in("wang.fang").client.get("/").get_data(as_text=True)
    assert "My team's records" in manager and "Mate Co" in manager
    assert re.search(r'<span class="figure">3</span>\s*<span>Deal</span>', manager)
    admin = signed_in("boss").client.get("/").get_data(as_text=True)
    assert "Installed definition packs" in admin and "<code>acme</code>" in admin


def test_record_pages_have_no_inline_script_or_style(app: Flask, signed_in, people) -> None:
    (record_id,) = make_deals(app, people["rep"], 1)
    rep = signed_in("li.wei")
    urls = ["/", "/forms/acme/deal/records", "/forms/acme/deal/new", f"/records/{record_id}",
            f"/records/{record_id}/edit"]  # fmt: skip
    for url in urls:
        page = rep.client.get(url).get_data(as_text=True)
        assert "<script>" not in page and " style=" not in page and "<style" not in page, url
        assert not re.search(r"\son[a-z]+=", page), url
