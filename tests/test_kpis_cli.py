"""`quotaflow kpi show` and `quotaflow target show` on the demo company (both databases)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

from click.testing import CliRunner
from openpyxl import load_workbook
from sqlalchemy import func, select

from quotaflow import db
from quotaflow.cli import main
from quotaflow.records.models import Record

TODAY = "2026-11-24"


def _run(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_kpi_and_target_show_on_the_demo(runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    _run(runner, "demo", "--today", TODAY, "--seed", "7")

    # won revenue for the company equals a direct SQL sum (Shanghai days: UTC+8, no DST)
    out = _run(
        runner,
        "kpi",
        "show",
        "won_revenue",
        "--period",
        "2026-Q3",
        "--by",
        "company",
        "--format",
        "json",
    )
    company = json.loads(out)
    assert company[0]["scope"] == "company"
    engine = db.make_engine(db_url)
    try:
        with engine.connect() as conn:
            from datetime import UTC, datetime

            cents = conn.scalar(
                select(func.sum(Record.amount_cents)).where(
                    Record.form_id == "deal",
                    Record.stage == "won",
                    Record.deleted_at.is_(None),
                    Record.closed_at >= datetime(2026, 6, 30, 16, tzinfo=UTC),
                    Record.closed_at < datetime(2026, 9, 30, 16, tzinfo=UTC),
                )
            )
    finally:
        engine.dispose()
    assert Decimal(company[0]["won_revenue"]) == Decimal(cents).scaleb(-2) > 0

    # by rep, as CSV: the reps add up to the company
    out = _run(
        runner,
        "kpi",
        "show",
        "won_revenue",
        "--period",
        "2026-Q3",
        "--by",
        "rep",
        "--format",
        "csv",
    )
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 18 and rows[0].keys() == {"rep", "name", "won_revenue"}
    assert sum(Decimal(r["won_revenue"]) for r in rows) == Decimal(company[0]["won_revenue"])

    # by team, as a table: the tree with regions rolling up their teams
    out = _run(runner, "kpi", "show", "won_deals", "--period", "2026-Q3", "--by", "team")
    assert "East region" in out and "  East Key Accounts" in out

    # a formula KPI: win rate shown as a percentage
    out = _run(runner, "kpi", "show", "win_rate", "--period", "2026-Q3", "--by", "company")
    assert " %" in out

    # targets: the reps' targets add up to the plan total; pace columns are there
    out = _run(
        runner,
        "target",
        "show",
        "revenue_fy2026",
        "--by",
        "rep",
        "--format",
        "json",
        "--today",
        TODAY,
    )
    reps = json.loads(out)
    assert len(reps) == 18
    assert sum(Decimal(r["target"]) for r in reps) == Decimal("135000000.00")
    assert {"actual", "attainment", "expected", "projected", "gap"} <= reps[0].keys()
    out = _run(
        runner,
        "target",
        "show",
        "revenue_fy2026",
        "--by",
        "team",
        "--period",
        "2026-Q3",
        "--format",
        "json",
        "--today",
        TODAY,
    )
    teams = {r["key"]: r for r in json.loads(out)}
    # Jul-Sep weigh 9+9+9 of 100; each rep's months are rounded (the stock plan: to thousands,
    # so every row and column adds up), so the company's quarter is within one rounding per rep
    # and month of the exact share: 18 reps, 3 months
    q3 = Decimal(teams["company"]["target"])
    assert abs(q3 - Decimal("36450000")) <= 18 * 3 * Decimal("1000")
    assert q3 == sum(Decimal(teams[k]["target"]) for k in ("east", "south", "north"))
    out = _run(
        runner,
        "target",
        "show",
        "revenue_fy2026",
        "--tier",
        "stretch",
        "--by",
        "team",
        "--format",
        "csv",
        "--today",
        TODAY,
    )
    assert "162000000.00" in out

    # any KPI or target table exports to XLSX (numbers stay numbers) and to a CSV file
    book_path = tmp_path / "reps.xlsx"
    _run(runner, "kpi", "show", "won_revenue", "--period", "2026-Q3", "--by", "rep",
         "--format", "xlsx", "--output", str(book_path))  # fmt: skip
    sheet = load_workbook(book_path).active
    assert sheet is not None
    table = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert table[0] == ["rep", "name", "won_revenue"]
    assert sorted((r[0], Decimal(str(r[2]))) for r in table[1:]) == sorted(
        (r["rep"], Decimal(r["won_revenue"])) for r in rows
    )
    targets_csv = tmp_path / "targets.csv"
    _run(runner, "target", "show", "revenue_fy2026", "--by", "rep", "--format", "csv",
         "--output", str(targets_csv), "--today", TODAY)  # fmt: skip
    exported = list(csv.DictReader(targets_csv.open(encoding="utf-8-sig")))  # Excel's BOM
    assert sum(Decimal(r["target"]) for r in exported) == Decimal("135000000.00")
    refused = runner.invoke(main, ["kpi", "show", "won_revenue", "--format", "xlsx"])
    assert refused.exit_code != 0 and "add --output FILE.xlsx" in refused.output


def test_errors_are_messages(runner: CliRunner) -> None:
    _run(runner, "demo", "--today", TODAY, "--seed", "7")
    cases = [
        (
            ["kpi", "show", "won_revenue", "--period", "2025-Q5"],
            "'2025-Q5' is not a period (a quarter is Q1 to Q4): use",
        ),
        (["kpi", "show", "revenue"], "no KPI 'revenue' in pack b2b_manufacturer"),
        (["kpi", "show", "won_revenue", "--pack", "nope"], "no installed pack 'nope'"),
        (
            ["target", "show", "nope"],
            "no target plan 'nope' in pack b2b_manufacturer (plans: revenue_fy2026)",
        ),
        (
            ["target", "show", "revenue_fy2026", "--period", "2026-01-10..2026-02-20"],
            "is not made of the plan's month phases",
        ),
        (["target", "show", "revenue_fy2026", "--tier", "gold"], "has no tier 'gold'"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_rollups_follow_changes_after_the_demo_and_equal_a_rebuild(
    runner: CliRunner, db_url: str
) -> None:
    """After the demo, deals are won, re-valued, reassigned and deleted through the ORM: the
    roll-ups kept up to date give the same figures as roll-ups rebuilt from the records."""
    from datetime import UTC, datetime

    _run(runner, "demo", "--today", TODAY, "--seed", "7")
    listing = _run(runner, "kpi", "rollups")
    assert "won_revenue" in listing and "│ ready" in listing and "│ stale" not in listing
    sessions = db.open_sessions(db_url)
    with db.transaction(sessions) as session:
        deals = session.scalars(
            select(Record).where(Record.form_id == "deal").order_by(Record.id).limit(400)
        ).all()
        owners = sorted({d.owner_id for d in deals})
        for i, deal in enumerate(deals):
            if i % 4 == 0:
                deal.stage = "won"
                deal.closed_at = datetime(2026, 10, 1 + i % 28, 15, 30, tzinfo=UTC)
            elif i % 4 == 1:
                deal.amount_cents = (deal.amount_cents or 0) + 12_345
            elif i % 4 == 2:
                deal.owner_id = owners[i % len(owners)]
            else:
                deal.deleted_at = datetime.now(UTC)
    sessions.kw["bind"].dispose()

    def figures() -> list[str]:
        return [
            _run(
                runner,
                "kpi",
                "show",
                kpi,
                "--period",
                period,
                "--by",
                by,
                "--format",
                "json",
                "--today",
                TODAY,
            )  # fmt: skip
            for kpi in ("won_revenue", "new_deals", "win_rate", "open_pipeline")
            for period in ("2026-Q3", "2026-10", "2026-10-05..2026-11-20")
            for by in ("rep", "team")
        ]

    kept = figures()
    out = _run(runner, "kpi", "rollups", "--rebuild")
    assert "rebuilt roll-ups" in out
    assert figures() == kept
