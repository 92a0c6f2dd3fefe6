"""Time helpers shared by every area (all stored times are timezone-aware UTC)."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now, in UTC, timezone-aware."""
    return datetime.now(UTC)
