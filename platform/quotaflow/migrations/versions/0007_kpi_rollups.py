"""KPI roll-ups: partial figures per KPI definition, owner and local day or month

Revision ID: 0007_kpi_rollups
Revises: 0006_data_changes
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_kpi_rollups"
down_revision: str | None = "0006_data_changes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_rollup_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pack_id", sa.String(length=64), nullable=False),
        sa.Column("kpi_id", sa.String(length=64), nullable=False),
        sa.Column("form_id", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pack_id"], ["packs.id"], name=op.f("fk_kpi_rollup_sets_pack_id_packs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_kpi_rollup_sets")),
        sa.UniqueConstraint("pack_id", "signature", name=op.f("uq_kpi_rollup_sets_pack_id")),
    )
    op.create_index(
        op.f("ix_kpi_rollup_sets_pack_id"), "kpi_rollup_sets", ["pack_id"], unique=False
    )
    op.create_table(
        "kpi_rollups",
        sa.Column("set_id", sa.Integer(), nullable=False),
        sa.Column("grain", sa.String(length=1), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("cents", sa.BigInteger(), nullable=True),
        sa.Column("num", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("set_id", "grain", "day", "owner_id", name=op.f("pk_kpi_rollups")),
    )


def downgrade() -> None:
    op.drop_table("kpi_rollups")
    op.drop_index(op.f("ix_kpi_rollup_sets_pack_id"), table_name="kpi_rollup_sets")
    op.drop_table("kpi_rollup_sets")
