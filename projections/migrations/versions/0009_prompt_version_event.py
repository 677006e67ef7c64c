"""which proposal took a prompt version

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


def downgrade() -> None:
    op.drop_column("prompt_versions", "event_id")
