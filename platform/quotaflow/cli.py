"""The `quotaflow` command. Each area adds its own group (packs/cli.py, expressions/cli.py, ...)."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from quotaflow.errors import QuotaflowError


class QuotaflowGroup(click.Group):
    """Turns every error into a message and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except QuotaflowError as exc:
            click.secho(f"Error: {exc}", err=True, fg="red")
            ctx.exit(exc.exit_code)
        except Exception as exc:  # the last line of defence: still no traceback for users
            if os.environ.get("QUOTAFLOW_DEBUG"):
                raise
            click.secho(
                f"Unexpected error ({type(exc).__name__}): {exc}\n"
                "This is a bug in Quotaflow; run again with QUOTAFLOW_DEBUG=1 for details.",
                err=True,
                fg="red",
            )
            ctx.exit(2)


@click.group(cls=QuotaflowGroup)
@click.version_option(package_name="quotaflow")
def main() -> None:
    """Quotaflow: run a sales process and appraisal scheme from definition packs."""


def _register() -> None:
    from quotaflow.dbcli import db_group, demo_command, serve_command
    from quotaflow.expressions.cli import expr_group
    from quotaflow.kpis.cli import kpi_group
    from quotaflow.leaderboards.cli import leaderboard_group
    from quotaflow.org.cli import org_group, user_group
    from quotaflow.packs.cli import pack_group
    from quotaflow.pipelines.cli import pipeline_group
    from quotaflow.records.cli import records_group
    from quotaflow.targets.cli import target_group

    for command in (
        pack_group,
        expr_group,
        db_group,
        serve_command,
        demo_command,
        user_group,  # org/cli.py
        org_group,  # org/cli.py
        pipeline_group,  # pipelines/cli.py
        kpi_group,  # kpis/cli.py
        target_group,  # targets/cli.py
        records_group,  # records/cli.py
        leaderboard_group,  # leaderboards/cli.py
    ):
        main.add_command(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
