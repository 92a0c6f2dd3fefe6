"""Installed packs and their published versions (a published version is immutable)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint, event
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from quotaflow.db import Base, JsonDoc
from quotaflow.errors import QuotaflowError
from quotaflow.timeutil import utcnow


class Pack(Base):
    """A pack installed in this company; `active_version` is what the app serves."""

    __tablename__ = "packs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    installed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    active_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("pack_versions.id", use_alter=True, name="fk_packs_active_version")
    )
    # post_update: packs and pack_versions point at each other; write this FK in a second step
    active_version: Mapped[PackVersion | None] = relationship(
        foreign_keys=[active_version_id], post_update=True
    )
    versions: Mapped[list[PackVersion]] = relationship(
        foreign_keys="PackVersion.pack_id", back_populates="pack", order_by="PackVersion.id"
    )


class PackVersion(Base):
    """One published version: its canonical content, content hash, who and when."""

    __tablename__ = "pack_versions"
    __table_args__ = (UniqueConstraint("pack_id", "version", "content_hash"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pack_id: Mapped[str] = mapped_column(ForeignKey("packs.id"), index=True)
    version: Mapped[str] = mapped_column(String(64))
    # Deferred: the whole pack as JSON is read only where it is needed (compile, export).
    content: Mapped[dict[str, Any]] = mapped_column(JsonDoc, deferred=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    published_by: Mapped[str] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    pack: Mapped[Pack] = relationship(foreign_keys=[pack_id], back_populates="versions")


class PublishedVersionImmutable(QuotaflowError):
    """Raised on any attempt to change a published pack version."""


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_published(session: Session, _ctx: Any, _instances: Any) -> None:
    # Scores and records are pinned to versions; rewriting one would silently change history.
    for obj in session.dirty:
        if isinstance(obj, PackVersion) and session.is_modified(obj):
            raise PublishedVersionImmutable(
                f"pack {obj.pack_id} version {obj.version} is published and cannot be changed; "
                "install a new version instead"
            )
    for obj in session.deleted:
        if isinstance(obj, PackVersion):
            raise PublishedVersionImmutable(
                f"pack {obj.pack_id} version {obj.version} is published and cannot be deleted"
            )
