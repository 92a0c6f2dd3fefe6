"""The Flask app factory: it only wires settings, database, plugins and blueprints."""

from __future__ import annotations

import gc
from typing import Any

from flask import Flask
from werkzeug.routing import Map
from werkzeug.routing.converters import IntegerConverter

from quotaflow import db
from quotaflow.config import Settings, secret_key, settings_from_env
from quotaflow.logging_setup import configure_logging
from quotaflow.resources import static_dir, templates_dir


def create_app(
    test_config: dict[str, Any] | None = None, settings: Settings | None = None
) -> Flask:
    """Build an app: defaults → environment/instance → `test_config` overrides."""
    settings = settings or settings_from_env()
    app = Flask(
        "quotaflow",
        instance_path=str(settings.instance_path),
        template_folder=str(templates_dir()),
        static_folder=str(static_dir()),
    )
    configure_logging(settings.log_format)
    # ids in addresses fit the database's integer columns: /records/99999999999999999999 is
    # an unknown page (404), not an overflow inside SQLite's driver (500)
    app.url_map.converters["int"] = DatabaseId
    app.config.from_mapping(
        SECRET_KEY=None,
        DATABASE_URL=settings.database_url,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        QUOTAFLOW_CHECK_MIGRATIONS=True,
    )
    app.config.update(settings.extra)
    if test_config:
        app.config.update(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = secret_key(settings.instance_path)

    from quotaflow.web import init_app as init_web

    _init_db(app)
    init_web(app)
    if not app.testing:
        _freeze_after_first_request(app)
    return app


class DatabaseId(IntegerConverter):
    """`<int:...>` within a 32-bit signed integer, the smallest id column on either database."""

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:  # noqa: A002 - werkzeug's name
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def _freeze_after_first_request(app: Flask) -> None:
    """Once the first request has loaded the packs, templates and mappers, move everything
    alive into the collector's permanent generation (gc.freeze, made for servers): a full
    collection otherwise walks those ~130,000 long-lived objects and stalled a worker ~45 ms
    about once a thousand requests, with every queued request waiting behind it."""
    frozen = False

    def freeze(_exc: BaseException | None) -> None:
        nonlocal frozen
        if not frozen:
            frozen = True
            gc.collect()
            gc.freeze()

    app.teardown_request(freeze)


def _init_db(app: Flask) -> None:
    engine = db.make_engine(app.config["DATABASE_URL"])
    if app.config["QUOTAFLOW_CHECK_MIGRATIONS"]:
        db.ensure_migrated(engine)
    app.extensions["quotaflow.engine"] = engine
    app.extensions["quotaflow.sessions"] = db.make_sessionmaker(engine)
