"""Reading installed packs back: listing, the compiled active version, export to files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from quotaflow.config_cache import remembered
from quotaflow.errors import QuotaflowError
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.loader import documents_to_zip, dump_yaml
from quotaflow.packs.models import Pack, PackVersion

FOLDER_OF_KIND = {
    "form": "forms",
    "pipeline": "pipelines",
    "kpi": "kpis",
    "target_plan": "targets",
    "scorecard": "scorecards",
    "alert": "alerts",
    "dashboard": "dashboards",
    "leaderboard": "leaderboards",
    "pack_test": "tests",
}


class PackNotInstalled(QuotaflowError):
    """No installed pack has this id."""


@dataclass(frozen=True, slots=True)
class InstalledPack:
    """One row of `quotaflow pack list` and of the home page."""

    id: str
    version: str
    name: Any
    description: Any
    published_by: str
    published_at: datetime
    versions: int


ACTIVE_MEMO = "quotaflow.active_packs"  # session.info key; installing a pack clears it


def _active_rows(session: Session, pack_id: str | None = None) -> list[Any]:
    # Only the small columns: the content (the whole pack as JSON) is read once per process,
    # the rows once per change of the set-up (config_cache), and at most once per session.
    memo = session.info.get(ACTIVE_MEMO)
    if memo is None:
        read = partial(_read_active_rows, session)
        memo = session.info[ACTIVE_MEMO] = remembered(session, ACTIVE_MEMO, read)
    return [row for row in memo if pack_id is None or row.pack_id == pack_id]


def _read_active_rows(session: Session) -> list[Any]:
    query = (
        select(
            PackVersion.id,
            PackVersion.pack_id,
            PackVersion.version,
            PackVersion.content_hash,
            PackVersion.published_by,
            PackVersion.published_at,
        )
        .join(Pack, Pack.active_version_id == PackVersion.id)
        .order_by(PackVersion.pack_id)
    )
    return list(session.execute(query))  # Row objects: immutable, shared by threads


def active_packs(session: Session) -> list[CompiledPack]:
    """The compiled active version of every installed pack, by id (cheap per request)."""
    return [_compiled(session, row.id, row.content_hash) for row in _active_rows(session)]


def installed_packs(session: Session) -> list[InstalledPack]:
    """Installed packs with their active version, by id."""
    rows = _active_rows(session)
    by_pack = select(PackVersion.pack_id, func.count(PackVersion.id)).group_by(PackVersion.pack_id)
    counts = {pack_id: n for pack_id, n in session.execute(by_pack)} if rows else {}
    out = []
    for row in rows:
        head = _compiled(session, row.id, row.content_hash).pack
        out.append(
            InstalledPack(
                row.pack_id,
                row.version,
                head.name,
                head.description,
                row.published_by,
                row.published_at,
                counts.get(row.pack_id, 0),
            )
        )
    return out


def active_version(session: Session, pack_id: str) -> PackVersion:
    """The published version a pack serves now."""
    pack = session.get(Pack, pack_id)
    if pack is None or pack.active_version is None:
        known = ", ".join(p.id for p in installed_packs(session)) or "none installed"
        raise PackNotInstalled(f"no installed pack '{pack_id}' (installed: {known})")
    return pack.active_version


def active_version_id(session: Session, pack_id: str) -> int:
    """The id of the published version a pack serves now (no content read)."""
    rows = _active_rows(session, pack_id)
    if not rows:
        return active_version(session, pack_id).id  # raises PackNotInstalled
    return int(rows[0].id)


def active_pack(session: Session, pack_id: str) -> CompiledPack:
    """The compiled active version, compiled once per content per process."""
    rows = _active_rows(session, pack_id)
    if not rows:
        known = ", ".join(p.id for p in installed_packs(session)) or "none installed"
        raise PackNotInstalled(f"no installed pack '{pack_id}' (installed: {known})")
    return _compiled(session, rows[0].id, rows[0].content_hash)


def _compiled(session: Session, version_id: int, content_hash: str) -> CompiledPack:
    from quotaflow.packs.validate import compile_installed

    # Keyed by content hash: published content never changes, so the cache is never stale,
    # and every worker process computes the same thing.
    compiled = _COMPILED.get(content_hash)
    if compiled is None:
        version = session.get(PackVersion, version_id)
        assert version is not None
        compiled = _COMPILED[content_hash] = compile_installed(version.content)
    return compiled


_COMPILED: dict[str, CompiledPack] = {}


def pack_files(documents: list[dict[str, Any]]) -> dict[str, str]:
    """File name -> YAML text for a pack's documents (pack.yaml + one folder per kind)."""
    files: dict[str, str] = {}
    for doc in documents:
        name = (
            "pack.yaml"
            if doc["kind"] == "pack"
            else f"{FOLDER_OF_KIND[doc['kind']]}/{doc['id']}.yaml"
        )
        files[name] = dump_yaml(doc)
    return files


def write_pack(documents: list[dict[str, Any]], out: Path) -> Path:
    """Write a pack as a folder, or as a .zip when `out` ends in .zip."""
    files = pack_files(documents)
    if out.suffix.lower() == ".zip":
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(documents_to_zip(files))
        return out
    if out.exists() and any(out.iterdir()):
        raise QuotaflowError(f"{out} is not empty; export into a new folder or a .zip")
    for name, text in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return out


def export_pack(session: Session, pack_id: str, out: Path) -> Path:
    """Write the active version of an installed pack to a folder or .zip."""
    return write_pack(list(active_version(session, pack_id).content["documents"]), out)


@dataclass(frozen=True, slots=True)
class PublishedVersion:
    """One published version of a pack, without its content."""

    id: int
    version: str
    content_hash: str
    published_by: str
    published_at: datetime
    active: bool


def pack_versions(session: Session, pack_id: str) -> list[PublishedVersion]:
    """Every version of a pack, the newest first, the one it serves marked."""
    pack = session.get(Pack, pack_id)
    active_id = pack.active_version_id if pack is not None else None
    rows = session.execute(
        select(
            PackVersion.id, PackVersion.version, PackVersion.content_hash,
            PackVersion.published_by, PackVersion.published_at,
        )
        .where(PackVersion.pack_id == pack_id)
        .order_by(PackVersion.published_at.desc(), PackVersion.id.desc())
    )  # fmt: skip
    return [PublishedVersion(*row, active=row.id == active_id) for row in rows]


def pack_zip(session: Session, pack_id: str) -> bytes:
    """The active version of an installed pack as a .zip, as `pack export ID OUT.zip` writes it."""
    return documents_to_zip(pack_files(list(active_version(session, pack_id).content["documents"])))
