"""Time the KPI engine against a hand-written SQL query (the floor), in one run.

    .venv/bin/python bench/kpis.py [--records 100000] [--repeat 5] [--keep PATH]

Generates N deal records for the stock pack's demo org (18 reps in 4 teams, 3 regions)
spread over 2025-2026 in a fresh SQLite file, and in PostgreSQL too when DATABASE_URL
points to one (the database must be empty: the script migrates it and fills it). Then it
times won_revenue for 2026-Q3 by rep, by team and for the company through
`KpiEngine.figures` (query building, the GROUP BY, Decimal conversion) against a
hand-written SQL query for the same figures, checks both give the same numbers, and prints
the best of --repeat runs of each.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from quotaflow import db
from quotaflow.demo import build_demo_org
from quotaflow.kpis.engine import KpiEngine
from quotaflow.kpis.periods import parse_period
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack, active_version
from quotaflow.packs.validate import load_pack
from quotaflow.records.models import Record
from quotaflow.resources import stock_pack_dir

PERIOD = "2026-Q3"
BATCH = 20_000


def fill(url: str, records: int, seed: int = 7) -> None:
    """Migrate, install the stock pack and the demo org, then bulk-insert `records` deals."""
    db.upgrade(url)
    engine = db.make_engine(url)
    sessions = db.make_sessionmaker(engine)
    rng = random.Random(seed)
    with db.transaction(sessions) as session:
        pack = load_pack(stock_pack_dir())
        install_pack(session, pack, actor="bench")
        version = active_version(session, pack.id).id
        _logins, reps = build_demo_org(session, date(2024, 1, 1))
        owners = [(rep.id, team.id) for rep, team in reps]
    start = datetime(2025, 1, 1, tzinfo=UTC)
    span = int((datetime(2027, 1, 1, tzinfo=UTC) - start).total_seconds())
    stages = ["won"] * 4 + ["lost"] * 4 + ["quotation", "negotiation"]
    done = 0
    with engine.begin() as conn:
        while done < records:
            rows: list[dict[str, Any]] = []
            for _ in range(min(BATCH, records - done)):
                owner, team = rng.choice(owners)
                created = start + timedelta(seconds=rng.randrange(span))
                stage = rng.choice(stages)
                cents = rng.randrange(1_000_00, 2_000_000_00)
                closed = created + timedelta(days=rng.randint(5, 90))
                rows.append(
                    {
                        "pack_id": "b2b_manufacturer",
                        "pack_version_id": version,
                        "form_id": "deal",
                        "owner_id": owner,
                        "team_id": team,
                        "stage": stage,
                        "values": {"customer": "Acme", "amount": str(Decimal(cents).scaleb(-2))},
                        "amount_cents": cents,
                        "record_date": created.date(),
                        "created_at": created,
                        "updated_at": created,
                        "closed_at": closed if stage in ("won", "lost") else None,
                        "version_no": 1,
                    }
                )
            conn.execute(insert(Record), rows)
            done += len(rows)
    if url.startswith("postgresql"):
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE records"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    engine.dispose()


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), result


HAND_BY_REP = """
SELECT owner_id, SUM(amount_cents) FROM records
WHERE pack_id = :pack AND form_id = 'deal' AND deleted_at IS NULL AND stage = 'won'
  AND closed_at >= :start AND closed_at < :stop
GROUP BY owner_id
"""
HAND_COMPANY = """
SELECT SUM(amount_cents) FROM records
WHERE pack_id = :pack AND form_id = 'deal' AND deleted_at IS NULL AND stage = 'won'
  AND closed_at >= :start AND closed_at < :stop
"""


def run(url: str, repeat: int) -> None:
    engine = db.make_engine(url)
    period = parse_period(PERIOD)
    with Session(engine) as session:
        pack = active_pack(session, "b2b_manufacturer")
        kpis = KpiEngine(session, pack)
        start, stop = period.utc_bounds(pack.pack.timezone)
        if url.startswith("sqlite"):  # SQLite keeps UTC date-times as text
            bounds: dict[str, Any] = {
                "start": start.strftime("%Y-%m-%d %H:%M:%S.%f"),
                "stop": stop.strftime("%Y-%m-%d %H:%M:%S.%f"),
            }
        else:
            bounds = {"start": start, "stop": stop}
        params = {"pack": "b2b_manufacturer", **bounds}
        total = session.scalar(text("SELECT COUNT(*) FROM records"))
        print(f"  {total:,} records; won_revenue {PERIOD} (best of {repeat})")
        print(f"  {'grouping':<10} {'engine':>10} {'hand SQL':>10} {'ratio':>7}")
        for by in ("rep", "team", "company"):
            kpis._org = None  # each run loads the org, as a request would
            t_engine, ours = best(lambda by=by: kpis.figures("won_revenue", period, by), repeat)
            if by == "rep":
                t_hand, hand = best(
                    lambda: dict(session.execute(text(HAND_BY_REP), params).all()), repeat
                )
                expected = {k: Decimal(v).scaleb(-2) for k, v in hand.items()}
                got = {k: v for k, v in ours.values.items() if k in expected}
            elif by == "company":
                t_hand, hand = best(lambda: session.scalar(text(HAND_COMPANY), params), repeat)
                expected = {None: Decimal(hand or 0).scaleb(-2)}
                got = dict(ours.values)
            else:  # the floor for teams: the same GROUP BY owner, rolled up by hand
                t_hand, hand = best(
                    lambda: dict(session.execute(text(HAND_BY_REP), params).all()), repeat
                )
                expected, got = {}, {}
            assert got == expected, f"engine and hand-written SQL differ by {by}"
            print(
                f"  {by:<10} {t_engine * 1000:>8.1f}ms {t_hand * 1000:>8.1f}ms "
                f"{t_engine / t_hand:>6.2f}x"
            )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="Write the SQLite file here (and keep it).")
    args = parser.parse_args()
    print(
        f"Python {platform.python_version()} on {platform.machine()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = args.keep or Path(tmp) / "bench.db"
        if path.exists():
            path.unlink()
        url = f"sqlite:///{path}"
        t0 = time.perf_counter()
        fill(url, args.records)
        print(f"SQLite ({time.perf_counter() - t0:.1f}s to generate)")
        run(url, args.repeat)
    pg = os.environ.get("DATABASE_URL", "")
    if pg.startswith("postgresql"):
        t0 = time.perf_counter()
        fill(pg, args.records)
        print(f"PostgreSQL ({time.perf_counter() - t0:.1f}s to generate)")
        run(pg, args.repeat)


if __name__ == "__main__":
    main()
