"""`quotaflow pack ...`: validate, install, export, list packs and write their JSON Schemas."""

from __future__ import annotations

import getpass
from pathlib import Path

import click

from quotaflow import db
from quotaflow.config import settings_from_env
from quotaflow.errors import QuotaflowError
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import KINDS, label_text
from quotaflow.packs.schema import stale_schemas, write_schemas
from quotaflow.resources import schema_dir

PathArg = click.Path(path_type=Path)


@click.group("pack")
def pack_group() -> None:
    """Validate, install, export and list definition packs."""


def _load(path: Path, search: tuple[Path, ...]) -> CompiledPack:
    from quotaflow.packs.validate import load_pack
    from quotaflow.plugins import make_plugin_manager

    return load_pack(path, search, make_plugin_manager())


@pack_group.command("validate")
@click.argument("path", type=PathArg)
@click.option("--search", "search", multiple=True, type=PathArg, help="Folder holding base packs.")
def validate_command(path: Path, search: tuple[Path, ...]) -> None:
    """Check a pack folder, .zip or file; print every problem with file, line and path."""
    pack = _load(path, search)
    click.echo(f"OK {pack.summary()}")


@pack_group.command("test")
@click.argument("path", type=PathArg)
@click.option("--search", "search", multiple=True, type=PathArg, help="Folder holding base packs.")
def test_command(path: Path, search: tuple[Path, ...]) -> None:
    """Run the pack's golden cases; print each failure and `N passed, N failed`."""
    from quotaflow.packs.testing import run_pack_tests

    results = run_pack_tests(_load(path, search))
    for result in results:
        if result.passed:
            continue
        click.echo(f"FAILED {result.name}")
        if result.error:
            click.echo(f"    {result.error}")
        for key, want, got in result.mismatches:
            click.echo(f"    {key}: expected {want!r}, got {_shown(got)}")
    failed = sum(not r.passed for r in results)
    click.echo(f"{len(results) - failed} passed, {failed} failed")
    if failed:
        raise SystemExit(1)


def _shown(value: object) -> str:
    return "blank" if value is None else repr(str(value) if hasattr(value, "as_tuple") else value)


@pack_group.command("install")
@click.argument("path", type=PathArg)
@click.option("--dry-run", is_flag=True, help="Only print what would change.")
@click.option(
    "--map-stage",
    "stage_map",
    multiple=True,
    metavar="OLD=NEW",
    help="Move records of a removed stage to another stage.",
)
@click.option("--search", "search", multiple=True, type=PathArg, help="Folder holding base packs.")
@click.option("--as", "actor", default=None, help="Who publishes (default: the OS user).")
def install_command(
    path: Path,
    dry_run: bool,
    stage_map: tuple[str, ...],
    search: tuple[Path, ...],
    actor: str | None,
) -> None:
    """Install (publish) a pack as a new version, in one transaction."""
    from quotaflow.packs.install import install_pack

    pack = _load(path, search)
    mapping = dict(_pair(item) for item in stage_map)
    sessions = db.open_sessions(settings_from_env().database_url)
    with db.transaction(sessions) as session:
        plan = install_pack(
            session,
            pack,
            actor=actor or f"cli:{getpass.getuser()}",
            dry_run=dry_run,
            stage_map=mapping,
        )
    for line in plan.lines():
        click.echo(line)
    if dry_run and not plan.same_content:
        click.echo("Dry run: nothing was changed.")
    elif not plan.same_content:
        click.echo(f"Installed {pack.id} {pack.version}.")


def _pair(item: str) -> tuple[str, str]:
    old, sep, new = item.partition("=")
    if not sep or not old or not new:
        raise QuotaflowError(f"--map-stage expects OLD=NEW, got '{item}'")
    return old.strip(), new.strip()


@pack_group.command("export")
@click.argument("pack_id")
@click.argument("out", type=PathArg)
def export_command(pack_id: str, out: Path) -> None:
    """Write an installed pack's active version to a folder or a .zip."""
    from quotaflow.packs.services import export_pack

    sessions = db.open_sessions(settings_from_env().database_url)
    with sessions() as session:
        written = export_pack(session, pack_id, out)
    click.echo(f"Exported {pack_id} to {written}")


@pack_group.command("list")
def list_command() -> None:
    """Installed packs and their active versions."""
    from quotaflow.packs.services import installed_packs

    sessions = db.open_sessions(settings_from_env().database_url)
    with sessions() as session:
        packs = installed_packs(session)
    if not packs:
        click.echo("No pack installed. Install one with: quotaflow pack install PATH")
    for p in packs:
        when = p.published_at.strftime("%Y-%m-%d %H:%M")
        click.echo(
            f"{p.id:<24} {p.version:<10} {label_text(p.name):<36} {when} by {p.published_by}"
        )


@pack_group.command("schema")
@click.option("--write", is_flag=True, help="Regenerate definitions/schema/*.schema.json.")
@click.option("--check", is_flag=True, help="Exit 1 when a committed schema is out of date.")
def schema_command(write: bool, check: bool) -> None:
    """The JSON Schemas of every definition kind, generated from the typed definitions."""
    folder = schema_dir()
    if write:
        for path in write_schemas(KINDS, folder):
            click.echo(f"wrote {path}")
        return
    stale = stale_schemas(KINDS, folder)
    if stale:
        message = f"out of date: {', '.join(stale)}; run: quotaflow pack schema --write"
        if check:
            raise QuotaflowError(message)
        click.echo(message)
    else:
        click.echo(f"{len(KINDS)} schemas in {folder} are up to date")
