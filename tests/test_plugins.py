"""Plugins: discovered from plugins/ and entry points; the first-party label check runs on packs."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from quotaflow.cli import main
from quotaflow.plugins import PluginError, make_plugin_manager
from tests.packfiles import PACK, minimal_files, write_pack


def test_first_party_plugins_are_registered() -> None:
    names = {name for name, _plugin in make_plugin_manager().list_name_plugin()}
    assert "plugins.label_locales" in names


def test_label_map_without_the_default_locale_is_refused(tmp_path: Path) -> None:
    pack = PACK.replace("name: {en: ACME, zh: 艾克米}", "name: {en: ACME}") + "locale: zh\n"
    folder = write_pack(tmp_path, minimal_files({"pack.yaml": pack}))
    result = CliRunner().invoke(main, ["pack", "validate", str(folder)])
    assert result.exit_code == 1
    assert "pack acme: name: label has no 'zh' text (the pack's default locale); it has: en" in (
        result.output
    )


def test_a_plugin_for_an_unknown_hook_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "typo").mkdir()
    (tmp_path / "typo" / "__init__.py").write_text(
        "from quotaflow import hookimpl\n\n@hookimpl\ndef validate_pak(pack):\n    return []\n"
    )
    with pytest.raises(PluginError, match="a plugin implements a hook that does not exist"):
        make_plugin_manager((tmp_path,))


def test_a_broken_plugin_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "__init__.py").write_text("raise ValueError('oops')\n")
    with pytest.raises(PluginError, match="plugin broken failed to load: oops"):
        make_plugin_manager((tmp_path,))
