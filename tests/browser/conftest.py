"""Browser harness: a real HTTP server on 127.0.0.1 and Debian's chromium driven by Playwright.

Never `playwright install`: the browser is /usr/bin/chromium (scripts/test installs it with
apt). Without it the browser tests are skipped on a developer machine and fail when CI=true.
On failure each test leaves a screenshot in test-artifacts/.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from werkzeug.serving import BaseWSGIServer, make_server

from quotaflow import db
from quotaflow.app import create_app
from quotaflow.config import Settings
from quotaflow.org.models import Membership, User
from quotaflow.org.services import add_membership, add_user, ensure_team
from quotaflow.packs.install import install_pack
from quotaflow.packs.validate import load_pack
from quotaflow.resources import stock_pack_dir
from tests.conftest import REPO, TEST_PASSWORD, missing_component, stock_deal

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = REPO / "test-artifacts"

# username -> (display name, team, role, is_admin); everyone's password is TEST_PASSWORD
PEOPLE = {
    "admin": ("Admin", None, None, True),
    "wang.fang": ("Wang Fang", "east_a", "sales_manager", False),
    "li.wei": ("Li Wei", "east_a", "account_manager", False),
    "zhang.min": ("Zhang Min", "east_a", "account_manager", False),
}


@dataclass
class LiveServer:
    """The app served over real HTTP; `url` is its base URL."""

    url: str
    app: Any
    server: BaseWSGIServer
    thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.app.extensions["quotaflow.engine"].dispose()


def seed_org(url: str) -> None:
    """Company → east → east_a with a manager and two reps, plus an admin."""
    engine = db.make_engine(url)
    with db.transaction(db.make_sessionmaker(engine)) as session:
        company = ensure_team(session, key="company", name="ACME Industrial")
        east = ensure_team(session, key="east", name="East region", parent=company)
        east_a = ensure_team(session, key="east_a", name="East A", parent=east)
        teams = {"east_a": east_a}
        for username, (name, team, role, is_admin) in PEOPLE.items():
            user = add_user(
                session,
                username=username,
                display_name=name,
                password=TEST_PASSWORD,
                is_admin=is_admin,
            )
            if team and role:
                add_membership(
                    session, user=user, team=teams[team], role=role, valid_from=date(2020, 1, 1)
                )
    engine.dispose()


@pytest.fixture
def live_server(sqlite_template: Path, tmp_path: Path) -> Iterator[LiveServer]:
    """A fresh migrated SQLite file with the seeded org, served on a free port in a thread."""
    path = tmp_path / "live.db"
    shutil.copy(sqlite_template, path)
    url = f"sqlite:///{path}"
    seed_org(url)
    app = create_app(settings=Settings(instance_path=tmp_path / "instance", database_url=url))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{server.server_port}", app, server, thread)
    yield live
    live.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, launched once per test session."""
    if not os.access(CHROMIUM, os.X_OK):
        missing_component(f"chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_component("the playwright Python package")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    except Exception as exc:
        playwright.stop()
        missing_component(f"a working chromium ({exc})")
    yield browser
    browser.close()
    playwright.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


class BrowserPage:
    """Factory for pages; records console errors (CSP violations show up there)."""

    def __init__(self, browser: Any, base_url: str) -> None:
        self.browser = browser
        self.base_url = base_url
        self.contexts: list[Any] = []
        self.pages: list[Any] = []
        self.console_errors: list[str] = []

    def new(self, **context_options: Any) -> Any:
        context = self.browser.new_context(base_url=self.base_url, **context_options)
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))
        self.pages.append(page)
        return page

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def close(self, screenshot_name: str | None) -> None:
        for number, page in enumerate(self.pages):
            if screenshot_name:
                ARTIFACTS.mkdir(exist_ok=True)
                page.screenshot(
                    path=str(ARTIFACTS / f"{screenshot_name}-{number}.png"), full_page=True
                )
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(
    browser: Any, live_server: LiveServer, request: pytest.FixtureRequest
) -> Iterator[BrowserPage]:
    """`pages.new(viewport=...)` opens a page on the live server; screenshots kept on failure."""
    factory = BrowserPage(browser, live_server.url)
    yield factory
    report = getattr(request.node, "report_call", None)
    failed = report is not None and report.failed
    factory.close(re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid) if failed else None)


@pytest.fixture
def page(pages: BrowserPage) -> Any:
    """A desktop-sized page on the live server."""
    return pages.new()


def sign_in(page: Any, username: str, password: str = TEST_PASSWORD) -> None:
    """Fill and submit the sign-in form like a person would."""
    page.goto("/login")
    page.get_by_label(re.compile("Username|用户名")).fill(username)
    page.get_by_label(re.compile("Password|密码")).fill(password)
    page.get_by_role("button", name=re.compile("Sign in|登录")).click()


def add_deal(live_server: LiveServer, stage: str, values: dict[str, str]) -> int:
    """The stock pack installed and a deal of li.wei's in `stage` (its first stage move
    recorded); its id."""
    with db.transaction(live_server.app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, load_pack(stock_pack_dir()), actor="test")
        rep = session.scalars(select(User).where(User.username == "li.wei")).one()
        team = session.scalars(select(Membership.team_id).where(Membership.user_id == rep.id)).one()
        return stock_deal(session, rep.id, team, stage, values)
