"""Reading installed packs back: listing, the compiled active version, export to files."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def installed_packs(session: Session) -> list[InstalledPack]:
    """Installed packs with their active version, by id."""
    out = []
    for pack in session.scalars(select(Pack).order_by(Pack.id)):
        active = pack.active_version
        if active is None:
            continue
        head = next(d for d in active.content["documents"] if d["kind"] == "pack")
        out.append(
            InstalledPack(
                pack.id,
                active.version,
                head.get("name"),
                head.get("description"),
                active.published_by,
                active.published_at,
                len(pack.versions),
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


def active_pack(session: Session, pack_id: str) -> CompiledPack:
    """The compiled active version, compiled once per content per process."""
    from quotaflow.packs.validate import compile_installed

    version = active_version(session, pack_id)
    # Keyed by content hash: published content never changes, so the cache is never stale,
    # and every worker process computes the same thing.
    compiled = _COMPILED.get(version.content_hash)
    if compiled is None:
        compiled = _COMPILED[version.content_hash] = compile_installed(version.content)
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
