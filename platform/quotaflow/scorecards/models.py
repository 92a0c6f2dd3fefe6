"""The appraisal cycle's tables: periods, ratings, frozen results, 1:1 notes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from quotaflow.db import Base, JsonDoc
from quotaflow.timeutil import utcnow

BigId = BigInteger().with_variant(Integer, "sqlite")


class AppraisalPeriod(Base):
    """One run of a scorecard for one period: open -> closed (frozen) -> published."""

    __tablename__ = "appraisal_periods"
    __table_args__ = (UniqueConstraint("pack_id", "scorecard_id", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pack_id: Mapped[str] = mapped_column(String(64))
    scorecard_id: Mapped[str] = mapped_column(String(64))
    period: Mapped[str] = mapped_column(String(32))  # as written: 2026-10, 2026-Q4...
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The definition the results were frozen with (set at close).
    pack_version_id: Mapped[int | None] = mapped_column(ForeignKey("pack_versions.id"))
    content_hash: Mapped[str | None] = mapped_column(String(64))


class AppraisalRating(Base):
    """A rating of a manual item by the rep (self) or their manager, with a comment."""

    __tablename__ = "appraisal_ratings"
    __table_args__ = (UniqueConstraint("period_id", "rep_id", "item_id", "rater"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("appraisal_periods.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    item_id: Mapped[str] = mapped_column(String(64))
    rater: Mapped[str] = mapped_column(String(16))  # self | manager
    value: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    submitted: Mapped[bool] = mapped_column(Boolean, default=False)
    rated_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    rated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AppraisalResult(Base):
    """A rep's result frozen at close: never recomputed until the period is reopened."""

    __tablename__ = "appraisal_results"
    __table_args__ = (UniqueConstraint("period_id", "rep_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("appraisal_periods.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"))
    final_score: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    grade: Mapped[str] = mapped_column(String(16))
    bonus: Mapped[Decimal] = mapped_column(Numeric(8, 4))
    explanation: Mapped[dict[str, Any]] = mapped_column(JsonDoc)


class AppraisalNote(Base):
    """A 1:1 feedback note from the manager to the rep (the rep sees it once published)."""

    __tablename__ = "appraisal_notes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    period_id: Mapped[int] = mapped_column(ForeignKey("appraisal_periods.id"), index=True)
    rep_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
