"""The demo company's funnel from the command line: exported totals match a direct SQL count."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

from click.testing import CliRunner
from sqlalchemy import func, select

from quotaflow import db
from quotaflow.cli import main
from quotaflow.records.models import Record


def test_demo_funnel_export_matches_sql(runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    assert runner.invoke(main, ["demo", "--today", "2026-11-24", "--seed", "3"]).exit_code == 0
    out = tmp_path / "funnel.csv"
    result = runner.invoke(
        main,
        [
            "pipeline",
            "funnel",
            "b2b",
            "--from",
            "2026-01-01",
            "--to",
            "2026-06-30",
            "--csv",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(out.read_text(encoding="utf-8").splitlines()))
    table = {r[0]: r for r in rows[1:] if len(r) == 7}
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            counts = dict(
                conn.execute(
                    select(Record.stage, func.count())
                    .where(
                        Record.form_id == "deal",
                        Record.created_at >= datetime(2026, 1, 1),
                        Record.created_at < datetime(2026, 7, 1),
                    )
                    .group_by(Record.stage)
                ).all()
            )
            won_cents = conn.execute(
                select(func.sum(Record.amount_cents)).where(
                    Record.form_id == "deal",
                    Record.stage == "won",
                    Record.created_at >= datetime(2026, 1, 1),
                    Record.created_at < datetime(2026, 7, 1),
                )
            ).scalar_one()
    finally:
        engine.dispose()
    assert {stage: int(row[2]) for stage, row in table.items() if int(row[2])} == counts
    assert table["won"][3] == f"{won_cents / 100:.2f}"
    assert ["records", str(sum(counts.values()))] in rows
    # stale deals are listed too
    stale = runner.invoke(main, ["pipeline", "stale", "b2b", "--today", "2026-11-24"])
    assert stale.exit_code == 0 and stale.output.strip().endswith("stale deals")


def test_unknown_pipeline_is_a_message(runner: CliRunner) -> None:
    assert runner.invoke(main, ["demo", "--today", "2026-11-24"]).exit_code == 0
    result = runner.invoke(
        main, ["pipeline", "funnel", "nope", "--from", "2026-01-01", "--to", "2026-01-31"]
    )
    assert result.exit_code == 1
    assert "no pipeline 'nope' in pack b2b_manufacturer" in result.output
