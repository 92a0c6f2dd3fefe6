"""Maintained KPI roll-ups on SQLite and PostgreSQL: after any sequence of record changes the
figures read from them equal the figures computed from the records, and the rows equal a
rebuild from scratch; a change that bypasses them makes them stale, never wrong."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    column,
    delete,
    func,
    insert,
    literal_column,
    select,
    table,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.expressions.sql import local_day_text
from quotaflow.kpis import rollups
from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.models import READY, STALE, Rollup, RollupSet
from quotaflow.kpis.periods import parse_period
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import (
    NewRecord,
    create_records,
    delete_record,
    restore_record,
    update_record,
)
from tests.packfiles import write_pack
from tests.test_kpis_engine import World, _at, make_world


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> World:
    return make_world(sessions, tmp_path)


PERIODS = ["2025-06", "2025-07", "2025-08", "2025-Q3", "2025-W31", "2025-06-20..2025-09-03"]
ROLLED = {
    "won_revenue",
    "won_deals",
    "lost_deals",
    "avg_amount",
    "fees",
    "qty_total",
    "deals_with_qty",
}


def _figures(world: World, session: Session, *, use: bool) -> dict[Any, Any]:
    engine = KpiEngine(
        session, active_pack(session, world.pack_id), today=date(2025, 12, 31), rollups=use
    )
    kpis = list(active_pack(session, world.pack_id).kpis)
    out = {}
    for period in PERIODS:
        for by in ("rep", "team", "company"):
            for kpi, found in engine.compute(kpis, parse_period(period), by).items():  # type: ignore[arg-type]
                out[(period, by, kpi)] = dict(found.values)
    months = [parse_period(f"2025-{m:02d}") for m in range(6, 10)]
    for (by, i), figures in engine.compute_series(kpis, months, ["rep", "team"]).items():
        for kpi, found in figures.items():
            out[("series", by, i, kpi)] = dict(found.values)
    return out


def _rows(session: Session) -> set[tuple[Any, ...]]:
    """The roll-up rows by KPI (not set id), leaving out rows whose figures went back to 0."""
    query = select(
        RollupSet.kpi_id, Rollup.grain, Rollup.day, Rollup.owner_id, Rollup.n, Rollup.cents,
        Rollup.num,
    ).join(RollupSet, RollupSet.id == Rollup.set_id)  # fmt: skip
    return {
        (k, g, d, o, n, c or 0, round(x or 0.0, 6))
        for k, g, d, o, n, c, x in session.execute(query)
        if n or c or x
    }


def _reset(world: World) -> None:
    with db.transaction(world.sessions) as session:
        session.execute(delete(RecordHistory))
        session.execute(delete(Record))  # bypasses the roll-ups: they go stale...
        rollups.rebuild(session, active_pack(session, world.pack_id))  # ...and are rebuilt


op_strategy = st.one_of(
    st.tuples(
        st.just("create"),
        st.sampled_from(["ann", "bob", "cai"]),
        st.sampled_from(["won", "lost", None]),
        st.integers(0, 10**8),
        st.integers(0, 130),  # day after 1 June 2025
        st.integers(0, 23),
    ),
    st.tuples(st.just("edit"), st.integers(0, 30), st.integers(0, 10**8), st.integers(-5, 40)),
    st.tuples(
        st.just("move"),
        st.integers(0, 30),
        st.sampled_from(["won", "lost", None]),
        st.integers(0, 130),
    ),  # fmt: skip
    st.tuples(st.just("reassign"), st.integers(0, 30), st.sampled_from(["ann", "bob", "cai"])),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("restore"), st.integers(0, 30)),
    st.tuples(st.just("hard_delete"), st.integers(0, 30)),
    st.tuples(st.just("import"), st.integers(1, 6), st.integers(0, 130)),
)


def _apply(world: World, session: Session, op: tuple[Any, ...], ids: list[int]) -> None:
    day0 = date(2025, 6, 1)
    kind = op[0]
    if kind == "create":
        _kind, owner, stage, cents, day, hour = op
        amount = Decimal(cents).scaleb(-2)
        record = world.add(
            session,
            owner,
            stage=stage,
            amount=amount,
            record_date=day0 + timedelta(days=day),
            closed_at=_at(day0 + timedelta(days=day), hour) if stage else None,
            values={
                "amount": str(amount),
                "fee": str(Decimal(cents % 9999).scaleb(-2)),
                "qty": hour,
                "due": (day0 + timedelta(days=day)).isoformat(),
            },  # fmt: skip
        )
        ids.append(record.id)
        return
    if kind == "import":
        _kind, count, day = op
        new = [
            NewRecord(
                owner_id=world.users["bob"],
                team_id=None,
                stage="won",
                amount=Decimal(1000 + i),
                record_date=day0 + timedelta(days=day),
                closed_at=_at(day0 + timedelta(days=day), 23, 30),
                values={"amount": str(1000 + i), "fee": "1.10", "qty": i},
            )  # fmt: skip
            for i in range(count)
        ]
        ids += create_records(
            session, new, pack_id=world.pack_id, pack_version_id=world.version_id,
            form_id="deal", actor_id=None,
        )  # fmt: skip
        return
    if not ids:
        return
    record = session.get(Record, ids[op[1] % len(ids)])
    if record is None:
        return
    if kind == "edit" and record.deleted_at is None:
        _kind, _i, cents, qty = op
        amount = Decimal(cents).scaleb(-2)
        values = {**record.values, "amount": str(amount), "qty": qty}
        update_record(session, record.id, values=values, actor_id=None,
                      expected_version=record.version_no, amount=amount)  # fmt: skip
    elif kind == "move":
        _kind, _i, stage, day = op
        record.stage = stage
        record.closed_at = _at(day0 + timedelta(days=day), 0, 10) if stage else None
        session.flush()
    elif kind == "reassign":
        record.owner_id = world.users[op[2]]
        session.flush()
    elif kind == "delete" and record.deleted_at is None:
        delete_record(session, record, actor_id=None)
    elif kind == "restore" and record.deleted_at is not None:
        restore_record(session, record, actor_id=None)
    elif kind == "hard_delete":
        session.execute(delete(RecordHistory).where(RecordHistory.record_id == record.id))
        session.delete(record)
        session.flush()
        ids.remove(record.id)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batches=st.lists(st.lists(op_strategy, min_size=1, max_size=8), min_size=1, max_size=3))
def test_rollups_follow_every_change_and_give_the_figures_of_the_records(
    world: World, batches: list[list[tuple[Any, ...]]]
) -> None:
    _reset(world)
    ids: list[int] = []
    for batch in batches:  # each batch one transaction, as one request or import would be
        with db.transaction(world.sessions) as session:
            for op in batch:
                _apply(world, session, op, ids)
    with world.session() as session:
        engine = KpiEngine(session, active_pack(session, world.pack_id))
        assert set(engine.rollup_sets()) == ROLLED  # min, max, count_distinct stay live
        maintained = _rows(session)
        assert _figures(world, session, use=True) == _figures(world, session, use=False)
    with db.transaction(world.sessions) as session:
        rollups.rebuild(session, active_pack(session, world.pack_id))
    with world.session() as session:
        assert _rows(session) == maintained


def test_a_bulk_change_that_bypasses_them_makes_them_stale_and_figures_stay_right(
    world: World,
) -> None:
    with db.transaction(world.sessions) as session:
        world.add(session, "ann", stage="won", amount=Decimal("100.00"),
                  closed_at=_at(date(2025, 7, 3)), values={"amount": "100.00"})  # fmt: skip
    july = parse_period("2025-07")
    with db.transaction(world.sessions) as session:
        session.execute(update(Record).values(stage="lost"))
    with world.session() as session:
        states = set(session.scalars(select(RollupSet.state)))
        assert states == {STALE}
        engine = world.engine(session)
        assert engine.rollup_sets() == {}
        figures = engine.compute(["won_deals", "lost_deals"], july, "company")
        assert figures["won_deals"].values[None] == 0
        assert figures["lost_deals"].values[None] == 1
    with db.transaction(world.sessions) as session:
        built = rollups.sync(session, active_pack(session, world.pack_id))
    assert set(built) == ROLLED
    with world.session() as session:
        assert set(session.scalars(select(RollupSet.state))) == {READY}
        engine = world.engine(session)
        assert "lost_deals" in engine.rollup_sets()
        assert engine.figures("lost_deals", july, "company").values[None] == 1


def test_a_republished_kpi_gets_its_own_rollup_and_the_old_one_goes(
    world: World, tmp_path: Path
) -> None:
    from tests.test_kpis_engine import PACK_FILES

    with db.transaction(world.sessions) as session:
        world.add(session, "ann", stage="won", amount=Decimal("80.00"),
                  closed_at=_at(date(2025, 7, 3)), values={"amount": "80.00"})  # fmt: skip
        world.add(session, "ann", stage="won", amount=Decimal("20.00"),
                  closed_at=_at(date(2025, 7, 4)), values={"amount": "20.00"})  # fmt: skip
    files = dict(PACK_FILES)
    files["pack.yaml"] = files["pack.yaml"].replace("1.0.0", "1.1.0")
    files["kpis/all.yaml"] = files["kpis/all.yaml"].replace(
        "aggregate: {form: deal, op: sum, field: amount, where: \"stage == 'won'\", date: closed_at}",
        "aggregate: {form: deal, op: sum, field: amount, where: \"stage == 'won' and amount > 50\", date: closed_at}",
    )
    with db.transaction(world.sessions) as session:
        old = session.scalar(select(RollupSet.id).where(RollupSet.kpi_id == "won_revenue"))
        install_pack(session, load_pack(write_pack(tmp_path / "v2", files)), actor="test")
    with world.session() as session:
        new = session.scalar(select(RollupSet.id).where(RollupSet.kpi_id == "won_revenue"))
        assert new != old and session.get(RollupSet, old) is None
        value = world.engine(session).figures("won_revenue", parse_period("2025-07"), "company")
        assert value.values[None] == Decimal("80.00")


@pytest.mark.parametrize(
    ("stored", "zone", "day"),
    [
        ("2025-03-09 06:59:00.000000", "America/New_York", "2025-03-09"),  # 01:59 EST
        ("2025-03-09 04:59:00.000000", "America/New_York", "2025-03-08"),  # 23:59 EST
        ("2025-11-02 03:30:00.000000", "America/New_York", "2025-11-01"),  # 23:30 EDT
        ("2025-11-02 04:30:00.000000", "America/New_York", "2025-11-02"),  # 00:30 EDT
        ("2025-09-30 15:59:59.999999", "Asia/Shanghai", "2025-09-30"),
        ("2025-09-30 16:00:00.000000", "Asia/Shanghai", "2025-10-01"),
        ("2025-06-30 18:29:00.000000", "Asia/Kolkata", "2025-06-30"),  # half-hour offset
        ("2025-06-30 18:30:00.000000", "Asia/Kolkata", "2025-07-01"),
    ],
)
def test_sqlite_local_day_follows_the_zone_across_dst(stored: str, zone: str, day: str) -> None:
    assert local_day_text(stored, zone) == day
    assert local_day_text(None, zone) is None


def test_the_local_day_is_the_same_on_both_databases(world: World) -> None:
    """The same instants bucketed by the database (SQLite's registered function, PostgreSQL's
    AT TIME ZONE) land on the days Python's zoneinfo gives."""
    instants = [datetime(2025, 9, 30, 15, 59, tzinfo=UTC), datetime(2025, 9, 30, 16, 0, tzinfo=UTC)]
    with db.transaction(world.sessions) as session:
        for at in instants:
            world.add(session, "cai", stage="won", amount=Decimal("1.00"), closed_at=at,
                      values={"amount": "1.00"})  # fmt: skip
    with world.session() as session:
        days = sorted(
            session.scalars(
                select(Rollup.day)
                .join(RollupSet, RollupSet.id == Rollup.set_id)
                .where(RollupSet.kpi_id == "won_deals", Rollup.grain == "d", Rollup.n > 0)
            )
        )
    assert days == [date(2025, 9, 30), date(2025, 10, 1)]


@pytest.mark.parametrize("first", ["writer", "rebuild"])
def test_a_rebuild_and_a_writer_at_the_same_time_leave_them_exact(world: World, first: str) -> None:
    """A deal edited while the roll-ups are rebuilt (an install, `kpi rollups --rebuild`):
    whichever starts first, the other waits for it, and the roll-ups end equal to the records —
    no delta half applied to the old sets and half to the new ones."""
    import threading

    with db.transaction(world.sessions) as session:
        deal = world.add(session, "ann", stage="won", amount=Decimal("100.00"),
                         closed_at=_at(date(2025, 7, 3)), values={"amount": "100.00"})  # fmt: skip
        deal_id = deal.id
    errors: list[BaseException] = []

    def edit() -> None:
        try:
            with db.transaction(world.sessions) as session:
                record = session.get(Record, deal_id)
                assert record is not None
                update_record(session, deal_id, values={"amount": "250.00"}, actor_id=None,
                              expected_version=record.version_no, amount=Decimal("250.00"))  # fmt: skip
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def rebuild() -> None:
        try:
            with db.transaction(world.sessions) as session:
                rollups.rebuild(session, active_pack(session, world.pack_id))
        except BaseException as exc:
            errors.append(exc)

    holder = world.sessions()
    try:
        if first == "writer":  # the edit is flushed, not committed, when the rebuild starts
            record = holder.get(Record, deal_id)
            assert record is not None
            update_record(holder, deal_id, values={"amount": "250.00"}, actor_id=None,
                          expected_version=record.version_no, amount=Decimal("250.00"))  # fmt: skip
            other = threading.Thread(target=rebuild)
        else:  # the rebuild is done, not committed, when the edit starts
            rollups.rebuild(holder, active_pack(holder, world.pack_id))
            other = threading.Thread(target=edit)
        other.start()
        other.join(0.5)
        assert other.is_alive(), "the second one waits for the first"
        holder.commit()
    finally:
        holder.close()
    other.join(10)
    assert not other.is_alive() and not errors, errors
    with world.session() as session:
        engine = world.engine(session)
        assert "won_revenue" in engine.rollup_sets()
        value = engine.figures("won_revenue", parse_period("2025-07"), "company").values[None]
        assert value == Decimal("250.00")
        maintained = _rows(session)
    with db.transaction(world.sessions) as session:
        rollups.rebuild(session, active_pack(session, world.pack_id))
    with world.session() as session:
        assert _rows(session) == maintained


def test_a_delta_statement_kept_for_the_driver_sends_what_sqlalchemy_sent(
    db_engine: Engine,
) -> None:
    """The kept SQL (SQLite: `?` per id, PostgreSQL: `$n` and one array) writes the same row
    as SQLAlchemy's first run, with a parameter used twice and a literal percent sign."""
    dialect = db_engine.dialect.name
    numbers = union_all(*(select(literal_column(str(n)).label("x")) for n in (7, 8, 9))).subquery()
    if dialect == "postgresql":
        chosen = numbers.c.x == func.any(bindparam("qf_ids", type_=ARRAY(BigInteger)))
    else:
        chosen = numbers.c.x.in_(bindparam("qf_ids", expanding=True))
    twice, once = bindparam("word", "ab", type_=String), bindparam("other", "cd", type_=String)
    written = table("kept_probe", column("n"), column("s"))
    statement = insert(written).from_select(
        ["n", "s"],
        select(func.count(), twice + literal_column("'%'", String) + once + twice).where(chosen),
    )
    key = ("probe", "form", +1)
    kept_under = (*key, dialect, 2 if dialect == "sqlite" else None)
    rollups._SQL.pop(kept_under, None)
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TEMPORARY TABLE kept_probe (n INTEGER, s TEXT)"))
        assert rollups._run_compiled(conn, statement, key, [7, 8])  # through SQLAlchemy
        assert rollups._SQL[kept_under] is not None
        assert rollups._run_compiled(conn, statement, key, [7, 8])  # the kept SQL
        assert rollups._run_compiled(conn, statement, key, [7, 8, 9])  # PostgreSQL: kept too
        rows = conn.execute(text("SELECT n, s FROM kept_probe")).all()
    rollups._SQL.pop(kept_under, None)
    rollups._SQL.pop((*key, dialect, 3), None)
    assert rows == [(2, "ab%cdab"), (2, "ab%cdab"), (3, "ab%cdab")]
