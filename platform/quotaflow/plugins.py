"""The plugin manager: built-ins, then entry points (group `quotaflow`), then plugins/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pluggy

from quotaflow import hookspecs
from quotaflow.errors import QuotaflowError
from quotaflow.resources import plugins_dir


class PluginError(QuotaflowError):
    """A plugin that cannot be loaded or does not match the hooks; said at start-up."""


def make_plugin_manager(folders: tuple[Path, ...] | None = None) -> pluggy.PluginManager:
    """A new manager with every plugin registered and checked (one per app or CLI command)."""
    manager = pluggy.PluginManager("quotaflow")
    manager.add_hookspecs(hookspecs)
    manager.load_setuptools_entrypoints("quotaflow")
    for folder in folders if folders is not None else (plugins_dir(),):
        for path in sorted(folder.glob("*/__init__.py")) if folder.is_dir() else ():
            manager.register(_import(path), name=f"plugins.{path.parent.name}")
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from None
    return manager


def _import(init: Path) -> object:
    name = f"quotaflow_plugins.{init.parent.name}"
    spec = importlib.util.spec_from_file_location(name, init)
    if spec is None or spec.loader is None:
        raise PluginError(f"cannot load plugin {init.parent}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken plugin must say which one, not crash start-up
        raise PluginError(f"plugin {init.parent.name} failed to load: {exc}") from None
    return module
