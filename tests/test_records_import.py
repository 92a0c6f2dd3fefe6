"""Record imports on SQLite and PostgreSQL: every kind of bad row is refused with its row
number and a plain reason and the database is left as it was; --partial imports the good
rows; --dry-run writes nothing; XLSX like CSV; garbage files get a clear message; and a
property: all-or-nothing imports every row or none, --partial exactly the valid ones."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.cli import main
from quotaflow.errors import QuotaflowError
from quotaflow.org.services import add_membership, add_user, ensure_team
from quotaflow.packs.install import install_pack
from quotaflow.packs.services import active_pack
from quotaflow.packs.validate import load_pack
from quotaflow.pipelines.models import StageMove
from quotaflow.records.importing import ImportPlan, ImportRejected, import_records
from quotaflow.records.models import Record, RecordHistory
from tests.conftest import REPO

PACK = REPO / "definitions" / "packs" / "crm_walkthrough"
HEADER = [
    "opportunity_id",
    "sales_agent",
    "product",
    "account",
    "deal_stage",
    "engage_date",
    "close_date",
    "close_value",
]
GOOD = ["A1", "Ann Lee", "GTX Pro", "Acme", "Won", "2017-01-05", "2017-02-01", "1200.50"]
ARGS = [
    "--form", "deal", "--owner-column", "sales_agent", "--stage-column", "deal_stage",
    "--map", "close_value=amount", "--date-field", "engage_date", "--closed-field", "close_date",
]  # fmt: skip


def write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def counts(sessions: sessionmaker[Session]) -> tuple[int, ...]:
    with sessions() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Record, RecordHistory, StageMove, AuditEvent)
        )


@pytest.fixture
def crm(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """The walk-through pack and two agents, Ann Lee (ann.lee) and Bo Chen (bo.chen)."""
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(PACK), actor="test")
        company = ensure_team(session, key="company", name="MavenTech")
        team = ensure_team(session, key="central", name="Central", parent=company)
        for username, name in (("ann.lee", "Ann Lee"), ("bo.chen", "Bo Chen")):
            user = add_user(session, username=username, display_name=name)
            add_membership(session, user=user, team=team, role="rep", valid_from=date(2016, 1, 1))
    return sessions


BAD_ROWS = [
    (
        ["A2", "Ann Lee", "GTX Pro", "Acme", "Won", "2017-01-05", "2017-02-01", "12x"],
        "row 2: Close value: enter a number",
    ),
    (
        ["A3", "Ann Lee", "GTX Pro", "Acme", "Won", "2017-13-05", "2017-02-01", "10"],
        "row 2: Engaged on: enter a date as YYYY-MM-DD",
    ),
    (
        ["A4", "Ann Lee", "GTX Ultra", "Acme", "Won", "2017-01-05", "2017-02-01", "10"],
        "row 2: Product: 'GTX Ultra' is not one of the choices",
    ),
    (
        ["", "Ann Lee", "GTX Pro", "Acme", "Won", "2017-01-05", "2017-02-01", "10"],
        "row 2: Opportunity: this field is required",
    ),
    (
        ["A5", "Ann Lee", "GTX Pro", "Acme", "Won", "2017-01-05", "", "10"],
        "row 2: Closed on: this field is required",
    ),
    (
        ["A6", "Nobody Here", "GTX Pro", "Acme", "Won", "2017-01-05", "2017-02-01", "10"],
        "row 2: owner 'Nobody Here' is not a user",
    ),
    (
        ["A7", "Ann Lee", "GTX Pro", "Acme", "Negotiating", "2017-01-05", "", ""],
        # the stages named as the reader reads them, in the pipeline's order
        "row 2: stage 'Negotiating' is not a stage (stages: Prospecting, Engaging, Won, Lost)",
    ),
    (
        ["A8", "Ann Lee", "GTX Pro", "Acme", "Won", "2017-01-05", "2017-02-01", "-5"],
        "row 2: Close value: must be at least 0",
    ),
]


@pytest.mark.parametrize(
    ("row", "message"), BAD_ROWS, ids=[m.split(": ", 1)[1][:30] for _r, m in BAD_ROWS]
)
def test_each_kind_of_bad_row_is_refused_and_nothing_changes(
    crm: sessionmaker[Session], runner: CliRunner, tmp_path: Path, row: list[str], message: str
) -> None:
    before = counts(crm)
    file = write_csv(tmp_path / "deals.csv", [row, GOOD])
    result = runner.invoke(main, ["records", "import", str(file), *ARGS])
    assert result.exit_code != 0
    assert message in result.output, result.output
    assert "nothing was imported (use --partial to import the good rows)" in result.output
    assert "Traceback" not in result.output
    assert counts(crm) == before


def test_partial_imports_the_good_rows_and_reports_the_bad(
    crm: sessionmaker[Session], runner: CliRunner, tmp_path: Path
) -> None:
    rows = [
        GOOD,
        BAD_ROWS[2][0],
        ["A9", "bo.chen", "MG Special", "Beta", "Prospecting", "", "", ""],
    ]
    file = write_csv(tmp_path / "deals.csv", rows)
    result = runner.invoke(main, ["records", "import", str(file), *ARGS, "--partial"])
    assert result.exit_code == 0, result.output
    assert "row 3: Product: 'GTX Ultra' is not one of the choices" in result.output
    assert "2 of 3 rows imported; 1 rejected" in result.output
    with crm() as session:
        records = {r.values["opportunity_id"]: r for r in session.scalars(select(Record))}
        assert set(records) == {"A1", "A9"}
        won = records["A1"]
        assert (won.stage, str(won.amount), won.record_date) == ("won", "1200.50", date(2017, 1, 5))
        assert won.closed_at is not None and won.closed_at.date() == date(2017, 2, 1)
        assert won.team_id is not None  # the owner's team on the record's date
        assert records["A9"].stage == "prospecting" and records["A9"].closed_at is None
        moves = session.scalars(select(StageMove).where(StageMove.record_id == won.id)).all()
        assert [(m.from_stage, m.to_stage) for m in moves] == [(None, "won")]
        history = session.scalars(
            select(RecordHistory).where(RecordHistory.record_id == won.id)
        ).all()
        assert [h.action for h in history] == ["create"]


def test_dry_run_checks_everything_and_writes_nothing(
    crm: sessionmaker[Session], runner: CliRunner, tmp_path: Path
) -> None:
    before = counts(crm)
    file = write_csv(tmp_path / "deals.csv", [GOOD])
    result = runner.invoke(main, ["records", "import", str(file), *ARGS, "--dry-run"])
    assert result.exit_code == 0 and "1 of 1 rows would be imported" in result.output
    assert counts(crm) == before


def test_xlsx_imports_like_csv_with_a_value_mapping(
    crm: sessionmaker[Session], runner: CliRunner, tmp_path: Path
) -> None:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(HEADER)
    sheet.append(
        ["B1", "Bo Chen", "GTXPro", "Acme", "Lost", date(2017, 3, 1), date(2017, 3, 20), None]
    )
    sheet.append(["B2", "ann.lee", "GTX Basic", "Acme", "won", "2017-03-02", "2017-04-01", 99.5])
    path = tmp_path / "deals.xlsx"
    book.save(path)
    result = runner.invoke(
        main, ["records", "import", str(path), *ARGS, "--value", "product=GTXPro:GTX Pro"]
    )
    assert result.exit_code == 0, result.output
    with crm() as session:
        records = {r.values["opportunity_id"]: r for r in session.scalars(select(Record))}
    assert records["B1"].values["product"] == "GTX Pro" and records["B1"].stage == "lost"
    assert str(records["B2"].amount) == "99.50" and records["B2"].record_date == date(2017, 3, 2)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", b"", "row 1 should name the columns; the file is empty"),
        (
            "unknown.csv",
            b"opportunity_id\nCaf\x81\n",
            "is not UTF-8, GBK or Windows-1252 text; save the sheet as 'CSV UTF-8'",
        ),
        ("broken.xlsx", b"PK\x03\x04 not really a workbook", "not a readable Excel workbook"),
        ("deals.txt", b"a,b\n1,2\n", "expected a .csv or .xlsx file"),
    ],
)
def test_files_that_are_not_tables_get_a_clear_message(
    crm: sessionmaker[Session],
    runner: CliRunner,
    tmp_path: Path,
    name: str,
    content: bytes,
    message: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    result = runner.invoke(main, ["records", "import", str(path), *ARGS])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output


def test_a_mapping_to_a_missing_column_or_field_is_named(
    crm: sessionmaker[Session], runner: CliRunner, tmp_path: Path
) -> None:
    file = write_csv(tmp_path / "deals.csv", [GOOD])
    result = runner.invoke(
        main, ["records", "import", str(file), *ARGS, "--map", "close_valu=amount"]
    )
    assert (
        result.exit_code != 0 and "close_valu" in result.output and "Traceback" not in result.output
    )
    result = runner.invoke(main, ["records", "import", str(file), *ARGS, "--map", "account=acount"])
    assert result.exit_code != 0 and "acount" in result.output


# --- property: all or nothing -------------------------------------------------------------------

ROW = st.fixed_dictionaries(
    {
        "ok": st.booleans(),
        "flaw": st.sampled_from(["amount", "product", "owner", "date"]),
        "amount": st.decimals(min_value=0, max_value=10**6, places=2),
    }
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=st.lists(ROW, min_size=1, max_size=12), partial=st.booleans())
def test_an_import_is_all_or_nothing_or_exactly_the_valid_rows(
    crm: sessionmaker[Session], spec: list[dict[str, Any]], partial: bool
) -> None:
    rows = []
    for i, s in enumerate(spec):
        cells = {
            "opportunity_id": f"P{i}", "sales_agent": "Ann Lee", "product": "GTX Pro",
            "account": "Acme", "deal_stage": "Won", "engage_date": "2017-01-05",
            "close_date": "2017-02-01", "close_value": str(s["amount"]),
        }  # fmt: skip
        if not s["ok"]:
            cells[{"amount": "close_value", "product": "product", "owner": "sales_agent", "date": "engage_date"}[s["flaw"]]] = {
                "amount": "n/a", "product": "GTX Mega", "owner": "Zed", "date": "05/01/2017",
            }[s["flaw"]]  # fmt: skip
        rows.append((i + 2, cells))
    valid = sum(1 for s in spec if s["ok"])
    plan = ImportPlan(
        "deal",
        {"close_value": "amount"},
        owner_column="sales_agent",
        stage_column="deal_stage",
        date_field="engage_date",
        closed_field="close_date",
    )
    with crm() as session:
        pack = active_pack(session, "crm_walkthrough")
        before = session.scalar(select(func.count()).select_from(Record))
        try:
            result = import_records(session, pack, plan, HEADER, rows, partial=partial)
        except ImportRejected as exc:
            assert not partial and valid < len(spec)
            assert len(exc.problems) == len(spec) - valid
            session.rollback()
            assert session.scalar(select(func.count()).select_from(Record)) == before
            return
        except QuotaflowError:
            raise
        imported = session.scalar(select(func.count()).select_from(Record)) - (before or 0)
        assert result.imported == imported == (valid if partial else len(spec))
        session.rollback()


def test_a_nul_character_in_a_file_is_refused_by_row(tmp_path: Path) -> None:
    from quotaflow.records.importing import read_table

    path = tmp_path / "deals.csv"
    path.write_text("customer,amount\nAcme,100\nBad\x00Co,200\n", encoding="utf-8")
    with pytest.raises(QuotaflowError, match="deals.csv: row 3 holds a NUL character"):
        read_table(path)


def test_choices_are_read_by_their_labels_and_problems_said_in_the_readers_language(
    sessions: sessionmaker[Session],
) -> None:
    from quotaflow.resources import stock_pack_dir

    with db.transaction(sessions) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
        owner = add_user(session, username="li.wei", display_name="Li Wei", password="x" * 12)
        pack = active_pack(session, "b2b_manufacturer")
        header = ["customer", "visit_date", "visit_type", "outcome"]
        rows = [
            (2, {"customer": "美的", "visit_date": "2026-11-02", "visit_type": "上门",
                 "outcome": "积极"}),
            (3, {"customer": "Haier", "visit_date": "2026-11-03", "visit_type": "video CALL",
                 "outcome": "Neutral"}),
            (4, {"customer": "Gree", "visit_date": "2026-11-04", "visit_type": "拜访",
                 "outcome": ""}),
        ]  # fmt: skip
        plan = ImportPlan("visit", {}, default_owner=owner.id)
        result = import_records(
            session, pack, plan, header, rows, actor_id=owner.id, partial=True, locale="zh"
        )
        assert result.imported == 2
        # by field label and in Chinese, with the choices there are, as the reader sees them
        assert result.problems == [
            "第 4 行：方式：“拜访”不在可选项中（可选：上门, 电话, 视频, 展会）"
        ]
        stored = {
            r.values["customer"]: (r.values["visit_type"], r.values.get("outcome"))
            for r in session.scalars(select(Record))
        }
    assert stored == {"美的": ("onsite", "positive"), "Haier": ("video", "neutral")}


LABELS = (
    st.text(alphabet="ab ,;、|", min_size=1, max_size=8)
    .map(str.strip)
    .filter(lambda t: t and t[0] not in ",;、|" and t[-1] not in ",;、|")
)


@settings(max_examples=300, deadline=None)
@given(
    labels=st.lists(LABELS, min_size=1, max_size=5, unique_by=str.lower),
    picks=st.lists(st.integers(0, 4), max_size=5),
    joiner=st.sampled_from([", ", ",", "; ", "、", " | "]),
    upper=st.booleans(),
)
def test_multichoice_cells_split_into_the_labels_they_were_written_from(
    labels: list[str], picks: list[int], joiner: str, upper: bool
) -> None:
    """A cell written as the download writes it (labels joined by ", ") or as people type
    them (any separator) reads back as those labels, a label holding a separator included,
    as long as no label is the start of a longer one followed by a separator."""
    from quotaflow.records.importing import MULTI_SEPARATORS, multichoice_items

    known = {label.lower(): f"v{i}" for i, label in enumerate(labels)}
    chosen = [labels[i] for i in picks if i < len(labels)]
    # a label and a longer one it starts, cut at a separator ("a" and "a, b"), can't be told
    # apart from "a" and "b" by anyone reading the cell: not what this property is about
    lows = [label.lower() for label in labels]
    clash = any(
        b != a and b.startswith(a) and MULTI_SEPARATORS.match(b[len(a) :].lstrip())
        for a in lows
        for b in lows
    )
    if not clash:  # in the case written, or all in capitals
        written = [label.upper() if upper else label for label in chosen]
        assert multichoice_items(joiner.join(written), known) == written


def test_a_multichoice_label_holding_a_comma_is_one_item() -> None:
    from quotaflow.records.importing import multichoice_items

    known = {"motors, drives": "motors", "pumps": "pumps", "valves；fittings": "valves"}
    assert multichoice_items("Motors, drives, Pumps", known) == ["Motors, drives", "Pumps"]
    assert multichoice_items("pumps;motors, drives", known) == ["pumps", "motors, drives"]
    assert multichoice_items("Valves；Fittings、pumps", known) == ["Valves；Fittings", "pumps"]
    # anything else splits at every separator, as before
    assert multichoice_items("motors; drives ,, x", known) == ["motors", "drives", "x"]
