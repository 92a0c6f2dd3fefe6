"""Where non-Python files live: beside the package in a wheel, at the repo root in a checkout."""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_root() -> Path:
    """Folder holding templates/ and definitions/ (wheel: quotaflow/_data, checkout: repo root)."""
    installed = _PACKAGE / "_data"
    if installed.is_dir():
        return installed
    return _PACKAGE.parent.parent


def templates_dir() -> Path:
    """Jinja templates folder."""
    return data_root() / "templates"


def definitions_dir() -> Path:
    """JSON Schemas and stock packs."""
    return data_root() / "definitions"


def schema_dir() -> Path:
    """Committed JSON Schemas, one per definition kind."""
    return definitions_dir() / "schema"


def stock_pack_dir(pack_id: str = "b2b_manufacturer") -> Path:
    """A stock pack shipped with Quotaflow."""
    return definitions_dir() / "packs" / pack_id


def static_dir() -> Path:
    """Static assets served at /static (our CSS/JS plus vendor/ installed from npm)."""
    return _PACKAGE / "web" / "static"


def plugins_dir() -> Path:
    """First-party plugins shipped with Quotaflow (each a package using the public hooks)."""
    return data_root() / "plugins"
