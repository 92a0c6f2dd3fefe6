"""The audit log page: administrators read every change, newest first, narrowed by what, who
and which object; nobody else gets in; what people typed is shown as text."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from quotaflow import db
from quotaflow.audit import record_event
from quotaflow.audit.models import AuditEvent
from quotaflow.audit.reading import PER_PAGE
from tests.conftest import AuthActions


def test_admins_read_filter_and_page_through_the_audit_log(
    app: Flask, auth: AuthActions, make_user
) -> None:  # type: ignore[no-untyped-def]
    make_user("boss", is_admin=True)
    make_user("li.wei", team="east", role="rep")
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        for i in range(PER_PAGE + 5):
            record_event(session, actor="li.wei", action="record_update", object_type="record",
                         object_id=str(1000 + i), details={"amount": [i, i + 1]})  # fmt: skip
        record_event(session, actor="boss", action="user_change", object_type="user",
                     object_id="<script>alert(1)</script>",
                     details={"display_name": ["Li", "<b>Li Wei</b>"]})  # fmt: skip
    auth.login("li.wei")
    assert auth.client.get("/admin/audit").status_code == 403
    auth.logout()
    auth.login("boss")
    first = auth.client.get("/admin/audit").get_data(as_text=True)
    with app.extensions["quotaflow.sessions"]() as session:  # the people made above too
        logged = session.scalar(select(func.count()).select_from(AuditEvent))
    assert logged is not None and logged > PER_PAGE + 5 and f"{logged} events" in first
    newest = first.index('data-action="user_change"')
    assert newest < first.index('data-action="record_update"')  # newest first
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in first and "<script>alert(1)" not in first
    assert "display_name: Li → &lt;b&gt;Li Wei&lt;/b&gt;" in first  # old → new, as text
    assert "Page 1 of 2" in first and 'rel="next"' in first
    updates = auth.client.get("/admin/audit?action=record_update&actor=LI.WEI&page=2")
    text = updates.get_data(as_text=True)
    assert text.count('data-action="record_update"') == 5 and "user_change</code>" not in text
    one = auth.client.get("/admin/audit?about=1003").get_data(as_text=True)
    assert one.count('data-action="record_update"') == 1 and "amount: 3 → 4" in one
    assert "No event matches." in auth.client.get("/admin/audit?about=%25").get_data(as_text=True)
    assert auth.client.get("/admin/audit?page=99999999999999").status_code == 200
