"""`quotaflow records import`: a spreadsheet into a form's records, checked row by row."""

from __future__ import annotations

import time
from pathlib import Path

import click
from sqlalchemy import select

from quotaflow import db
from quotaflow.config import settings_from_env
from quotaflow.errors import QuotaflowError
from quotaflow.org.models import User
from quotaflow.packs.services import active_pack, installed_packs
from quotaflow.records.importing import ImportPlan, import_records, read_table


@click.group("records")
def records_group() -> None:
    """Import records from spreadsheets."""


def _pairs(items: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for item in items:
        left, sep, right = item.partition("=")
        if not sep or not left.strip() or not right.strip():
            raise QuotaflowError(f"{option} expects COLUMN=FIELD, got '{item}'")
        out[left.strip()] = right.strip()
    return out


def _value_maps(items: tuple[str, ...]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items:
        field, sep, rest = item.partition("=")
        old, colon, new = rest.partition(":")
        if not sep or not colon or not field.strip() or not old:
            raise QuotaflowError(f"--value expects FIELD=FROM:TO, got '{item}'")
        out.setdefault(field.strip(), {})[old] = new
    return out


@records_group.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--form", "form_id", required=True, help="The form the rows are records of.")
@click.option("--pack", "pack_id", default=None, help="Pack id (default: the only installed pack).")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=FIELD",
    help="A column's field (columns named like fields map themselves).",
)
@click.option(
    "--value",
    "values",
    multiple=True,
    metavar="FIELD=FROM:TO",
    help="Replace a value, e.g. product=GTXPro:GTX Pro.",
)
@click.option("--owner-column", default=None, help="Column with the owner's username or name.")
@click.option("--owner", "owner_name", default=None, help="Owner of every row (no owner column).")
@click.option("--stage-column", default=None, help="Column with the pipeline stage (id or label).")
@click.option("--date-field", default=None, help="Field giving the record's date.")
@click.option(
    "--closed-field", default=None, help="Field giving the closed date of won/lost records."
)
@click.option("--partial", is_flag=True, help="Import the good rows and report the bad ones.")
@click.option("--dry-run", is_flag=True, help="Check every row; import nothing.")
def import_command(
    file: Path,
    form_id: str,
    pack_id: str | None,
    maps: tuple[str, ...],
    values: tuple[str, ...],
    owner_column: str | None,
    owner_name: str | None,
    stage_column: str | None,
    date_field: str | None,
    closed_field: str | None,
    partial: bool,
    dry_run: bool,
) -> None:
    """Import FILE (.csv or .xlsx; row 1 names the columns), all or nothing."""
    header, rows = read_table(file)
    sessions = db.open_sessions(settings_from_env().database_url)
    started = time.perf_counter()
    with db.transaction(sessions) as session:
        packs = installed_packs(session)
        if pack_id is None:
            if len(packs) != 1:
                raise QuotaflowError(
                    "say which pack with --pack (installed: "
                    f"{', '.join(p.id for p in packs) or 'none'})"
                )
            pack_id = packs[0].id
        owner = None
        if owner_name:
            owner = session.scalars(select(User.id).where(User.username == owner_name)).first()
            if owner is None:
                raise QuotaflowError(f"--owner {owner_name}: no such user")
        plan = ImportPlan(
            form_id,
            _pairs(maps, "--map"),
            _value_maps(values),
            owner_column,
            owner,
            stage_column,
            date_field,
            closed_field,
        )
        with click.progressbar(length=len(rows), label="Checking rows", file=None) as bar:
            result = import_records(
                session,
                active_pack(session, pack_id),
                plan,
                header,
                rows,
                partial=partial,
                progress=bar.update,
            )
        if dry_run:
            session.rollback()
    for problem in result.problems:
        click.echo(problem, err=True)
    seconds = time.perf_counter() - started
    rate = f" ({result.total / seconds:,.0f} rows/s)" if seconds > 0 else ""
    verb = "would be imported" if dry_run else "imported"
    click.echo(
        f"{result.imported} of {result.total} rows {verb}; {len(result.problems)} rejected{rate}."
    )
