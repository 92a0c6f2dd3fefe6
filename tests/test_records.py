"""Records on both databases: history of every change, optimistic concurrency, soft delete."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.org.services import add_user
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_version
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import (
    EditConflict,
    create_record,
    delete_record,
    restore_record,
    update_record,
)
from tests.packfiles import minimal_files, write_pack


@pytest.fixture
def deal_id(sessions: sessionmaker[Session], tmp_path) -> int:  # type: ignore[no-untyped-def]
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(write_pack(tmp_path, minimal_files())), actor="test")
        rep = add_user(session, username="rep", display_name="Rep", password="x" * 12)
        record = create_record(
            session,
            pack_id="acme",
            pack_version_id=active_version(session, "acme").id,
            form_id="deal",
            owner_id=rep.id,
            team_id=None,
            values={"customer": "Haier"},
            actor_id=rep.id,
            record_date=date(2026, 3, 1),
        )
        return record.id


def history(sessions: sessionmaker[Session], record_id: int) -> list[tuple[str, int, dict]]:
    with sessions() as session:
        rows = session.scalars(
            select(RecordHistory)
            .where(RecordHistory.record_id == record_id)
            .order_by(RecordHistory.id)
        )
        return [(h.action, h.version_no, h.changes) for h in rows]


def test_every_change_is_in_the_history_with_old_and_new(sessions, deal_id: int) -> None:
    with db.transaction(sessions) as session:
        update_record(
            session,
            deal_id,
            values={"customer": "Haier Smart Home", "amount": "12.50"},
            actor_id=None,
            expected_version=1,
        )
    assert history(sessions, deal_id) == [
        ("create", 1, {"customer": [None, "Haier"]}),
        ("update", 2, {"amount": [None, "12.50"], "customer": ["Haier", "Haier Smart Home"]}),
    ]


def test_a_stale_edit_gets_a_conflict_with_both_versions(sessions, deal_id: int) -> None:
    with db.transaction(sessions) as session:
        update_record(
            session, deal_id, values={"customer": "First"}, actor_id=None, expected_version=1
        )
    with pytest.raises(EditConflict) as caught, db.transaction(sessions) as session:
        update_record(
            session, deal_id, values={"customer": "Second"}, actor_id=None, expected_version=1
        )
    assert caught.value.current == {"customer": "First"}
    assert caught.value.submitted == {"customer": "Second"}
    with sessions() as session:
        assert session.get(Record, deal_id).values == {"customer": "First"}


def test_two_people_saving_at_once_one_wins_the_other_gets_a_conflict(
    sessions, deal_id: int
) -> None:
    first, second = sessions(), sessions()
    try:
        first.get(Record, deal_id)
        second.get(Record, deal_id)  # both opened version 1
        update_record(first, deal_id, values={"customer": "A"}, actor_id=None, expected_version=1)
        first.commit()
        with pytest.raises(EditConflict) as caught:
            update_record(
                second, deal_id, values={"customer": "B"}, actor_id=None, expected_version=1
            )
        assert caught.value.submitted == {"customer": "B"}
        assert caught.value.current == {"customer": "A"}
    finally:
        first.close()
        second.close()
    with sessions() as session:
        assert session.get(Record, deal_id).values == {"customer": "A"}


def test_soft_delete_and_restore_keep_the_record_and_say_so(sessions, deal_id: int) -> None:
    with db.transaction(sessions) as session:
        delete_record(session, session.get(Record, deal_id), actor_id=None)
    with db.transaction(sessions) as session:
        record = session.get(Record, deal_id)
        assert record.deleted_at is not None
        restore_record(session, record, actor_id=None)
    with sessions() as session:
        assert session.get(Record, deal_id).deleted_at is None
    assert [a for a, _v, _c in history(sessions, deal_id)] == ["create", "delete", "restore"]


def test_a_created_record_is_in_the_session_as_saved_with_one_data_stamp_a_transaction(
    sessions: sessionmaker[Session], deal_id: int
) -> None:
    """create_record writes past the unit of work: the record it returns still reads without
    a query, is the one the session hands out for its id, takes an edit checked against its
    first version in the same transaction; the transaction moves the data stamp once."""
    from decimal import Decimal

    from sqlalchemy import event, func

    from quotaflow.kpis.cache import DataChange, stamp_for

    with sessions() as session:
        before = stamp_for(session)
        rows_before = session.scalar(select(func.count()).select_from(DataChange))
        pinned = session.get(Record, deal_id)
        assert pinned is not None
        shared = {"pack_id": "acme", "pack_version_id": pinned.pack_version_id, "form_id": "deal",
                  "owner_id": pinned.owner_id, "team_id": None, "actor_id": None}  # fmt: skip
    with db.transaction(sessions) as session:
        queries: list[str] = []

        def note(*args: object) -> None:
            queries.append(str(args[2]))

        event.listen(session.get_bind(), "before_cursor_execute", note)
        first = create_record(
            session,
            values={"customer": "Midea"},
            amount=Decimal("12.50"),
            record_date=date(2026, 3, 2),
            **shared,
        )  # type: ignore[arg-type]
        second = create_record(session, values={"customer": "Gree"}, **shared)  # type: ignore[arg-type]
        queries.clear()
        seen = (first.values, first.amount, first.record_date, first.deleted_at,
                first.version_no, first.created_at == first.updated_at, first.stage)  # fmt: skip
        assert seen == ({"customer": "Midea"}, Decimal("12.50"), date(2026, 3, 2), None, 1,
                        True, None)  # fmt: skip
        assert session.get(Record, first.id) is first and queries == []
        update_record(session, first.id, values={"customer": "Midea Group"}, actor_id=None,
                      expected_version=1, amount=Decimal("12.50"))  # fmt: skip
        event.remove(session.get_bind(), "before_cursor_execute", note)
    with sessions() as session:
        stored = {r.id: (r.values, r.version_no, r.amount_cents) for r in
                  session.scalars(select(Record).where(Record.id.in_([first.id, second.id])))}  # fmt: skip
        assert stored == {first.id: ({"customer": "Midea Group"}, 2, 1250),
                          second.id: ({"customer": "Gree"}, 1, None)}  # fmt: skip
        assert stamp_for(session) > before  # type: ignore[operator]
        assert session.scalar(select(func.count()).select_from(DataChange)) == rows_before + 1
    assert [a for a, _v, _c in history(sessions, first.id)] == ["create", "update"]
