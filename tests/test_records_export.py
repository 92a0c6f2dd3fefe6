"""Downloading a form's list as a spreadsheet: every field, typed cells, the list's filters
and sort, only what the person may see, formulas defused, a cap, an audit entry."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from openpyxl import load_workbook
from sqlalchemy import select

from quotaflow.audit.models import AuditEvent
from quotaflow.org.models import Team, User
from quotaflow.records.services import create_record
from tests.conftest import AuthActions
from tests.test_forms_web import make_installer, make_people, signing_in

LIST = "/forms/acme/deal/records"


@pytest.fixture
def people(app: Flask, make_user) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return make_people(app, make_user)


@pytest.fixture
def signed_in(app: Flask, tmp_path: Path, people) -> Callable[[str], AuthActions]:  # type: ignore[no-untyped-def]
    make_installer(app, tmp_path)()
    return signing_in(app)


def save(
    app: Flask,
    owner: int,
    stage: str,
    values: dict[str, object],
    form: str = "deal",
    team: str = "east",
) -> int:
    with app.extensions["quotaflow.sessions"]() as session:
        team_id = session.scalar(select(Team.id).where(Team.key == team))
        record = create_record(
            session, pack_id="acme", pack_version_id=1, form_id=form, owner_id=owner,
            team_id=team_id, values=values, actor_id=owner, stage=stage,
            record_date=date(2026, 3, 1),
        )  # fmt: skip
        session.commit()
        return record.id


@pytest.fixture
def deal(app: Flask, people: dict[str, int], signed_in) -> int:  # type: ignore[no-untyped-def]
    """One deal of li.wei's with every field type filled (its computed ones not stored)."""
    visit = save(
        app, people["rep"], "", {"customer": "Visit Co", "visit_date": "2026-02-01"}, "visit"
    )
    return save(
        app, people["rep"], "lead",
        {
            "customer": "Acme", "notes": "=1+2", "qty": 3, "amount": "120000.00",
            "discount": "0.1", "close_on": "2026-12-20", "call_at": "2026-12-01T10:30:00+00:00",
            "industry": "auto", "tags": ["hot", "repeat"], "strategic": True, "score": 4,
            "email": "buyer@acme.example", "phone": "+86 21 5555 0101",
            "helper": people["mate"], "visit": visit,
        },
    )  # fmt: skip


def team_name(app: Flask, key: str) -> str:
    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalars(select(Team.name).where(Team.key == key)).one()


def sheet_of(auth: AuthActions, query: str = "") -> list[list[object]]:
    response = auth.client.get(f"{LIST}.xlsx{query}")
    assert response.status_code == 200, response.status_code
    assert response.headers["Content-Disposition"].startswith('attachment; filename="deal-')
    book = load_workbook(io.BytesIO(response.get_data()))
    return [list(row) for row in book.active.iter_rows(values_only=True)]


def csv_of(auth: AuthActions, query: str = "") -> list[dict[str, str]]:
    response = auth.client.get(f"{LIST}.csv{query}")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    return list(csv.DictReader(io.StringIO(response.get_data().decode("utf-8-sig"))))


def test_excel_has_every_field_as_people_read_it_with_numbers_and_dates_typed(
    app: Flask, signed_in, people, deal: int
) -> None:  # type: ignore[no-untyped-def]
    with app.extensions["quotaflow.sessions"]() as session:
        name = dict(session.execute(select(User.id, User.display_name)).all())
    header, *rows = sheet_of(signed_in("li.wei"))
    (row,) = [r for r in rows if r[header.index("customer")] == "Acme"]
    cell = dict(zip(header, row, strict=True))
    assert cell["ID"] == deal
    assert cell["amount"] == 120000 and cell["qty"] == 3
    assert cell["discount"] == pytest.approx(0.1)  # a fraction, formatted as a percent
    assert cell["close_on"] == datetime(2026, 12, 20)
    assert cell["Industry"] == "Automotive"  # the choice's label, under the field's label
    assert cell["tags"] == "hot, repeat"
    assert cell["score"] == 4
    assert cell["helper"] == name[people["mate"]]  # a person's name, not their id
    assert cell["visit"] == "Visit Co"  # the referenced record's title
    assert cell["net"] == 108000  # worked out: the stored record has no computed values
    assert cell["double_qty"] == 6
    assert cell["Owner"] == name[people["rep"]] and cell["Stage"] == "Lead"  # its label
    assert cell["Team"] == team_name(app, "east")
    assert cell["notes"] == "=1+2"  # text that looks like a formula stays text, as typed
    assert cell["phone"] == "+86 21 5555 0101"
    book = load_workbook(io.BytesIO(signed_in("li.wei").client.get(f"{LIST}.xlsx").get_data()))
    cells = {c.value: c for c in book.active[2]}
    assert cells[120000].number_format == "#,##0.00"
    assert cells["=1+2"].data_type == "s"  # a text cell: Excel shows it, never runs it


def test_csv_cells_are_what_a_rep_types(app: Flask, signed_in, people, deal: int) -> None:  # type: ignore[no-untyped-def]
    (row,) = [r for r in csv_of(signed_in("li.wei")) if r["customer"] == "Acme"]
    assert Decimal(row["amount"]) == 120000
    assert row["discount"] == "10 %"
    assert row["close_on"] == "2026-12-20"
    assert row["strategic"] == "yes"
    assert row["notes"] == "'=1+2"  # a CSV cell Excel would run gets an apostrophe
    assert row["phone"] == "'+86 21 5555 0101"
    assert row["Industry"] == "Automotive"


def test_the_download_is_the_lists_records_on_every_page_and_no_more(
    app: Flask, signed_in, people
) -> None:  # type: ignore[no-untyped-def]
    for i in range(30):
        save(app, people["rep"], "lead" if i % 2 else "quotation", {"customer": f"C{i:02d}"})
    save(app, people["mate"], "lead", {"customer": "Mate Co"})
    save(app, people["other"], "lead", {"customer": "West Co"}, team="west")
    rep = [r["customer"] for r in csv_of(signed_in("li.wei"), "?sort=title")]
    assert rep == [f"C{i:02d}" for i in range(30)]  # all 30, past the list's 25 a page
    manager = [r["customer"] for r in csv_of(signed_in("wang.fang"), "?sort=-title&stage=lead")]
    assert manager == ["Mate Co", *(f"C{i:02d}" for i in range(29, 0, -2))]
    everyone = {r["customer"] for r in csv_of(signed_in("boss"))}
    assert len(everyone) == 32 and "West Co" in everyone  # an admin's list: everything
    page = signed_in("wang.fang").client.get(f"{LIST}?stage=lead&sort=title&page=2")
    assert f'href="{LIST}.csv?stage=lead&amp;sort=title"' in page.get_data(as_text=True)


def test_too_many_rows_ask_for_narrower_filters_and_the_download_is_audited(
    app: Flask, signed_in, people
) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        save(app, people["rep"], "lead", {"customer": f"C{i}"})
    rep = signed_in("li.wei")
    app.config["EXPORT_MAX_ROWS"] = 2
    refused = rep.client.get(f"{LIST}.xlsx?stage=lead")
    assert refused.status_code == 302 and refused.headers["Location"] == f"{LIST}?stage=lead"
    assert "More than 2 records match" in rep.client.get(refused.headers["Location"]).get_data(
        as_text=True
    )
    app.config["EXPORT_MAX_ROWS"] = 3
    assert len(sheet_of(rep, "?stage=lead")) == 4  # the header and three records
    with app.extensions["quotaflow.sessions"]() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "records_export")
        ).one()
    assert event.actor == "li.wei" and event.details["rows"] == 3
    assert event.details["stage"] == "lead" and event.details["format"] == "xlsx"
    assert rep.client.get(f"{LIST}.pdf").status_code == 404
