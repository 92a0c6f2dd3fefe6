"""target adjustments: versions of a plan's split with their reasons

Revision ID: 0005_target_adjustments
Revises: 0004_appraisals
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_target_adjustments"
down_revision: str | None = "0004_appraisals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JsonDoc = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "target_adjustments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pack_id", sa.String(64), nullable=False),
        sa.Column("plan_id", sa.String(64), nullable=False),
        sa.Column("version_no", sa.Integer(), nullable=False),
        sa.Column("node_key", sa.String(120), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("before", JsonDoc, nullable=False),
        sa.Column("after", JsonDoc, nullable=False),
        sa.Column("changed_by", sa.Integer(), nullable=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["changed_by"], ["users.id"], name=op.f("fk_target_adjustments_changed_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_target_adjustments")),
        sa.UniqueConstraint(
            "pack_id", "plan_id", "version_no", name=op.f("uq_target_adjustments_pack_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("target_adjustments")
