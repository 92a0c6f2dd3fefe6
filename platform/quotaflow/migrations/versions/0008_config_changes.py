"""config changes: the stamp that tells workers their memo of users, teams and packs is old

Revision ID: 0008_config_changes
Revises: 0007_kpi_rollups
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0008_config_changes"
down_revision: str | None = "0007_kpi_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    table = op.create_table(
        "config_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_changes")),
    )
    # the first stamp, to the microsecond: a database made again under the same URL (a test
    # copying a template, say) is told apart from the one before by its stamp's time
    op.bulk_insert(table, [{"at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("config_changes")
