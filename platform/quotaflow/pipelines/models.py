"""Stage moves (the source of conversion rates and cycle times) and approval requests."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from quotaflow.db import Base, JsonDoc
from quotaflow.timeutil import utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class StageMove(Base):
    """A record entering a stage: from where, who moved it, when (creation counts as a move)."""

    __tablename__ = "stage_moves"
    __table_args__ = (Index("ix_stage_moves_record_at", "record_id", "moved_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"))
    pipeline_id: Mapped[str] = mapped_column(String(64))
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    moved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    moved_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Approval(Base):
    """A move, or a change of values in the record's stage, waiting for (or decided by) an
    approver."""

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_status_role", "status", "approver_role"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), index=True)
    pipeline_id: Mapped[str] = mapped_column(String(64))
    from_stage: Mapped[str | None] = mapped_column(String(64))
    to_stage: Mapped[str] = mapped_column(String(64))
    approver_role: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|approved|rejected
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    requested_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    request_note: Mapped[str | None] = mapped_column(Text)
    values: Mapped[dict] = mapped_column(JsonDoc, default=dict)  # what the approver decides on
    # a change of values in the record's stage (from_stage == to_stage): the record's version
    # it was asked on top of; approved on any other, it would undo someone's later save
    record_version: Mapped[int | None] = mapped_column(Integer)

    @property
    def is_change(self) -> bool:
        """New values for the record in its own stage, not a move."""
        return self.from_stage == self.to_stage

    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    comment: Mapped[str | None] = mapped_column(Text)
