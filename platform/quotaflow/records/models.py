"""Records keep field values as a JSON document plus indexed columns every query needs."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quotaflow.db import Base, JsonDoc
from quotaflow.timeutil import utcnow

CENT = Decimal("0.01")


class Record(Base):
    """One filled form, pinned to the pack version it was saved under."""

    __tablename__ = "records"
    __table_args__ = (
        Index("ix_records_form_closed", "form_id", "closed_at"),
        Index("ix_records_form_date", "form_id", "record_date"),
        Index("ix_records_form_owner", "form_id", "owner_id"),
        Index("ix_records_form_stage", "form_id", "stage"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    pack_id: Mapped[str] = mapped_column(ForeignKey("packs.id"))
    pack_version_id: Mapped[int] = mapped_column(ForeignKey("pack_versions.id"), index=True)
    form_id: Mapped[str] = mapped_column(String(64))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    stage: Mapped[str | None] = mapped_column(String(64))
    values: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    # money as integer cents: exact on SQLite (whose NUMERIC is a float) and cheap to SUM
    amount_cents: Mapped[int | None] = mapped_column(BigInteger)
    # the form's own date (a visit's day, a deal's expected close) for date-bucketed KPIs
    record_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # optimistic concurrency: an edit states the version it was based on
    version_no: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version_no}

    @property
    def amount(self) -> Decimal | None:
        """The amount in currency units, exact to the cent."""
        return None if self.amount_cents is None else (Decimal(self.amount_cents) * CENT)

    @amount.setter
    def amount(self, value: Decimal | None) -> None:
        self.amount_cents = None if value is None else int((Decimal(value) / CENT).to_integral())


class RecordHistory(Base):
    """Every change to a record: who, when, what (field → [old, new])."""

    __tablename__ = "record_history"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    record_id: Mapped[int] = mapped_column(ForeignKey("records.id"), index=True)
    version_no: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(32))  # create | update | stage | delete | restore
    changed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    changed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    changes: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)


# Whoever can write records keeps KPI roll-ups in step: registers rollups' session events.
import quotaflow.kpis.rollups  # noqa: E402,F401
