"""Insert-only rows (history, stage moves, audit) held in a block and written together when
it ends — on PostgreSQL in one round trip past SQLAlchemy — land exactly as SQLAlchemy would
have written them, commit and roll back with their transaction, and fail as SQLAlchemy
errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import appended, db
from quotaflow.appended import append_rows, appended_together
from quotaflow.audit import AUDIT_LOG
from quotaflow.audit.models import AuditEvent
from quotaflow.pipelines.services import STAGE_MOVES

AT = datetime(2026, 11, 29, 9, 30, tzinfo=UTC)
# a stage move of a record that does not exist: refused by its foreign key
MISSING_RECORD = {"record_id": 999_999, "pipeline_id": "p", "from_stage": None,
                  "to_stage": "won", "moved_by": None, "moved_at": AT}  # fmt: skip


def _event(n: int, **details: object) -> dict[str, object]:
    return {"at": AT, "actor": f"rep{n}", "action": "probe", "object_type": "record",
            "object_id": str(n), "details": details}  # fmt: skip


def _events(session: Session) -> list[tuple[str, dict[str, object], datetime]]:
    rows = session.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars()
    return [(e.actor, e.details, e.at.replace(tzinfo=e.at.tzinfo or UTC)) for e in rows]


def test_rows_appended_in_a_block_are_written_when_it_ends_as_sqlalchemy_writes_them(
    sessions: sessionmaker[Session],
) -> None:
    with db.transaction(sessions) as session:
        append_rows(session, AUDIT_LOG, [_event(0, note="at once")])  # outside: written now
        with appended_together(session):
            append_rows(session, AUDIT_LOG, [_event(1, a=[1, "x"], b={"c": None})])
            with appended_together(session):  # a nested block joins the outer one
                append_rows(session, AUDIT_LOG, [_event(2), _event(3, q="it's 50% \\ done")])
            count = session.scalar(select(func.count()).select_from(AuditEvent))
            assert count == 1  # held until the outer block ends
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 4
    with sessions() as session:
        assert _events(session) == [
            ("rep0", {"note": "at once"}, AT),
            ("rep1", {"a": [1, "x"], "b": {"c": None}}, AT),
            ("rep2", {}, AT),
            ("rep3", {"q": "it's 50% \\ done"}, AT),
        ]


def test_rows_of_a_block_that_fails_are_not_written(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        with pytest.raises(ZeroDivisionError), appended_together(session):
            append_rows(session, AUDIT_LOG, [_event(1)])
            _ = 1 / 0
        with appended_together(session):  # the next block starts empty
            append_rows(session, AUDIT_LOG, [_event(2)])
        session.commit()
        assert [actor for actor, _d, _at in _events(session)] == ["rep2"]


def test_appended_rows_roll_back_with_their_transaction(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        with appended_together(session):
            append_rows(session, AUDIT_LOG, [_event(1)])
        session.rollback()
        assert _events(session) == []


def test_a_column_left_out_gets_its_default_as_through_sqlalchemy(
    sessions: sessionmaker[Session],
) -> None:
    row = {"actor": "rep1", "action": "probe", "object_type": "record", "object_id": "1"}
    with db.transaction(sessions) as session, appended_together(session):
        append_rows(session, AUDIT_LOG, [row])
    with sessions() as session:
        [(actor, details, at)] = _events(session)
        assert (actor, details) == ("rep1", {}) and at.year >= 2026


def test_a_row_the_database_refuses_fails_as_a_sqlalchemy_error_and_writes_nothing(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        with pytest.raises(exc.IntegrityError):
            with appended_together(session):
                append_rows(session, AUDIT_LOG, [_event(1)])
                append_rows(session, STAGE_MOVES, [MISSING_RECORD])
            session.commit()  # on PostgreSQL they go with the COMMIT
        session.rollback()
        assert _events(session) == []


def test_held_rows_belong_to_their_transaction_when_it_ends_inside_the_block(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        with appended_together(session):
            append_rows(session, AUDIT_LOG, [_event(1)])
            session.commit()  # written first: they were this transaction's
            append_rows(session, AUDIT_LOG, [_event(2)])
            session.rollback()  # dropped with it
            append_rows(session, AUDIT_LOG, [_event(3)])
        session.commit()
        assert [actor for actor, _d, _at in _events(session)] == ["rep1", "rep3"]


def test_rows_of_one_table_with_other_columns_keep_their_order(
    sessions: sessionmaker[Session],
) -> None:
    probe = Table(
        "appended_probe", MetaData(), Column("id", Integer, primary_key=True),
        Column("a", String(10)), Column("b", String(10), nullable=True),
    )  # fmt: skip
    with db.transaction(sessions) as session:
        probe.create(session.connection())
        with appended_together(session):
            append_rows(session, probe, [{"a": "1"}])
            append_rows(session, probe, [{"a": "2", "b": "x"}])  # other columns
            append_rows(session, probe, [{"a": "3"}, {"b": "y", "a": "4"}])
        found = session.execute(select(probe.c.a).order_by(probe.c.id)).scalars().all()
        assert found == ["1", "2", "3", "4"]
        without_details = {k: v for k, v in _event(6).items() if k != "details"}
        with appended_together(session):  # a column left to its Python-side default
            append_rows(session, AUDIT_LOG, [_event(5)])
            append_rows(session, AUDIT_LOG, [without_details, _event(7)])
    with sessions() as session:
        assert [actor for actor, _d, _at in _events(session)] == ["rep5", "rep6", "rep7"]


def test_a_large_batch_is_written_in_order_and_its_statement_not_kept(
    sessions: sessionmaker[Session],
) -> None:
    kept_before = len(appended._TOGETHER)
    with db.transaction(sessions) as session:
        before = _prepared_on_server(session)
        with appended_together(session):
            append_rows(session, AUDIT_LOG, [_event(n) for n in range(40)])
        assert _prepared_on_server(session) == before  # nor prepared on the server
    with sessions() as session:
        assert [actor for actor, _d, _at in _events(session)] == [f"rep{n}" for n in range(40)]
    assert len(appended._TOGETHER) == kept_before  # one statement per batch size would pile up


def _prepared_on_server(session: Session) -> int | None:
    if session.get_bind().dialect.name != "postgresql":
        return None
    return int(session.scalar(text("SELECT count(*) FROM pg_prepared_statements")) or 0)


# --- one new row each, read back: insert_returning_ids --------------------------------------


def _probe_table() -> Table:
    return Table(
        "returning_probe", MetaData(), Column("id", Integer, primary_key=True),
        Column("note", String(20)),
    )  # fmt: skip


def test_rows_inserted_past_the_unit_of_work_come_back_with_their_ids(
    sessions: sessionmaker[Session],
) -> None:
    probe = _probe_table()
    with db.transaction(sessions) as session:
        probe.create(session.connection())
        session.add(AuditEvent(**_event(0)))  # pending: flushed first, so it gets the first id
        first = appended.insert_returning_ids(
            session, [(AUDIT_LOG, _event(1, q="it's 50%")), (probe, {"note": "a"})]
        )
        second = appended.insert_returning_ids(session, [(probe, {"note": "b"})])
        assert first is not None and second is not None
        logged = dict(session.execute(select(AuditEvent.actor, AuditEvent.id)).all())
        assert first[0] == logged["rep1"] > logged["rep0"]
        notes = dict(session.execute(select(probe.c.note, probe.c.id)).all())
        assert (first[1], second[0]) == (notes["a"], notes["b"]) and notes["b"] > notes["a"]
    with sessions() as session:
        assert _events(session)[1] == ("rep1", {"q": "it's 50%"}, AT)


def test_rows_inserted_past_the_unit_of_work_roll_back_with_their_transaction(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        assert appended.insert_returning_ids(session, [(AUDIT_LOG, _event(1))]) is not None
        session.rollback()
        assert _events(session) == []


def test_a_row_left_to_a_python_side_default_is_not_inserted_past_the_unit_of_work(
    sessions: sessionmaker[Session],
) -> None:
    """The caller takes SQLAlchemy's path instead: only it fills such a default in."""
    without_details = {k: v for k, v in _event(1).items() if k != "details"}
    with sessions() as session:
        assert appended.insert_returning_ids(session, [(AUDIT_LOG, without_details)]) is None
        assert _events(session) == []


def test_a_row_inserted_past_the_unit_of_work_that_the_database_refuses_fails_as_sqlalchemys(
    sessions: sessionmaker[Session],
) -> None:
    with sessions() as session:
        with pytest.raises(exc.IntegrityError):
            appended.insert_returning_ids(
                session, [(AUDIT_LOG, _event(1)), (STAGE_MOVES, MISSING_RECORD)]
            )
        session.rollback()
        assert _events(session) == []
