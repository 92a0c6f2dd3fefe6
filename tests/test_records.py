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
