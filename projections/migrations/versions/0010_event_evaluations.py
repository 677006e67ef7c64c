"""evaluations of security events; prompt tests

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "event_evaluations",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("evaluation_id", sa.String(length=64), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("analysis_version", sa.Integer(), nullable=False),
        sa.Column("prompt_version", sa.Integer(), nullable=False),
        sa.Column("prompt_model", sa.String(length=64), nullable=False),
        sa.Column("judge_model", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failures", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("consistency", sa.Float(), nullable=True),
        sa.Column("relevance", sa.Float(), nullable=True),
        sa.Column("coherence", sa.Float(), nullable=True),
        sa.Column("overall", sa.Float(), nullable=True),
        sa.Column("model_contributions", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("prompt_suggestions", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("audit_ids", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_evaluations")),
        sa.UniqueConstraint("evaluation_id", name=op.f("uq_event_evaluations_evaluation_id")),
    )
    op.create_index(
        op.f("ix_event_evaluations_batch_id_analysis_version_created_at"),
        "event_evaluations",
        ["batch_id", "analysis_version", "created_at"],
    )
    op.create_index(op.f("ix_event_evaluations_created_at"), "event_evaluations", ["created_at"])
    op.create_table(
        "prompt_tests",
        sa.Column("test_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("outcomes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("test_id", name=op.f("pk_prompt_tests")),
    )
    op.create_index(op.f("ix_prompt_tests_created_at"), "prompt_tests", ["created_at"])


def downgrade() -> None:
    op.drop_table("prompt_tests")
    op.drop_table("event_evaluations")
