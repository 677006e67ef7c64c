"""which proposal took a prompt version; prompt replays

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("prompt_versions", sa.Column("event_id", sa.String(length=36), nullable=True))
    op.create_table(
        "prompt_replays",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("current_score", sa.Integer(), nullable=False),
        sa.Column("current_level", sa.String(length=16), nullable=False),
        sa.Column("candidate_score", sa.Integer(), nullable=False),
        sa.Column("candidate_level", sa.String(length=16), nullable=False),
        sa.Column("current_summary", sa.Text(), nullable=False),
        sa.Column("candidate_summary", sa.Text(), nullable=False),
        sa.Column("current_latency_ms", sa.Float(), nullable=False),
        sa.Column("candidate_latency_ms", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("job_id", "batch_id", name=op.f("pk_prompt_replays")),
    )


def downgrade() -> None:
    op.drop_table("prompt_replays")
    op.drop_column("prompt_versions", "event_id")
