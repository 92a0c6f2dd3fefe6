"""Settings from the environment (DATABASE_URL, QUOTAFLOW_*) and the instance folder."""

from __future__ import annotations

import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "QUOTAFLOW_"


@dataclass(frozen=True, slots=True)
class Settings:
    """What a Quotaflow process needs to know before it touches anything."""

    instance_path: Path
    database_url: str
    log_format: str = "text"  # "json" for one JSON object per line (production log shippers)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def instance_path_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> Path:
    """The instance folder: $QUOTAFLOW_INSTANCE_PATH, else ./instance."""
    env = os.environ if environ is None else environ
    return Path(env.get(ENV_PREFIX + "INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    """Read the settings; the default database is SQLite in the instance folder."""
    env = dict(os.environ if environ is None else environ)
    instance = instance_path_from_env(env)
    url = env.get("DATABASE_URL") or f"sqlite:///{instance / 'quotaflow.db'}"
    # Heroku-style URLs say postgres://; SQLAlchemy wants an explicit driver.
    if url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgres://")
    elif url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    extra = {
        k.removeprefix(ENV_PREFIX): v
        for k, v in env.items()
        if k.startswith(ENV_PREFIX) and k not in {ENV_PREFIX + "INSTANCE_PATH"}
    }
    return Settings(
        instance_path=instance,
        database_url=url,
        log_format=extra.pop("LOG_FORMAT", "text"),
        extra=extra,
    )


def secret_key(instance_path: Path) -> str:
    """The instance's secret key, generated on first use (never a hard-coded default)."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_path.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    # Two workers starting at once must end with one key, and neither may read a file the
    # other has created but not yet written: write a private file whole, then link it into
    # place (atomic, and it fails when the key is already there).
    fd, draft = tempfile.mkstemp(dir=instance_path, prefix=".secret_key.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        os.link(draft, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        os.unlink(draft)
    return key
