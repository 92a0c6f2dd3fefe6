"""Installing packs on SQLite and PostgreSQL: plans, upgrades that keep data, all-or-nothing."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from quotaflow import db
from quotaflow.audit.models import AuditEvent
from quotaflow.cli import main
from quotaflow.org.services import add_user
from quotaflow.packs.install import InstallRefused, install_pack
from quotaflow.packs.models import Pack, PackVersion
from quotaflow.packs.services import active_pack, active_version
from quotaflow.packs.validate import load_pack
from quotaflow.pipelines.models import StageMove
from quotaflow.records.models import Record, RecordHistory
from quotaflow.records.services import create_record
from quotaflow.resources import stock_pack_dir
from tests.packfiles import DEAL, PACK, PIPELINE, minimal_files, write_pack


def install(sessions: sessionmaker[Session], folder: Path, **kw):  # type: ignore[no-untyped-def]
    with db.transaction(sessions) as session:
        return install_pack(session, load_pack(folder), actor="test", **kw)


def add_deals(sessions: sessionmaker[Session], stages: list[str]) -> None:
    with db.transaction(sessions) as session:
        owner = add_user(session, username="rep", display_name="Rep", password="x" * 12)
        version = active_version(session, "acme")
        for i, stage in enumerate(stages):
            create_record(
                session,
                pack_id="acme",
                pack_version_id=version.id,
                form_id="deal",
                owner_id=owner.id,
                team_id=None,
                values={"customer": f"C{i}", "discount": 0.1},
                actor_id=owner.id,
                stage=stage,
                record_date=date(2026, 1, 5),
            )


def snapshot(sessions: sessionmaker[Session]) -> tuple[object, ...]:
    with sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(Pack)),
            session.scalar(select(func.count()).select_from(PackVersion)),
            session.scalar(select(func.count()).select_from(AuditEvent)),
            sorted((r.stage, sorted(r.values.items())) for r in session.scalars(select(Record))),
        )


def bump(files: dict[str, str], version: str) -> dict[str, str]:
    files["pack.yaml"] = PACK.replace("1.0.0", version)
    return files


def test_stock_pack_installs_lists_and_exports_round_trip(
    runner: CliRunner, tmp_path: Path
) -> None:
    shipped = load_pack(stock_pack_dir()).version
    result = runner.invoke(main, ["pack", "install", str(stock_pack_dir())])
    assert result.exit_code == 0, result.output
    assert f"b2b_manufacturer {shipped} (new pack):" in result.output
    assert "added    form deal" in result.output
    listed = runner.invoke(main, ["pack", "list"])
    assert "b2b_manufacturer" in listed.output and shipped in listed.output
    for out in (tmp_path / "exported", tmp_path / "exported.zip"):
        assert runner.invoke(main, ["pack", "export", "b2b_manufacturer", str(out)]).exit_code == 0
        assert runner.invoke(main, ["pack", "validate", str(out)]).exit_code == 0
        again = runner.invoke(main, ["pack", "install", str(out)])
        assert again.exit_code == 0, again.output
        assert "already installed with the same content; nothing to do" in again.output


def test_same_content_from_another_layout_is_a_no_op(sessions, tmp_path: Path) -> None:
    install(sessions, write_pack(tmp_path / "a", minimal_files()))
    one_file = tmp_path / "acme.yaml"
    one_file.write_text("---\n".join(minimal_files().values()), encoding="utf-8")
    plan = install(sessions, one_file)
    assert plan.same_content
    with sessions() as session:
        assert len(session.get(Pack, "acme").versions) == 1


def test_downgrade_is_refused_and_changes_nothing(
    sessions, runner: CliRunner, tmp_path: Path
) -> None:
    install(sessions, write_pack(tmp_path / "v2", bump(minimal_files(), "2.0.0")))
    before = snapshot(sessions)
    result = runner.invoke(
        main, ["pack", "install", str(write_pack(tmp_path / "v1", minimal_files()))]
    )
    assert result.exit_code == 1
    assert "version 1.0.0 is lower than the installed 2.0.0" in result.output
    assert "Traceback" not in result.output
    assert snapshot(sessions) == before


def test_same_version_with_other_content_asks_for_a_new_version(sessions, tmp_path: Path) -> None:
    install(sessions, write_pack(tmp_path / "a", minimal_files()))
    changed = minimal_files({"forms/deal.yaml": DEAL + "  - {id: extra, type: text}\n"})
    with pytest.raises(
        InstallRefused, match="already installed with other content; raise the version"
    ):
        install(sessions, write_pack(tmp_path / "b", changed))


def test_dry_run_counts_records_and_changes_nothing(
    sessions, runner: CliRunner, tmp_path: Path
) -> None:
    install(sessions, write_pack(tmp_path / "v1", minimal_files()))
    add_deals(sessions, ["lead", "lead", "quotation"])
    renamed = DEAL.replace(
        "{id: discount, type: percent}", "{id: rebate, type: percent, renamed_from: discount}"
    )
    renamed = renamed.replace('"discount > 0.15"', '"rebate > 0.15"')
    pipeline = PIPELINE.replace("{id: lead}", "{id: prospect, renamed_from: lead}")
    files = bump(
        minimal_files(
            {
                "forms/deal.yaml": renamed + "  - {id: region, type: text}\n",
                "pipelines/sales.yaml": pipeline,
            }
        ),
        "1.1.0",
    )
    before = snapshot(sessions)
    result = runner.invoke(
        main, ["pack", "install", "--dry-run", str(write_pack(tmp_path / "v2", files))]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "acme 1.0.0 -> 1.1.0:" in out
    assert "renamed  field deal.rebate from discount (3 records)" in out
    assert "added    field deal.region" in out
    assert "renamed  stage sales.lead to prospect (2 records)" in out
    assert "Dry run: nothing was changed." in out
    assert snapshot(sessions) == before


def test_upgrade_moves_renamed_fields_and_stages(sessions, tmp_path: Path) -> None:
    install(sessions, write_pack(tmp_path / "v1", minimal_files()))
    add_deals(sessions, ["lead", "quotation"])
    renamed = DEAL.replace(
        "{id: discount, type: percent}", "{id: rebate, type: percent, renamed_from: discount}"
    )
    renamed = renamed.replace('"discount > 0.15"', '"rebate > 0.15"')
    pipeline = PIPELINE.replace("{id: lead}", "{id: prospect, renamed_from: lead}")
    files = bump(
        minimal_files({"forms/deal.yaml": renamed, "pipelines/sales.yaml": pipeline}), "1.1.0"
    )
    install(sessions, write_pack(tmp_path / "v2", files))
    with sessions() as session:
        records = list(session.scalars(select(Record).order_by(Record.id)))
        assert [r.stage for r in records] == ["prospect", "quotation"]
        assert all(r.values.get("rebate") == 0.1 and "discount" not in r.values for r in records)
        assert active_pack(session, "acme").version == "1.1.0"
        event = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "pack.install")
            .order_by(AuditEvent.id.desc())
        ).first()
        assert event is not None and event.details["previous"] == "1.0.0"


def test_removing_a_stage_that_holds_deals_needs_a_mapping(
    sessions, runner: CliRunner, tmp_path: Path
) -> None:
    install(sessions, write_pack(tmp_path / "v1", minimal_files()))
    add_deals(sessions, ["lead", "lead"])
    files = bump(
        minimal_files({"pipelines/sales.yaml": PIPELINE.replace("  - {id: lead}\n", "")}), "1.1.0"
    )
    folder = write_pack(tmp_path / "v2", files)
    before = snapshot(sessions)
    refused = runner.invoke(main, ["pack", "install", str(folder)])
    assert refused.exit_code == 1
    assert "stage 'lead' of pipeline sales holds 2 records" in refused.output
    assert "--map-stage lead=NEW" in refused.output
    assert snapshot(sessions) == before
    mapped = runner.invoke(main, ["pack", "install", str(folder), "--map-stage", "lead=quotation"])
    assert mapped.exit_code == 0, mapped.output
    with sessions() as session:
        assert {r.stage for r in session.scalars(select(Record))} == {"quotation"}


def test_a_failure_mid_install_leaves_the_database_unchanged(
    sessions, tmp_path: Path, monkeypatch
) -> None:
    install(sessions, write_pack(tmp_path / "v1", minimal_files()))
    add_deals(sessions, ["lead"])
    before = snapshot(sessions)

    def broken_audit(*_a: object, **_k: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("quotaflow.packs.install.record_event", broken_audit)
    pipeline = PIPELINE.replace("{id: lead}", "{id: prospect, renamed_from: lead}")
    files = bump(minimal_files({"pipelines/sales.yaml": pipeline}), "1.1.0")
    with pytest.raises(RuntimeError, match="disk full"):
        install(sessions, write_pack(tmp_path / "v2", files))
    assert snapshot(sessions) == before


def test_demo_loads_a_believable_company(runner: CliRunner, sessions) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(main, ["demo", "--today", "2026-11-24", "--seed", "7"])
    assert result.exit_code == 0, result.output
    assert "Demo logins (password for all: quotaflow-demo):" in result.output
    assert "li.wei" in result.output
    assert "Demo appraisal: 2026-10, rated, closed and published." in result.output
    board = runner.invoke(
        main,
        ["leaderboard", "show", "appraisal_ranking", "--period", "2026-10", "--format", "json"],
    )
    assert board.exit_code == 0, board.output
    ranked = json.loads(board.output)
    assert len(ranked) == 18 and ranked[0]["rank"] == "1"
    assert all(row["score"] is not None for row in ranked)  # every rep has a frozen score
    again = runner.invoke(main, ["demo", "--if-empty"])
    assert again.exit_code == 0 and "not loaded again" in again.output
    # a deal's history tells its stage moves, as a move in the app writes them
    with sessions() as session:
        moves = session.execute(
            select(
                StageMove.record_id, StageMove.from_stage, StageMove.to_stage, StageMove.moved_at
            ).where(StageMove.from_stage.is_not(None))
        ).all()
        told = session.execute(
            select(RecordHistory.record_id, RecordHistory.changes, RecordHistory.changed_at).where(
                RecordHistory.action == "stage"
            )
        ).all()
    assert moves and sorted((r, f, t, at) for r, f, t, at in moves) == sorted(
        (r, c["stage"][0], c["stage"][1], at) for r, c, at in told
    )


def _changed_stock_pack(tmp_path: Path) -> Path:
    """A copy of the stock pack as a newer Quotaflow would ship it: a renamed label, a
    higher version."""
    import shutil

    copy = tmp_path / "b2b_manufacturer"
    shutil.copytree(stock_pack_dir(), copy)
    manifest = copy / "pack.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert "en: B2B manufacturer sales" in text
    version = load_pack(stock_pack_dir()).version
    text = text.replace("en: B2B manufacturer sales", "en: B2B sales")
    manifest.write_text(text.replace(f"version: {version}", "version: 99.0.0"), "utf-8")
    return copy


@pytest.mark.parametrize("published_by", ["demo", "admin"])
def test_demo_if_empty_brings_an_untouched_stock_pack_up_to_date(  # type: ignore[no-untyped-def]
    runner: CliRunner, sessions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, published_by
) -> None:
    # a demo database made by an older Quotaflow: the stock pack as it was, and its people
    with db.transaction(sessions) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor=published_by)
        add_user(session, username="admin", display_name="Admin", password="x" * 12)
    shipped = load_pack(_changed_stock_pack(tmp_path))
    monkeypatch.setattr("quotaflow.dbcli.stock_pack_dir", lambda: tmp_path / "b2b_manufacturer")

    result = runner.invoke(main, ["demo", "--if-empty"])

    assert result.exit_code == 0, result.output
    assert "not loaded again" in result.output
    with sessions() as session:
        serving = active_version(session, "b2b_manufacturer")
        versions = session.scalar(select(func.count()).select_from(PackVersion))
    if published_by == "demo":  # nobody took the pack over: the shipped one replaces it
        assert "Updated the demo's stock pack" in result.output
        assert serving.content_hash == shipped.content_hash and versions == 2
        assert serving.published_by == "demo"
        again = runner.invoke(main, ["demo", "--if-empty"])
        assert again.exit_code == 0 and "Updated" not in again.output
    else:  # someone else published it: theirs stays, and the message says how to take ours
        assert "is left as it is" in result.output
        assert "quotaflow pack install" in result.output
        assert serving.content_hash != shipped.content_hash and versions == 1
