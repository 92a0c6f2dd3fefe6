"""`quotaflow expr ...` commands."""

import click


@click.group("expr")
def expr_group() -> None:
    """Check and evaluate formulas in the expression language."""
