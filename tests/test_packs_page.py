"""The packs page: administrators see each installed pack, its versions and who published
them, and download the active one as a .zip that installs back to the same content."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from quotaflow import db
from quotaflow.packs.install import install_pack
from quotaflow.packs.validate import load_pack
from quotaflow.resources import stock_pack_dir
from tests.conftest import AuthActions


def test_admins_see_packs_versions_and_download_the_active_one(
    app: Flask, auth: AuthActions, make_user, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    make_user("boss", is_admin=True)
    make_user("li.wei", team="east", role="account_manager")
    shipped = load_pack(stock_pack_dir())
    with db.transaction(app.extensions["quotaflow.sessions"]) as session:
        install_pack(session, shipped, actor="consultant")
    auth.login("li.wei")
    assert auth.client.get("/admin/packs").status_code == 403
    assert auth.client.get("/admin/packs/b2b_manufacturer.zip").status_code == 403
    auth.logout()
    auth.login("boss")
    page = auth.client.get("/admin/packs").get_data(as_text=True)
    assert "B2B manufacturer sales" in page and f'<span class="badge">{shipped.version}' in page
    assert "consultant" in page and shipped.content_hash[:12] in page
    assert 'href="/targets/b2b_manufacturer/revenue_fy2026"' in page  # reachable from here
    download = auth.client.get("/admin/packs/b2b_manufacturer.zip")
    assert download.status_code == 200 and download.mimetype == "application/zip"
    (tmp_path / "again.zip").write_bytes(download.data)
    assert load_pack(tmp_path / "again.zip").content_hash == shipped.content_hash
    assert auth.client.get("/admin/packs/nope.zip").status_code == 404
