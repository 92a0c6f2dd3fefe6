"""The KPI cache: a figure is computed once and reused, and any change to its inputs — a
record created or edited, a bulk import, a membership change — makes it recomputed, also
when the change comes from another connection (another worker); a session with uncommitted
changes never reads or fills the cache."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db, stamps
from quotaflow.kpis import cache
from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.periods import parse_period
from quotaflow.org.models import Membership, Team, User
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack, active_version_id
from quotaflow.packs.validate import load_pack
from quotaflow.records.services import NewRecord, create_record, create_records
from tests.packfiles import write_pack
from tests.test_kpis_engine import PACK_FILES

Q3 = parse_period("2025-Q3")


@pytest.fixture
def world(sessions: sessionmaker[Session], tmp_path: Path) -> dict[str, Any]:
    cache.clear()
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(write_pack(tmp_path / "pack", PACK_FILES)), actor="test")
        team = Team(key="east", name="East")
        other = Team(key="west", name="West")
        session.add_all([team, other])
        session.flush()
        ann = User(username="ann", display_name="Ann")
        session.add(ann)
        session.flush()
        session.add(
            Membership(user_id=ann.id, team_id=team.id, role="rep", valid_from=date(2024, 1, 1))
        )
        ids = {
            "ann": ann.id,
            "east": team.id,
            "west": other.id,
            "version": active_version_id(session, "kpitest"),
        }
    return {"sessions": sessions, **ids}


def won(world: dict[str, Any], session: Session, amount: str) -> None:
    create_record(
        session, pack_id="kpitest", pack_version_id=world["version"], form_id="deal",
        owner_id=world["ann"], team_id=world["east"], values={"amount": amount}, actor_id=None,
        stage="won", amount=Decimal(amount), closed_at=db_instant(),
    )  # fmt: skip


def db_instant() -> Any:
    from datetime import UTC, datetime

    return datetime(2025, 8, 1, 4, tzinfo=UTC)


class Counting:
    """Counts how often the engine really goes to the database for an aggregate."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = KpiEngine.aggregate

        def counted(engine: KpiEngine, *args: Any) -> Any:
            self.calls += 1
            return real(engine, *args)

        monkeypatch.setattr(KpiEngine, "aggregate", counted)


def figure(world: dict[str, Any], by: str = "company", session: Session | None = None) -> Any:
    own = session or world["sessions"]()
    try:
        engine = KpiEngine(own, active_pack(own, "kpitest"))
        return dict(engine.compute(["won_revenue", "win_rate"], Q3, by)["won_revenue"].values)  # type: ignore[arg-type]
    finally:
        if session is None:
            own.close()


def test_a_figure_is_reused_until_an_input_changes(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = Counting(monkeypatch)
    with db.transaction(world["sessions"]) as session:
        won(world, session, "100")
    assert figure(world) == {None: Decimal("100.00")}
    calls = counter.calls
    assert figure(world) == {None: Decimal("100.00")} and counter.calls == calls  # from the cache

    with db.transaction(world["sessions"]) as session:  # a record created
        won(world, session, "50")
    assert figure(world) == {None: Decimal("150.00")} and counter.calls > calls

    calls = counter.calls
    with db.transaction(world["sessions"]) as session:  # a bulk import (Core inserts)
        create_records(session, [NewRecord(world["ann"], world["east"], {"amount": "5"}, stage="won",
                                           amount=Decimal("5"), closed_at=db_instant())],
                       pack_id="kpitest", pack_version_id=world["version"], form_id="deal", actor_id=None)  # fmt: skip
    assert figure(world) == {None: Decimal("155.00")} and counter.calls > calls

    by_team = figure(world, "team")
    assert by_team[world["east"]] == Decimal("155.00")
    with db.transaction(world["sessions"]) as session:  # ann moves team: team figures change
        session.query(Membership).filter_by(user_id=world["ann"]).update({"team_id": world["west"]})
        session.add(
            Membership(
                user_id=world["ann"], team_id=world["west"], role="rep", valid_from=date(2024, 1, 1)
            )
        )
    assert figure(world, "team").get(world["west"]) == Decimal("155.00")


def test_a_change_from_another_connection_is_seen(world: dict[str, Any]) -> None:
    assert figure(world) == {None: Decimal("0.00")}
    other = db.make_sessionmaker(world["sessions"].kw["bind"])  # another worker's connection pool
    with db.transaction(other) as session:
        won(world, session, "70")
    assert figure(world) == {None: Decimal("70.00")}


def test_uncommitted_changes_bypass_the_cache(world: dict[str, Any]) -> None:
    assert figure(world) == {None: Decimal("0.00")}
    session = world["sessions"]()
    try:
        won(world, session, "30")
        session.flush()
        assert figure(world, session=session) == {None: Decimal("30.00")}  # its own view
        session.rollback()
        assert figure(world, session=session) == {None: Decimal("0.00")}
    finally:
        session.close()
    assert figure(world) == {None: Decimal("0.00")}


def test_old_data_stamps_are_pruned_and_the_stamp_still_moves(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """data_changes keeps only recent rows (one is written per change), and the newest id —
    the stamp every worker compares — keeps growing."""
    from sqlalchemy import func, select

    monkeypatch.setattr(stamps, "PRUNE_EVERY", 5)
    seen = []
    for i in range(12):
        with db.transaction(world["sessions"]) as session:
            won(world, session, f"{i + 1}.00")
        with world["sessions"]() as session:
            seen.append(cache.stamp_for(session))
            rows = session.scalar(select(func.count()).select_from(cache.DataChange))
            assert rows is not None and rows <= 5
    assert seen == sorted(seen) and len(set(seen)) == 12
