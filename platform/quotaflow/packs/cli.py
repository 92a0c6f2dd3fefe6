"""`quotaflow pack ...` commands."""

import click


@click.group("pack")
def pack_group() -> None:
    """Validate, install, export and list definition packs."""
