"""dead letter context and batch member index

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 18:03:46.013160
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_batch_detections_image_id_position"),
        "batch_detections",
        ["image_id", "position"],
        unique=False,
    )
    op.add_column(
        "dead_letters", sa.Column("context", postgresql.JSONB(astext_type=sa.Text()), nullable=True)
    )


def downgrade() -> None:
    op.drop_column("dead_letters", "context")
    op.drop_index(op.f("ix_batch_detections_image_id_position"), table_name="batch_detections")
