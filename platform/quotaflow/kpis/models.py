"""Maintained KPI roll-ups: partial figures per (KPI definition, owner, local day or month).

A roll-up set belongs to one aggregate KPI definition, named by its signature (the hash of
everything that decides its figures: form, op, field, filter, date field, the fields' types,
the pack's time zone). Its rows hold, per owner and local day ("d") and per owner and month
("m", dated the 1st), the count `n` and the sum — `cents` for money, `num` for other numbers.
Maintenance and use are in kpis/rollups.py and kpis/engine.py.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from quotaflow.db import Base
from quotaflow.timeutil import utcnow

READY = "ready"
STALE = "stale"  # records were changed by a statement that did not maintain the roll-ups


class RollupSet(Base):
    """One aggregate KPI definition whose figures are kept rolled up."""

    __tablename__ = "kpi_rollup_sets"
    __table_args__ = (UniqueConstraint("pack_id", "signature"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pack_id: Mapped[str] = mapped_column(ForeignKey("packs.id"), index=True)
    kpi_id: Mapped[str] = mapped_column(String(64))
    form_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=READY)
    built_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rollup(Base):
    """The partial figures of one set for one owner on one local day (or month)."""

    __tablename__ = "kpi_rollups"

    # no foreign key: an import upserts thousands of rows, and a per-row FK trigger would
    # cost a fifth of it; sets are only deleted by kpis/rollups.py, rows first
    set_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)  # d | m
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    owner_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    cents: Mapped[int | None] = mapped_column(BigInteger)
    num: Mapped[float | None] = mapped_column(Float)
