"""Every hook a plugin can implement. Hooks are called with keyword arguments only."""

from __future__ import annotations

from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("quotaflow")
hookimpl = pluggy.HookimplMarker("quotaflow")


# --- expressions -----------------------------------------------------------------------------


@hookspec
def register_formula_functions() -> Any:
    """Return a list of expressions.FunctionSpec to add to the formula language."""


# --- packs -----------------------------------------------------------------------------------


@hookspec
def validate_pack(pack: Any) -> Any:
    """Return a list of packs.problems.Problem for extra checks on a compiled pack."""
