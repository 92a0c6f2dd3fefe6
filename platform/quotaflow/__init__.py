"""Quotaflow: a sales process and appraisal scheme run from definition packs."""

from quotaflow.app import create_app
from quotaflow.hookspecs import hookimpl

__all__ = ["create_app", "hookimpl"]
__version__ = "0.1.0"
