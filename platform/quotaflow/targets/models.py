"""Mid-period target adjustments: each one a new version of a plan's split, with its reason."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from quotaflow.db import Base, JsonDoc
from quotaflow.timeutil import utcnow


class TargetAdjustment(Base):
    """Version N of a plan's split: node `node_key` set to `amount` (ideal tier, whole plan
    period), its siblings sharing the rest; `before`/`after` keep every sibling's amount."""

    __tablename__ = "target_adjustments"
    __table_args__ = (UniqueConstraint("pack_id", "plan_id", "version_no"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pack_id: Mapped[str] = mapped_column(String(64))
    plan_id: Mapped[str] = mapped_column(String(64))
    version_no: Mapped[int] = mapped_column(Integer)
    node_key: Mapped[str] = mapped_column(String(120))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    reason: Mapped[str] = mapped_column(Text)
    before: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    after: Mapped[dict[str, Any]] = mapped_column(JsonDoc)
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
