"""Importing a 100,000-row CSV of opportunities, beside a hand-written executemany baseline.

    .venv/bin/python bench/imports.py [--rows 100000] [--no-postgres]

For SQLite (a file) and PostgreSQL (the tests' throwaway server, when its binaries exist):
migrate, install the CRM walk-through pack and an org of 35 agents, write a CSV of --rows
opportunities (every stage, blank dates and values on open deals), then time
`import_records` — read the file, check every row through the form engine (types, choices,
required_if rules, owner, stage), write records, history, stage moves and KPI roll-ups in one transaction
— against the floor: the same record rows inserted with one executemany, nothing checked.
Goal: at least 10,000 validated rows per second.
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from quotaflow import db  # noqa: E402
from quotaflow.org.services import add_membership, add_user, ensure_team  # noqa: E402
from quotaflow.packs.install import install_pack  # noqa: E402
from quotaflow.packs.services import active_pack, active_version_id  # noqa: E402
from quotaflow.packs.validate import load_pack  # noqa: E402
from quotaflow.records.importing import ImportPlan, import_records, read_table  # noqa: E402
from quotaflow.records.services import RECORDS  # noqa: E402

PACK = REPO / "definitions" / "packs" / "crm_walkthrough"
PRODUCTS = ["GTX Basic", "GTX Pro", "MG Special", "MG Advanced", "GTX Plus Pro", "GTK 500"]
HEADER = ["opportunity_id", "sales_agent", "product", "account", "deal_stage", "engage_date",
          "close_date", "close_value"]  # fmt: skip


def write_csv(path: Path, rows: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HEADER)
        for i in range(rows):
            stage = rng.choice(["Won", "Won", "Lost", "Engaging", "Prospecting"])
            engaged = date(2016, 10, 1) + timedelta(days=rng.randrange(450))
            closed = (
                engaged + timedelta(days=rng.randint(5, 120)) if stage in ("Won", "Lost") else None
            )
            value = (
                str(rng.randint(50, 30000)) if stage == "Won" else ("0" if stage == "Lost" else "")
            )
            out.writerow([
                f"OPP{i:07d}", f"Agent {i % 35:02d}", rng.choice(PRODUCTS), "Acme", stage,
                "" if stage == "Prospecting" else engaged.isoformat(),
                closed.isoformat() if closed else "", value,
            ])  # fmt: skip


def prepare(url: str) -> None:
    db.upgrade(url)
    sessions = db.make_sessionmaker(db.make_engine(url))
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(PACK), actor="bench")
        company = ensure_team(session, key="company", name="MavenTech")
        team = ensure_team(session, key="central", name="Central", parent=company)
        for i in range(35):
            user = add_user(session, username=f"agent.{i:02d}", display_name=f"Agent {i:02d}")
            add_membership(session, user=user, team=team, role="rep", valid_from=date(2016, 1, 1))


def measure(label: str, url: str, csv_path: Path) -> list[str]:
    prepare(url)
    engine = db.make_engine(url)
    sessions = db.make_sessionmaker(engine)
    plan = ImportPlan(
        "deal", {"close_value": "amount"}, owner_column="sales_agent",
        stage_column="deal_stage", date_field="engage_date", closed_field="close_date",
    )  # fmt: skip
    started = time.perf_counter()
    header, rows = read_table(csv_path)
    with db.transaction(sessions) as session:
        result = import_records(
            session, active_pack(session, "crm_walkthrough"), plan, header, rows
        )
    ours = time.perf_counter() - started
    assert result.imported == len(rows), result.problems[:3]
    with sessions() as session:
        version = active_version_id(session, "crm_walkthrough")
        owner = session.execute(text("SELECT min(id) FROM users")).scalar_one()
    params: list[dict[str, Any]] = [
        {"pack_id": "crm_walkthrough", "pack_version_id": version, "form_id": "deal",
         "owner_id": owner, "team_id": None, "stage": "won", "values": row,
         "amount_cents": None, "record_date": None, "closed_at": None, "version_no": 1}
        for _n, row in rows
    ]  # fmt: skip
    started = time.perf_counter()
    with engine.begin() as conn:
        for i in range(0, len(params), 2000):
            conn.execute(insert(RECORDS), params[i : i + 2000])
    floor = time.perf_counter() - started
    engine.dispose()
    n = len(rows)
    return [
        f"{label}: {n:,} rows",
        f"  import_records (read, check every row, write records + history + stage moves + KPI roll-ups): "
        f"{ours:.2f} s = {n / ours:,.0f} rows/s",
        f"  baseline: executemany of the same records, unchecked, no history: "
        f"{floor:.2f} s = {n / floor:,.0f} rows/s",
        f"  goal >= 10,000 validated rows/s: {'met' if n / ours >= 10_000 else 'NOT met'}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv_path = work / "opportunities.csv"
        write_csv(csv_path, args.rows)
        for line in measure("SQLite", f"sqlite:///{work / 'bench.db'}", csv_path):
            print(line, flush=True)
        if args.no_postgres:
            return
        from tests.pgserver import PostgresUnavailable, start_server

        try:
            server = start_server()
        except PostgresUnavailable as exc:
            print(f"PostgreSQL: not measured ({exc})")
            return
        try:
            for line in measure("PostgreSQL", server.url("postgres"), csv_path):
                print(line, flush=True)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
