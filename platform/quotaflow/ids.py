"""Ids and version numbers from text a page or a person sent.

Anything but plain ASCII digits, or a number no database column holds (SQLite raised on
one, PostgreSQL too), is no id: the caller answers as for an unknown one.
"""

from __future__ import annotations

MAX_DIGITS = 9  # below 2**31: fits every INTEGER column on both databases


def id_from(text: str | None) -> int | None:
    """`text` as a non-negative id, or None."""
    text = (text or "").strip()
    if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS:
        return int(text)
    return None
