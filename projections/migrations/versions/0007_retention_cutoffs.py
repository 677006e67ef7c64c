"""retention cut-offs of cleanup jobs

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "retention_cutoffs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=True),
        sa.Column("cutoff", TS, nullable=False),
        sa.Column("applied_at", TS, nullable=False),
        sa.Column("deleted", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_retention_cutoffs")),
    )


def downgrade() -> None:
    op.drop_table("retention_cutoffs")
