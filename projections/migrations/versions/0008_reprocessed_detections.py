"""detections of other models beside an image's own; the items of fanned-out jobs; the job
that made an analysis version

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "detections",
        sa.Column("reprocessed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
    )
    op.drop_constraint("uq_detections_image_id_position", "detections", type_="unique")
    op.create_unique_constraint(
        "uq_detections_image_id_model_name_model_version_position",
        "detections",
        ["image_id", "model_name", "model_version", "position"],
    )
    op.create_index("ix_detections_image_id_position", "detections", ["image_id", "position"])
    op.create_index(
        "ix_detections_model_name_detected_at", "detections", ["model_name", "detected_at"]
    )
    op.add_column("event_analyses", sa.Column("job_id", sa.String(length=64), nullable=True))
    op.create_table(
        "job_items",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "item_id", name=op.f("pk_job_items")),
    )


def downgrade() -> None:
    op.drop_table("job_items")
    op.drop_column("event_analyses", "job_id")
    op.drop_index("ix_detections_model_name_detected_at", "detections")
    op.drop_index("ix_detections_image_id_position", "detections")
    op.drop_constraint(
        "uq_detections_image_id_model_name_model_version_position", "detections", type_="unique"
    )
    op.create_unique_constraint(
        "uq_detections_image_id_position", "detections", ["image_id", "position"]
    )
    op.drop_column("detections", "reprocessed")
