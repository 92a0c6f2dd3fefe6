"""In a real browser: sign in, see home, sign out; wrong password; a phone-sized screen."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import BrowserPage, LiveServer, sign_in

pytestmark = pytest.mark.browser


def test_rep_signs_in_sees_home_and_signs_out(
    page: Any, pages: BrowserPage, live_server: LiveServer
) -> None:
    page.goto("/")
    assert re.search(r"/login\?next=/$", page.url)  # the gate sends visitors to sign in
    sign_in(page, "li.wei")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator(".usermenu .who").inner_text() == "Li Wei"
    assert page.evaluate("typeof window.htmx") == "object"  # htmx loaded under the CSP
    assert page.locator("text=Users").count() == 0  # no admin links for a rep
    page.get_by_test_id("sign-out").click()
    page.wait_for_url(re.compile(r"/login$"))
    assert "You have signed out." in page.locator(".messages").inner_text()
    page.goto("/")
    assert "/login" in page.url
    assert pages.console_errors == []


def test_wrong_password_shows_the_message_and_keeps_the_username(
    page: Any, pages: BrowserPage
) -> None:
    sign_in(page, "li.wei", "not-the-password")
    error = page.get_by_test_id("login-error")
    assert error.inner_text() == "Wrong username or password."
    assert page.get_by_label("Username").input_value() == "li.wei"
    assert page.get_by_label("Password").input_value() == ""
    assert pages.console_errors == []


def test_phone_screen_shows_usable_nav(pages: BrowserPage, live_server: LiveServer) -> None:
    phone = pages.new(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    sign_in(phone, "admin")
    phone.wait_for_url(f"{live_server.url}/")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scroll
    # the administration links wait behind one entry: the top bar stays a few rows high
    header = phone.locator("header.topbar").bounding_box()
    assert header is not None and header["height"] <= 200
    assert not phone.get_by_role("link", name="Users").is_visible()
    phone.get_by_test_id("admin-menu").locator("summary").tap()
    for control in [
        phone.get_by_test_id("sign-out"),
        phone.get_by_role("link", name="Users"),
        phone.get_by_role("button", name="中文"),
    ]:
        assert control.is_visible()
        box = control.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
        assert box["height"] >= 24  # big enough to tap
    phone.get_by_role("link", name="Users").click()
    phone.wait_for_url(re.compile(r"/admin/users$"))
    assert phone.get_by_role("heading", name="Users").is_visible()
    # the list reads as one card per person: nothing, Status and Deactivate included, off-screen
    assert phone.evaluate("document.querySelector('[data-testid=users]').scrollWidth") <= 375
    assert pages.console_errors == []


def test_language_switch_and_admin_only_pages(pages: BrowserPage, live_server: LiveServer) -> None:
    rep = pages.new()
    sign_in(rep, "zhang.min")
    rep.wait_for_url(f"{live_server.url}/")
    rep.get_by_role("button", name="中文").click()
    assert rep.get_by_test_id("sign-out").inner_text() == "退出登录"
    rep.goto("/admin/users")
    assert rep.get_by_role("heading", name="无权访问").is_visible()
    admin = pages.new(viewport={"width": 1280, "height": 800})
    sign_in(admin, "admin")
    admin.wait_for_url(f"{live_server.url}/")
    # a desktop's top bar is one row; the administration entry opens onto its pages
    header = admin.locator("header.topbar").bounding_box()
    assert header is not None and header["height"] <= 80
    menu = admin.get_by_test_id("admin-menu")
    admin.get_by_text("Administration").click()
    expect(admin.get_by_role("link", name="Audit log")).to_be_visible()
    admin.keyboard.press("Escape")  # closes, as menus do; so does a click outside
    expect(admin.get_by_role("link", name="Audit log")).to_be_hidden()
    admin.get_by_text("Administration").click()
    admin.get_by_role("heading", name="Hello, Admin").click()
    expect(admin.get_by_role("link", name="Audit log")).to_be_hidden()
    assert "here" not in (menu.get_attribute("class") or "")
    admin.get_by_text("Administration").click()
    admin.get_by_role("link", name="Teams").click()
    admin.wait_for_url(re.compile(r"/admin/teams$"))
    assert "here" in (menu.get_attribute("class") or "")  # the entry says where one is
    tree = admin.get_by_test_id("team-tree").inner_text()
    assert "East A" in tree and "Wang Fang" in tree and "Zhang Min" in tree
    assert [e for e in pages.console_errors if "403 (FORBIDDEN)" not in e] == []
