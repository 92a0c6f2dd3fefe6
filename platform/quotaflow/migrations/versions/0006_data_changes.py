"""data changes: the stamp that invalidates cached KPI figures

Revision ID: 0006_data_changes
Revises: 0005_target_adjustments
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_data_changes"
down_revision: str | None = "0005_target_adjustments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "data_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_data_changes")),
    )


def downgrade() -> None:
    op.drop_table("data_changes")
