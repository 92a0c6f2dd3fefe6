"""Ids and version numbers from text a page or a person sent.

Anything but plain ASCII digits, or a number no database column holds (SQLite raised on
one, PostgreSQL too), is no id: the caller answers as for an unknown one.
"""

from __future__ import annotations

MAX_DIGITS = 9  # below 2**31: fits every INTEGER column on both databases


def id_from(value: object) -> int | None:
    """`value` (text sent, or a number stored in a record's values) as a non-negative id, or
    None for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    text = value.strip() if isinstance(value, str) else str(value)
    if text.isascii() and text.isdigit() and len(text) <= MAX_DIGITS:
        return int(text)
    return None
