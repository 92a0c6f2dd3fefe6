"""Keeping KPI roll-ups up to date, in the transaction of every record change.

A year of figures for every rep, team and the company reads a few thousand roll-up rows
instead of every record (see kpis/models.py for what a row holds). Correctness rests on one
rule: every change to records moves the roll-ups by exactly what the changed records
contributed before and contribute after, computed by the same SQL the KPI engine would run
on the records (`KpiEngine.rollup_rows_query`), so there is no second implementation of a
filter, a date or a money rule.

- An ORM flush that changes records: before the flush, what the changed records contribute
  now (still in the database) is subtracted; after it, what they contribute now is added.
  Creation, edits, stage moves, owner changes, soft delete and restore all go this way.
- A bulk insert that maintains them itself (`create_records`, the importer) adds its new
  records' contributions and marks its statement `HANDLED`.
- Any other bulk INSERT/UPDATE/DELETE on records through a session marks every set stale;
  the engine then queries the records until `sync` rebuilds them (pack install does; so do
  `quotaflow kpi rollups --rebuild` and the demo seeder).

Deltas are added with INSERT ... ON CONFLICT DO UPDATE in a fixed order, so concurrent
writers never conflict on the same row and never lose each other's additions; count and
money stay exact integers. Writes that bypass SQLAlchemy (psql, a restore from a dump) are
not seen: run `quotaflow kpi rollups --rebuild` after them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Table,
    and_,
    bindparam,
    delete,
    event,
    func,
    insert,
    literal,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from quotaflow.db import HELD, execute_on_driver
from quotaflow.expressions.sql import MonthStart
from quotaflow.kpis.models import READY, STALE, Rollup, RollupSet
from quotaflow.packs.compiled import CompiledPack
from quotaflow.records.models import Record
from quotaflow.together import (
    PLACEHOLDER,
    Prepared,
    hold,
    numbered,
    prepared,
    send_together,
    sql_literal,
)

ROLLUPS = cast(Table, Rollup.__table__)
HANDLED = "quotaflow_rollups_handled"  # execution option of a bulk statement that maintains them
GUARDED = "quotaflow.rollups_guarded"  # session.info: packs with ready sets, under the lock
GUARDING = "quotaflow.rollups_guarding"  # session.info: the held list the lock waits in
PENDING = "quotaflow.rollup_pending"  # session.info: records to add back after the flush


def sync(session: Session, pack: CompiledPack) -> list[str]:
    """Make the pack's roll-ups match its KPIs: build the sets a rollable KPI needs, rebuild
    stale ones, drop the ones no KPI uses any more. Returns the KPIs whose set was built."""
    from quotaflow.kpis.engine import KpiEngine

    if session.get_bind().dialect.name == "postgresql":
        # Every writer holds ROW SHARE on the sets from before its first delta to its commit
        # (_packs_with_sets): this waits for those in flight and holds new ones back until the sets
        # are built, so no delta is half applied to old sets and half to new ones. (SQLite
        # has one writer at a time.)
        session.execute(text("LOCK TABLE kpi_rollup_sets IN EXCLUSIVE MODE"))
    engine = KpiEngine(session, pack, rollups=False)
    wanted = {engine.rollup_signature(k): k for k in pack.kpis.values() if engine.rollable(k)}
    existing = session.scalars(select(RollupSet).where(RollupSet.pack_id == pack.id))
    kept = {s.signature: s.id for s in existing if s.state == READY and s.signature in wanted}
    keep = list(kept.values())
    gone = select(RollupSet.id).where(RollupSet.pack_id == pack.id, RollupSet.id.not_in(keep))
    session.execute(delete(Rollup).where(Rollup.set_id.in_(gone)))
    session.execute(
        delete(RollupSet).where(RollupSet.pack_id == pack.id, RollupSet.id.not_in(keep))
    )
    todo = [(sig, kpi) for sig, kpi in wanted.items() if sig not in kept]
    for signature, kpi in todo:
        assert kpi.aggregate is not None
        row = RollupSet(
            pack_id=pack.id, kpi_id=kpi.id, form_id=kpi.aggregate.form, signature=signature
        )
        session.add(row)
        session.flush()
        rows = engine.rollup_rows_query(kpi).subquery()
        session.execute(
            insert(Rollup).from_select(
                ["set_id", "grain", "day", "owner_id", "n", "cents", "num"],
                select(
                    literal(row.id),
                    literal("d"),
                    rows.c.day,
                    rows.c.owner_id,
                    rows.c.n,
                    rows.c.cents,
                    rows.c.num,
                ),
            ),
            execution_options={HANDLED: True},
        )
        month = MonthStart(Rollup.day)
        session.execute(
            insert(Rollup).from_select(
                ["set_id", "grain", "day", "owner_id", "n", "cents", "num"],
                select(
                    literal(row.id),
                    literal("m"),
                    month,
                    Rollup.owner_id,
                    func.sum(Rollup.n),
                    func.sum(Rollup.cents),
                    func.sum(Rollup.num),
                )
                .where(Rollup.set_id == row.id, Rollup.grain == "d")
                .group_by(month, Rollup.owner_id),
            ),
            execution_options={HANDLED: True},
        )
    session.info.pop(GUARDED, None)  # this transaction changed which sets are ready
    return [kpi.id for _sig, kpi in todo]


def rebuild(session: Session, pack: CompiledPack) -> list[str]:
    """Drop every roll-up of the pack and build them again from the records."""
    _set_aside(session, pack)
    return sync(session, pack)


@contextmanager
def deferred(session: Session, pack: CompiledPack) -> Iterator[None]:
    """For loading many records one by one (the demo): the pack's roll-ups are set aside
    (stale, so nothing reads or moves them) and built once at the end, in the same transaction."""
    _set_aside(session, pack)
    yield
    sync(session, pack)


def _set_aside(session: Session, pack: CompiledPack) -> None:
    session.execute(
        update(RollupSet).where(RollupSet.pack_id == pack.id).values(state=STALE),
        execution_options={HANDLED: True},
    )
    session.info.pop(GUARDED, None)


def records_added(session: Session, pack_id: str, form_id: str, ids: Iterable[int]) -> None:
    """Add what newly inserted records contribute (a bulk insert that bypassed the flush)."""
    _move(session, {(pack_id, form_id): list(ids)}, +1)


# --- applying deltas ----------------------------------------------------------------------------


def _packs_with_sets(session: Session) -> set[str]:
    """The packs that have ready sets, read once per transaction under the writers' lock —
    which a rebuild cannot pass until this transaction ends, so the answer holds to the end:
    on PostgreSQL ROW SHARE on the sets (sync takes EXCLUSIVE); on SQLite the database's
    write lock, taken by a statement that changes nothing."""
    found: set[str] | None = session.info.get(GUARDED)
    if found is None and session.get_bind().dialect.name == "postgresql":
        found = session.info[GUARDED] = _guard_postgresql(session)
    if found is None:
        connection = session.connection()
        if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            # pysqlite opens the transaction with the first write, which takes the lock;
            # a transaction already open has written (a stamp, the record) and holds it
            connection.execute(text("UPDATE kpi_rollup_sets SET state = state WHERE 1 = 0"))
        found = session.info[GUARDED] = set(connection.exec_driver_sql(READY_PACKS).scalars())
    return found


# Three statements without parameters, held to go with the transaction's BEGIN and the
# save's first write (together.py). The delta statement below is then run on its generic
# plan: re-planning it for each record cost more than running it (0.7 -> 0.4 ms a save); it
# only looks rows up by id, so one plan suits every call. SET LOCAL ends with the transaction.
READY_PACKS = f"SELECT DISTINCT pack_id FROM kpi_rollup_sets WHERE state = '{READY}'"
GUARD_POSTGRESQL = (
    "LOCK TABLE kpi_rollup_sets IN ROW SHARE MODE",
    "SET LOCAL plan_cache_mode = force_generic_plan",
    READY_PACKS,
)


def _guard_postgresql(session: Session) -> set[str]:
    connection = _hold_guard(session)
    send_together(connection)
    found: set[str] = session.info[GUARDED]
    return found


def _hold_guard(session: Session) -> Any:
    """Hold the lock and the ready packs' read to go with the next statement (unless they
    are held already); the answer lands in session.info[GUARDED]."""
    connection = session.connection()
    held = connection.info.get(HELD)
    if held is None or session.info.get(GUARDING) is not held:  # (a rollback drops the list)

        def answered(rows: list[tuple[str | None, ...]]) -> None:
            session.info.pop(GUARDING, None)
            session.info[GUARDED] = {row[0] for row in rows}

        for statement in GUARD_POSTGRESQL[:-1]:
            hold(connection, statement)
        # prepared: as plain SQL the server planned it on every save (~35 us, thrice its run)
        hold(connection, (prepared(GUARD_POSTGRESQL[-1]), ()), answered)
        session.info[GUARDING] = connection.info[HELD]
    return connection


def guard(session: Session) -> None:
    """Take the roll-ups' writers' lock before this transaction's first write: on PostgreSQL
    held to go in the same round trip as that write (and BEGIN); SQLite is left to the
    writes."""
    if session.get_bind().dialect.name == "postgresql" and GUARDED not in session.info:
        _hold_guard(session)


def _move(session: Session, ids: dict[tuple[str, str], list[int]], sign: int) -> None:
    """Add (sign +1) or subtract (-1) what these records contribute now to every ready set
    of their pack and form: one INSERT ... SELECT ... ON CONFLICT DO UPDATE per chunk, the
    figures never leaving the database, the sets found in the same statement."""
    from quotaflow.packs.services import PackNotInstalled, active_pack

    connection = session.connection()
    dialect = session.get_bind().dialect.name
    for (pack_id, form_id), record_ids in ids.items():
        if not record_ids:
            continue
        if pack_id not in _packs_with_sets(session):
            continue
        try:
            pack = active_pack(session, pack_id)
        except PackNotInstalled:
            continue
        statement = _delta_statement(session, pack, form_id, sign, dialect)
        if statement is None:
            continue
        if _run_compiled(connection, statement, (pack.content_hash, form_id, sign), record_ids):
            continue
        # PostgreSQL takes the ids as one array; SQLite as that many parameters (at most 32766)
        size = 50_000 if dialect == "postgresql" else 5000
        for start in range(0, len(record_ids), size):
            connection.execute(statement, {"qf_ids": record_ids[start : start + size]})


@dataclass(frozen=True)
class _DeltaSql:
    """The delta statement as the driver gets it. SQLite: `?` placeholders, one per id, so
    kept per number of ids. PostgreSQL: numbered `$n` placeholders, the ids one array."""

    text: str
    names: tuple[str, ...]  # the parameters in order; "qf_ids" stands for the ids
    constants: dict[str, Any]
    ids_as_array: bool

    def parameters(self, ids: list[int]) -> tuple[Any, ...]:
        out: list[Any] = []
        for name in self.names:
            if name != "qf_ids":
                out.append(self.constants[name])
            elif self.ids_as_array:
                out.append(ids)
            else:
                out += ids
        return tuple(out)


# Executing the SQLAlchemy statement spent more on its cache key (a 5-10 kB statement,
# walked on every call) than the database spent running it: on SQLite 0.38 -> 0.14 ms a save.
# On PostgreSQL psycopg also parsed its placeholders on every call (it keeps the parse of
# statements under 4 kB only): 0.14 ms of a save's 2.3 in the worker. So the SQL a save's
# delta sends is kept per (pack content, form, sign, dialect, number of ids on SQLite) and
# sent as is; on PostgreSQL with numbered placeholders, prepared by name with its constants
# written in, and held to go with the save's next round trip (together.py). The first run
# goes through SQLAlchemy, and its SQL is kept only if the parameters built here equal the
# ones SQLAlchemy sent (a constant it had to convert keeps the general path).
_SQL: dict[tuple[Any, ...], _DeltaSql | None] = {}
_FEW = 8  # ids; imports take the general path


def _run_compiled(connection: Any, statement: Any, key: tuple[Any, ...], ids: list[int]) -> bool:
    """Run the delta for a few records from its kept SQL; False when it must take the general
    path (many ids, or SQL that could not be kept)."""
    dialect = connection.dialect.name
    if dialect not in ("sqlite", "postgresql") or len(ids) > _FEW:
        return False
    full = (*key, dialect, len(ids) if dialect == "sqlite" else None)
    if full in _SQL and _SQL[full] is None:
        return False
    kept = _SQL.get(full)
    if kept is not None:
        # straight to the driver: SQLAlchemy's own per-call work was the cost. This runs
        # under the writers' lock (_packs_with_sets took it), after the save's first write.
        _send(connection, kept, ids)
        return True
    sent: list[tuple[str, Any]] = []

    def keep(_conn: Any, _cursor: Any, sql: str, params: Any, *_args: Any) -> None:
        sent.append((sql, params))

    event.listen(connection, "before_cursor_execute", keep)
    try:
        connection.execute(statement, {"qf_ids": list(ids)})
    finally:
        event.remove(connection, "before_cursor_execute", keep)
    _SQL[full] = _kept_sql(connection.dialect, statement, sent, ids)
    return True


def _kept_sql(
    dialect: Any, statement: Any, sent: list[tuple[str, Any]], ids: list[int]
) -> _DeltaSql | None:
    """What to send next time, if it provably sends what SQLAlchemy just did; else None."""
    if len(sent) != 1:
        return None
    sql, params = sent[0]
    compiled = statement.compile(dialect=dialect)
    constants = {k: v for k, v in compiled.params.items() if k != "qf_ids"}
    known = {*constants, "qf_ids"}
    if dialect.name == "sqlite":
        candidate = _DeltaSql(sql, tuple(compiled.positiontup or ()), constants, False)
        if not set(candidate.names) <= known:  # a parameter SQLAlchemy made up at run time
            return None
        return candidate if list(candidate.parameters(ids)) == list(params) else None
    text, names = numbered(sql)
    candidate = _DeltaSql(text, names, constants, True)
    if not set(candidate.names) <= known:  # e.g. an expanding IN's own names
        return None
    built = dict(zip(candidate.names, candidate.parameters(ids), strict=True))
    return candidate if built == dict(params) else None


def _send(connection: Any, kept: _DeltaSql, ids: list[int]) -> None:
    if not kept.ids_as_array:
        execute_on_driver(connection, kept.text, kept.parameters(ids))
        return
    # PostgreSQL: held to go with the save's next statement (its history rows and COMMIT);
    # whatever runs next in the transaction runs after it, so nothing reads around it
    hold(connection, (_prepared_delta(connection, kept), [ids]))


_PREPARED: dict[tuple[str, str], Prepared] = {}


def _prepared_delta(connection: Any, kept: _DeltaSql) -> Prepared:
    """The delta with its constants (pack, signatures, time zone, the sign) written in as
    literals: only the ids are left a parameter ($1), so a save sends one value, not forty.
    Kept per text and constants: adding and subtracting differ in constants only."""
    key = (kept.text, repr(sorted(kept.constants.items())))
    found = _PREPARED.get(key)
    if found is None:
        values = [
            "$1" if name == "qf_ids" else sql_literal(connection, kept.constants[name])
            for name in kept.names
        ]
        text = PLACEHOLDER.sub(lambda m: values[int(m.group(1)) - 1], kept.text)
        found = _PREPARED[key] = prepared(text)
    return found


# Built once per (pack content, form, sign, dialect): building SQLAlchemy statements
# costs far more than running them, and a record save runs this on every flush.
_STATEMENTS: dict[tuple[Any, ...], Any] = {}


def _delta_statement(
    session: Session,
    pack: CompiledPack,
    form_id: str,
    sign: int,
    dialect: str,
) -> Any | None:
    """INSERT INTO kpi_rollups the day and month rows of what the records `qf_ids`
    contribute to every ready set fed by the form (times `sign`), adding to rows already
    there. Rows come sorted by key, so concurrent writers lock them in the same order."""
    from quotaflow.kpis.engine import KpiEngine

    key = (pack.content_hash, form_id, sign, dialect)
    if key in _STATEMENTS:
        return _STATEMENTS[key]
    engine = KpiEngine(session, pack, rollups=False)
    ids: Any = Record.id.in_(bindparam("qf_ids", expanding=True))
    if dialect == "postgresql":  # one array parameter, not thousands: planned as PK lookups
        ids = Record.id == func.any(bindparam("qf_ids", type_=ARRAY(BigInteger)))
    parts = []
    seen: set[str] = set()
    for kpi in pack.kpis.values():
        if kpi.aggregate is None or kpi.aggregate.form != form_id or not engine.rollable(kpi):
            continue
        signature = engine.rollup_signature(kpi)
        if signature in seen:
            continue
        seen.add(signature)
        rows = engine.rollup_rows_query(kpi, ids).subquery()
        ready = and_(
            RollupSet.pack_id == pack.id,
            RollupSet.signature == signature,
            RollupSet.state == READY,
        )
        parts.append(
            select(RollupSet.id.label("set_id"), rows.c.owner_id, rows.c.day, rows.c.n,
                   rows.c.cents, rows.c.num)
            .select_from(rows)
            .join(RollupSet, ready)  # no ready set, no rows: the delta goes nowhere
        )  # fmt: skip
    if not parts:
        _STATEMENTS[key] = None
        return None
    # a CTE: planned and run once for both grains (a subquery named twice is done twice)
    found = (parts[0] if len(parts) == 1 else union_all(*parts)).cte("qf_found")
    month = MonthStart(found.c.day)
    days = select(
        found.c.set_id, literal("d").label("grain"), found.c.day, found.c.owner_id,
        (found.c.n * sign).label("n"), (found.c.cents * sign).label("cents"),
        (found.c.num * sign).label("num"),
    )  # fmt: skip
    months = select(
        found.c.set_id, literal("m").label("grain"), month.label("day"), found.c.owner_id,
        (func.sum(found.c.n) * sign).label("n"), (func.sum(found.c.cents) * sign).label("cents"),
        (func.sum(found.c.num) * sign).label("num"),
    ).group_by(found.c.set_id, month, found.c.owner_id)  # fmt: skip
    both = union_all(days, months).subquery("qf_rows")
    ordered = (
        select(both)
        .where(literal(True))  # SQLite needs a WHERE before ON CONFLICT (a parsing ambiguity)
        .order_by(both.c.set_id, both.c.grain, both.c.day, both.c.owner_id)
    )
    insert_ = (pg_insert if dialect == "postgresql" else sqlite_insert)(ROLLUPS).from_select(
        ["set_id", "grain", "day", "owner_id", "n", "cents", "num"], ordered
    )
    new, t = insert_.excluded, ROLLUPS.c
    statement = insert_.on_conflict_do_update(
        index_elements=[t.set_id, t.grain, t.day, t.owner_id],
        set_={
            "n": t.n + new.n,
            "cents": func.coalesce(t.cents + new.cents, t.cents, new.cents),
            "num": func.coalesce(t.num + new.num, t.num, new.num),
        },
    )
    _STATEMENTS[key] = statement
    return statement


def _by_form(records: Iterable[Record]) -> dict[tuple[str, str], list[int]]:
    out: dict[tuple[str, str], list[int]] = defaultdict(list)
    for record in records:
        out[(record.pack_id, record.form_id)].append(record.id)
    return out


# --- session events -----------------------------------------------------------------------------


@event.listens_for(Session, "before_flush")
def _subtract_before_flush(session: Session, _context: Any, _instances: Any) -> None:
    changed = [
        obj
        for obj in session.dirty
        if isinstance(obj, Record) and obj.id is not None and session.is_modified(obj)
    ]
    gone = [obj for obj in session.deleted if isinstance(obj, Record) and obj.id is not None]
    if not changed and not gone:
        return
    with session.no_autoflush:
        _move(session, _by_form([*changed, *gone]), -1)
    session.info[PENDING] = changed


@event.listens_for(Session, "after_flush")
def _add_after_flush(session: Session, _context: Any) -> None:
    changed: list[Record] = session.info.pop(PENDING, [])
    new = [obj for obj in session.new if isinstance(obj, Record)]
    if not changed and not new:
        return
    with session.no_autoflush:
        _move(session, _by_form([*new, *changed]), +1)


@event.listens_for(Session, "do_orm_execute")
def _stale_on_bulk_statements(state: Any) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    if state.execution_options.get(HANDLED):
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) == "records":
        state.session.connection().execute(
            update(RollupSet).where(RollupSet.state == READY).values(state=STALE)
        )
        state.session.info.pop(GUARDED, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(GUARDED, None)
    session.info.pop(GUARDING, None)
    session.info.pop(PENDING, None)
