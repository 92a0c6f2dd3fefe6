"""The admin import page: upload, a preview with the mapping guessed from names and labels,
a check that writes nothing and lists the bad rows, then the import; the mapping chosen is
kept on a refusal; only admins get in; the file is read from the instance folder only."""

from __future__ import annotations

import io
import re
from datetime import date
from typing import Any

from openpyxl import load_workbook
from sqlalchemy import func, select

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.org.services import add_membership, ensure_team
from quotaflow.packs.install import install_pack
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record, RecordHistory
from tests.conftest import REPO

PACK = REPO / "definitions" / "packs" / "crm_walkthrough"
CSV = (
    "opportunity_id,sales_agent,product,account,deal_stage,engage_date,close_date,Close value\n"
    "A1,Ann Lee,GTX Pro,Acme,Won,2017-01-05,2017-02-01,1200\n"
    "A2,Ann Lee,GTXPro,Beta,Lost,2017-01-06,2017-02-02,\n"
    "A3,Ann Lee,MG Special,Cino,Prospecting,,,\n"
)


def setup(app: Any, make_user: Any) -> None:
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(PACK), actor="test")
    make_user("boss", is_admin=True)
    ann = make_user("ann.lee", display_name="Ann Lee")
    make_user("rep")
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        team = ensure_team(session, key="central", name="Central")
        add_membership(
            session, user=session.merge(ann), team=team, role="rep", valid_from=date(2016, 1, 1)
        )


def count(app: Any) -> int:
    with app.extensions["quotaflow.sessions"]() as session:
        return session.scalar(select(func.count()).select_from(Record)) or 0


def upload(auth: Any, text: str | bytes, name: str = "deals.csv") -> str:
    data = text.encode() if isinstance(text, str) else text
    response = auth.post("/admin/import", {"form": "crm_walkthrough:deal", "file": (io.BytesIO(data), name)},
                         content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return str(response.headers["Location"])


def mapping(html: str) -> dict[str, str]:
    """column index -> the field selected for it."""
    out = {}
    for index, body in re.findall(
        r'<select id="map-(\d+)" name="map-\d+">(.*?)</select>', html, re.S
    ):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        out[index] = chosen.group(1) if chosen else ""
    return out


def test_upload_preview_check_and_import(app: Any, make_user: Any, auth: Any) -> None:
    setup(app, make_user)
    auth.login("boss")
    page_url = upload(auth, CSV)
    page = auth.client.get(page_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Import 3 rows as Opportunity" in html
    assert "read-as-gbk" not in html
    guessed = mapping(html)
    # names match field ids, "Close value" matches the amount field's label
    assert (
        guessed["0"] == "opportunity_id" and guessed["2"] == "product" and guessed["7"] == "amount"
    )
    assert "GTXPro" in html  # the preview shows the rows as they are
    form = {"pack": "crm_walkthrough", "form": "deal", "map-0": "opportunity_id", "map-1": "_owner", "map-2": "product",
            "map-3": "account", "map-4": "_stage", "map-5": "engage_date", "map-6": "close_date", "map-7": "amount",
            "date_field": "engage_date", "closed_field": "close_date"}  # fmt: skip
    checked = auth.post(page_url, {**form, "action": "check"})
    text = checked.get_data(as_text=True)
    assert (
        checked.status_code == 200
        and "row 3: Product: &#39;GTXPro&#39; is not one of the choices (choices: GTX Basic, GTX Pro"
        in text
    )
    assert count(app) == 0
    refused = auth.post(page_url, {**form, "action": "import"})
    assert refused.status_code == 400 and count(app) == 0
    assert mapping(refused.get_data(as_text=True))["1"] == "_owner"  # the mapping chosen is kept
    done = auth.post(page_url, {**form, "action": "import", "partial": "1"})
    assert done.status_code == 302 and count(app) == 2
    # the rows left out: listed with why, and a sheet of them to fix and import again
    left_out = done.headers["Location"]
    assert re.fullmatch(r"/admin/import/[0-9a-f]{32}/rejected", left_out)
    page = auth.client.get(left_out).get_data(as_text=True)
    assert "1 row of the file was not imported into Opportunity" in page
    assert "row 3: Product: &#39;GTXPro&#39; is not one of the choices" in page
    sheet = auth.client.get(left_out + ".xlsx")
    assert sheet.status_code == 200 and sheet.headers["Content-Disposition"].endswith('.xlsx"')
    with app.extensions["quotaflow.sessions"]() as session:  # a download of people's data
        downloads = select(AuditEvent).where(AuditEvent.action == "import_rejected_download")
        assert session.scalars(downloads).one().details == {"rows": 1}
    rows = list(load_workbook(io.BytesIO(sheet.data)).active.iter_rows(values_only=True))
    assert rows[0][-1] == "Problem" and rows[0][:-1] == tuple(CSV.splitlines()[0].split(","))
    assert len(rows) == 2 and rows[1][:3] == ("A2", "Ann Lee", "GTXPro")
    assert "is not one of the choices" in str(rows[1][-1])
    with app.extensions["quotaflow.sessions"]() as session:
        event = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "records_import")
        ).one()  # who imported what into which form, like every other change
        assert (event.actor, event.object_id) == ("boss", "crm_walkthrough/deal")
        assert event.details is not None
        assert (event.details["imported"], event.details["rejected"]) == (2, 1)
        record = session.scalars(select(Record).order_by(Record.id)).first()
        assert record is not None and record.record_date == date(2017, 1, 5)  # its own date
        created = session.scalars(
            select(RecordHistory.changed_at).where(RecordHistory.record_id == record.id)
        ).one()
        assert created.year >= 2026  # its history says when it came in, not 2017
    assert auth.client.get(page_url).status_code == 404  # the file is gone once imported


def test_a_chinese_excel_csv_is_read_and_its_owner_and_stage_columns_found(
    app: Any, make_user: Any, auth: Any
) -> None:
    # Excel and WPS on a Chinese Windows save "CSV" in GBK, with the columns named in Chinese
    setup(app, make_user)
    auth.login("boss")
    sheet = (
        "opportunity_id,负责人,product,account,阶段,engage_date\n"
        "A1,Ann Lee,GTX Pro,上海机电,Won,2017-01-05\n"
    )
    html = auth.client.get(upload(auth, sheet.encode("gbk"))).get_data(as_text=True)
    assert "上海机电" in html  # decoded, not refused and not mojibake
    assert 'data-testid="read-as-gbk"' in html  # and said, in case the file was not Chinese
    guessed = mapping(html)
    assert guessed["1"] == "_owner" and guessed["4"] == "_stage"
    # a Western Excel's CSV: read as Windows-1252, and said
    western = "opportunity_id,负责人,product,account\nA2,Ann Lee,GTX Pro,Café Müller\n"
    html = auth.client.get(upload(auth, western.replace("负责人", "owner").encode("cp1252")))
    html_text = html.get_data(as_text=True)
    assert "Café Müller" in html_text and 'data-testid="read-as-western"' in html_text
    unknown = upload(auth, b"opportunity_id,account\nA1,Caf\x81\n")
    assert auth.client.get(unknown).status_code == 302  # none of the three: said, not guessed
    assert "is not UTF-8, GBK or Windows-1252 text" in auth.client.get("/admin/import").get_data(
        as_text=True
    )


def test_bad_files_and_strangers_are_turned_away(app: Any, make_user: Any, auth: Any) -> None:
    setup(app, make_user)
    auth.login("boss")
    wrong = auth.post("/admin/import", {"form": "crm_walkthrough:deal", "file": (io.BytesIO(b"x"), "deals.txt")},
                      content_type="multipart/form-data")  # fmt: skip
    assert wrong.status_code == 302
    assert "Expected a .csv or .xlsx file" in auth.client.get("/admin/import").get_data(
        as_text=True
    )
    empty_url = upload(auth, "", "empty.csv")
    assert auth.client.get(empty_url).status_code == 302
    assert "the file is empty" in auth.client.get("/admin/import").get_data(as_text=True)
    assert (
        auth.client.get(
            "/admin/import/..%2F..%2Fsecret_key.csv?pack=crm_walkthrough&form=deal"
        ).status_code
        == 404
    )
    assert (
        auth.client.get(
            "/admin/import/" + "0" * 32 + ".csv?pack=crm_walkthrough&form=deal"
        ).status_code
        == 404
    )
    auth.logout()
    auth.login("rep")
    assert auth.client.get("/admin/import").status_code == 403
