"""Installing a compiled pack: what would change, and the change itself in one transaction.

A plan compares the new content with the active version: definitions added, changed and
removed; fields and stages added, removed or renamed, with how many existing records each
touches. Installing applies the plan atomically (a failure anywhere leaves the database as
it was), keeps existing data by following `renamed_from`, and is a no-op for same content.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from quotaflow.audit import record_event
from quotaflow.errors import QuotaflowError
from quotaflow.kpis import rollups
from quotaflow.packs.compiled import CompiledPack
from quotaflow.packs.definitions import FormDef, PipelineDef
from quotaflow.packs.models import Pack, PackVersion
from quotaflow.packs.versions import parse_version
from quotaflow.records.models import Record


class InstallRefused(QuotaflowError):
    """The install would lose data or go backwards; nothing was changed."""


@dataclass(frozen=True, slots=True)
class Change:
    """One line of an install plan."""

    what: str  # "form deal", "field deal.amount", "stage b2b.quotation"
    action: str  # added | changed | removed | renamed
    note: str = ""
    records: int = 0

    def __str__(self) -> str:
        touched = (
            f" ({self.records} record{'s' if self.records != 1 else ''})" if self.records else ""
        )
        return f"  {self.action:<8} {self.what}{' ' + self.note if self.note else ''}{touched}"


@dataclass
class InstallPlan:
    """What installing a pack would do; `blockers` stop it."""

    pack_id: str
    version: str
    previous_version: str | None
    same_content: bool
    changes: list[Change] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    field_renames: dict[str, dict[str, str]] = field(default_factory=dict)  # form -> old -> new
    stage_renames: dict[str, dict[str, str]] = field(default_factory=dict)  # form -> old -> new

    def lines(self) -> list[str]:
        """The plan as printed by `pack install --dry-run`."""
        head = (
            f"{self.pack_id} {self.previous_version} -> {self.version}"
            if self.previous_version
            else f"{self.pack_id} {self.version} (new pack)"
        )
        if self.same_content:
            return [f"{head}: already installed with the same content; nothing to do"]
        out = [head + ":", *map(str, self.changes)]
        out += [f"  refused: {b}" for b in self.blockers]
        return out


def _documents(content: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["id"]): d for d in content["documents"]}


def plan_install(
    session: Session, pack: CompiledPack, stage_map: Mapping[str, str] | None = None
) -> InstallPlan:
    """Compare `pack` with the active version; count the records each change touches."""
    installed = session.get(Pack, pack.id)
    active = installed.active_version if installed else None
    plan = InstallPlan(
        pack.id,
        pack.version,
        active.version if active else None,
        same_content=active is not None and active.content_hash == pack.content_hash,
    )
    if active is None or plan.same_content:
        if active is None:
            plan.changes += [
                Change(f"{k} {i}", "added") for k, i in _documents(pack.canonical()) if k != "pack"
            ]
        return plan
    if parse_version(pack.version) < parse_version(active.version):
        plan.blockers.append(
            f"version {pack.version} is lower than the installed {active.version}; "
            "a pack is never downgraded (raise the version to roll back a change)"
        )
    elif pack.version == active.version:
        plan.blockers.append(
            f"version {pack.version} is already installed with other content; raise the version"
        )
    old, new = _documents(active.content), _documents(pack.canonical())
    for key in sorted(new.keys() | old.keys()):
        what = f"{key[0].replace('_', ' ')} {key[1]}"
        if key not in old:
            plan.changes.append(Change(what, "added"))
        elif key not in new:
            plan.changes.append(_removed_definition(session, pack, key, plan))
        elif old[key] != new[key]:
            plan.changes.append(Change(what, "changed"))
    for form_id, form in pack.forms.items():
        if ("form", form_id) in old:
            _plan_fields(session, pack.id, old[("form", form_id)], form, plan)
    for pipeline in pack.pipelines.values():
        previous = old.get(("pipeline", pipeline.id))
        if previous:
            _plan_stages(session, pack.id, previous, pipeline, plan, stage_map or {})
    return plan


def _removed_definition(
    session: Session, pack: CompiledPack, key: tuple[str, str], plan: InstallPlan
) -> Change:
    what = f"{key[0].replace('_', ' ')} {key[1]}"
    if key[0] != "form":
        return Change(what, "removed")
    count = _count(session, pack.id, key[1])
    if count:
        plan.blockers.append(f"form '{key[1]}' has {count} records; removing it would hide them")
    return Change(what, "removed", records=count)


def _count(session: Session, pack_id: str, form_id: str, *where: Any) -> int:
    query = (
        select(func.count())
        .select_from(Record)
        .where(Record.pack_id == pack_id, Record.form_id == form_id, *where)
    )
    return session.scalar(query) or 0


def _has_value(name: str) -> Any:
    return Record.values[name].as_string().is_not(None)


def _plan_fields(
    session: Session, pack_id: str, old_doc: dict[str, Any], form: FormDef, plan: InstallPlan
) -> None:
    old_fields = {f["id"] for f in old_doc["fields"]}
    renames: dict[str, str] = {}
    for fdef in form.fields:
        if fdef.id in old_fields:
            continue
        what = f"field {form.id}.{fdef.id}"
        if fdef.renamed_from is not None and fdef.renamed_from in old_fields:
            renames[fdef.renamed_from] = fdef.id
            count = _count(session, pack_id, form.id, _has_value(fdef.renamed_from))
            plan.changes.append(Change(what, "renamed", f"from {fdef.renamed_from}", count))
        else:
            plan.changes.append(Change(what, "added"))
    for gone in sorted(old_fields - {f.id for f in form.fields} - renames.keys()):
        count = _count(session, pack_id, form.id, _has_value(gone))
        note = "(values stay in the records' history)" if count else ""
        plan.changes.append(Change(f"field {form.id}.{gone}", "removed", note, count))
    if renames:
        plan.field_renames[form.id] = renames


def _plan_stages(
    session: Session,
    pack_id: str,
    old_doc: dict[str, Any],
    pipeline: PipelineDef,
    plan: InstallPlan,
    stage_map: Mapping[str, str],
) -> None:
    old_stages = [s["id"] for s in old_doc["stages"]]
    new_stages = {s.id for s in pipeline.stages}
    mapping = {old: new for old, new in stage_map.items() if old in old_stages}
    mapping.update(
        {
            s.renamed_from: s.id
            for s in pipeline.stages
            if s.renamed_from and s.renamed_from in old_stages
        }
    )
    for old, new in mapping.items():
        if new not in new_stages:
            plan.blockers.append(
                f"stage map {old}={new}: '{new}' is not a stage of pipeline {pipeline.id}"
            )
    for stage in pipeline.stages:
        if stage.id not in old_stages and stage.id not in mapping.values():
            plan.changes.append(Change(f"stage {pipeline.id}.{stage.id}", "added"))
    for old in old_stages:
        if old in new_stages and old not in mapping:
            continue
        count = _count(session, pack_id, pipeline.form, Record.stage == old)
        what = f"stage {pipeline.id}.{old}"
        if old in mapping:
            plan.changes.append(Change(what, "renamed", f"to {mapping[old]}", count))
        else:
            plan.changes.append(Change(what, "removed", records=count))
            if count:
                plan.blockers.append(
                    f"stage '{old}' of pipeline {pipeline.id} holds {count} records: "
                    "give the stage "
                    f"that replaces it 'renamed_from: {old}', or map it with --map-stage {old}=NEW"
                )
    if mapping:
        plan.stage_renames[pipeline.form] = mapping


def install_pack(
    session: Session,
    pack: CompiledPack,
    *,
    actor: str,
    dry_run: bool = False,
    stage_map: Mapping[str, str] | None = None,
) -> InstallPlan:
    """Plan and (unless dry_run) apply an install in the caller's transaction."""
    plan = plan_install(session, pack, stage_map)
    if plan.blockers:
        raise InstallRefused("\n".join(["install refused; nothing was changed:", *plan.lines()]))
    if dry_run or plan.same_content:
        return plan
    from quotaflow.packs.services import ACTIVE_MEMO

    session.info.pop(ACTIVE_MEMO, None)  # this session must see the new active version
    installed = session.get(Pack, pack.id) or Pack(id=pack.id)
    session.add(installed)
    version = PackVersion(
        pack_id=pack.id,
        version=pack.version,
        content=pack.canonical(),
        content_hash=pack.content_hash,
        published_by=actor,
    )
    session.add(version)
    session.flush()
    installed.active_version = version
    _move_renamed_fields(session, pack.id, plan.field_renames)
    for form_id, mapping in plan.stage_renames.items():
        for old, new in mapping.items():
            session.execute(
                update(Record)
                .where(Record.pack_id == pack.id, Record.form_id == form_id, Record.stage == old)
                .values(stage=new),
                execution_options={rollups.HANDLED: True},  # rebuilt below
            )
    record_event(
        session,
        actor=actor,
        action="pack.install",
        object_type="pack",
        object_id=pack.id,
        details={
            "version": pack.version,
            "previous": plan.previous_version,
            "content_hash": pack.content_hash,
            "changes": [str(c).strip() for c in plan.changes],
        },
    )
    session.flush()
    if plan.stage_renames:
        rollups.rebuild(session, pack)
    else:
        rollups.sync(session, pack)
    return plan


def _move_renamed_fields(
    session: Session, pack_id: str, renames: Mapping[str, Mapping[str, str]]
) -> None:
    # Portable across SQLite and PostgreSQL: rewrite the JSON documents in Python, in batches.
    for form_id, mapping in renames.items():
        query = select(Record).where(Record.pack_id == pack_id, Record.form_id == form_id)
        for record in session.scalars(query.execution_options(yield_per=500)):
            if any(old in record.values for old in mapping):
                values = dict(record.values)
                for old, new in mapping.items():
                    if old in values:
                        values[new] = values.pop(old)
                record.values = values
