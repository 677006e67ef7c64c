"""dead letter actions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 18:28:48.208328
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_actions",
        sa.Column("dead_letter_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requeued_partition", sa.Integer(), nullable=True),
        sa.Column("requeued_offset", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("dead_letter_id", name=op.f("pk_dead_letter_actions")),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_actions")
