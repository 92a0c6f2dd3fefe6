"""Failed sign-in attempts, kept in the database so every worker counts the same failures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from quotaflow.db import Base
from quotaflow.timeutil import utcnow


class LoginAttempt(Base):
    """One failed sign-in: which username (lower-cased), from which address, when."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_username_ip_at", "username", "ip", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    username: Mapped[str] = mapped_column(String(80))
    ip: Mapped[str] = mapped_column(String(45))  # room for an IPv6 address
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
