"""Spreadsheets administrators upload to import (records, people and teams): kept in the
instance folder under a random name between the preview and the import, found again only by
that name, and deleted once imported or after a week — they hold people's data."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

from flask import abort, current_app, flash, request
from flask_babel import gettext as _
from flask_login import current_user

from quotaflow.records.importing import MAX_IMPORT_BYTES
from quotaflow.spreadsheets import UnreadableText, csv_encoding

SUFFIXES = (".csv", ".xlsx")
KEEP_SECONDS = 7 * 24 * 3600


def read_as(path: Path) -> str:
    """How an uploaded CSV was read when not as UTF-8 ("gb18030", "cp1252"; else ""): the
    import pages say so, as a file in yet another encoding may read as one of them, into
    wrong characters."""
    if path.suffix.lower() != ".csv" or not path.is_file():
        return ""
    try:
        encoding = csv_encoding(path.read_bytes())
    except UnreadableText:
        return ""
    return "" if encoding == "utf-8-sig" else encoding


def admin_only() -> None:
    if not current_user.is_admin:
        abort(403)


def uploads_folder() -> Path:
    folder = Path(current_app.instance_path) / "imports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def is_token_stem(stem: str) -> bool:
    """Whether `stem` is the random part of an upload's name (nothing else reaches a file)."""
    return len(stem) == 32 and all(c in "0123456789abcdef" for c in stem)


def saved_upload(prefix: str = "") -> str | None:
    """The request's file saved under a new random name (its token), or None with the reason
    flashed: no file, not a .csv or .xlsx, too large."""
    file = request.files.get("file")
    if file is None or not file.filename:
        flash(_("Choose a file to import."), "error")
        return None
    suffix = Path(file.filename).suffix.lower()
    if suffix not in SUFFIXES:
        flash(_("Expected a .csv or .xlsx file, not %(name)s.", name=file.filename), "error")
        return None
    data = file.read(MAX_IMPORT_BYTES + 1)
    if len(data) > MAX_IMPORT_BYTES:
        flash(_("The file is larger than %(mb)s MB.", mb=MAX_IMPORT_BYTES // 1024 // 1024), "error")
        return None
    forget_old_files()
    token = f"{secrets.token_hex(16)}{suffix}"
    (uploads_folder() / f"{prefix}{token}").write_bytes(data)
    return token


def upload_path(token: str, prefix: str = "") -> Path:
    """The saved upload of this token; 404 for anything else."""
    stem, dot, suffix = token.partition(".")
    if not (dot and is_token_stem(stem) and f".{suffix}" in SUFFIXES):
        abort(404)
    path = uploads_folder() / f"{prefix}{token}"
    if not path.is_file():
        abort(404)
    return path


def forget_old_files() -> None:
    """Uploads never imported, and what imports left behind, are deleted after a week."""
    horizon = time.time() - KEEP_SECONDS
    for path in uploads_folder().iterdir():
        if path.is_file() and path.stat().st_mtime < horizon:
            path.unlink(missing_ok=True)
