"""batches, enrichments, events, audit and prompt read models

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:47:21.886931
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ai_audit",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=True),
        sa.Column("camera_id", sa.String(length=128), nullable=True),
        sa.Column("batch_id", sa.String(length=64), nullable=True),
        sa.Column("prompt_version", sa.Integer(), nullable=True),
        sa.Column("input_summary", sa.Text(), nullable=False),
        sa.Column("raw_output", sa.Text(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ai_audit")),
        sa.UniqueConstraint("audit_id", name=op.f("uq_ai_audit_audit_id")),
    )
    op.create_index(op.f("ix_ai_audit_batch_id"), "ai_audit", ["batch_id"], unique=False)
    op.create_index(op.f("ix_ai_audit_created_at"), "ai_audit", ["created_at"], unique=False)
    op.create_index(op.f("ix_ai_audit_model_name"), "ai_audit", ["model_name"], unique=False)
    op.create_table(
        "batch_detections",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "batch_id", "image_id", "position", name=op.f("pk_batch_detections")
        ),
    )
    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detection_count", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=True),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batches")),
    )
    op.create_index(op.f("ix_batches_camera_id"), "batches", ["camera_id"], unique=False)
    op.create_index(op.f("ix_batches_started_at"), "batches", ["started_at"], unique=False)
    op.create_index(op.f("ix_batches_status"), "batches", ["status"], unique=False)
    op.create_table(
        "enrichments",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("source_event_id", sa.String(length=36), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("detection_type", sa.String(length=16), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("reprocessed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrichments")),
        sa.UniqueConstraint(
            "source_event_id", "position", name=op.f("uq_enrichments_source_event_id_position")
        ),
    )
    op.create_index(op.f("ix_enrichments_created_at"), "enrichments", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_enrichments_image_id_position"),
        "enrichments",
        ["image_id", "position"],
        unique=False,
    )
    op.create_table(
        "event_analyses",
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("analysis_version", sa.Integer(), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("prompt_version", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "analysis_version", name=op.f("pk_event_analyses")),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("batch_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("analysis_version", sa.Integer(), nullable=False),
        sa.Column("risk_score", sa.Integer(), nullable=False),
        sa.Column("risk_level", sa.String(length=16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reasoning", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detection_count", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("prompt_version", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
        sa.UniqueConstraint("batch_id", name=op.f("uq_events_batch_id")),
    )
    op.create_index(
        op.f("ix_events_camera_id_started_at"), "events", ["camera_id", "started_at"], unique=False
    )
    op.create_index(op.f("ix_events_risk_level"), "events", ["risk_level"], unique=False)
    op.create_index(op.f("ix_events_started_at"), "events", ["started_at"], unique=False)
    op.create_table(
        "prompt_versions",
        sa.Column("model", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("system_prompt", sa.Text(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("model", "version", name=op.f("pk_prompt_versions")),
    )


def downgrade() -> None:
    op.drop_table("prompt_versions")
    op.drop_index(op.f("ix_events_started_at"), table_name="events")
    op.drop_index(op.f("ix_events_risk_level"), table_name="events")
    op.drop_index(op.f("ix_events_camera_id_started_at"), table_name="events")
    op.drop_table("events")
    op.drop_table("event_analyses")
    op.drop_index(op.f("ix_enrichments_image_id_position"), table_name="enrichments")
    op.drop_index(op.f("ix_enrichments_created_at"), table_name="enrichments")
    op.drop_table("enrichments")
    op.drop_index(op.f("ix_batches_status"), table_name="batches")
    op.drop_index(op.f("ix_batches_started_at"), table_name="batches")
    op.drop_index(op.f("ix_batches_camera_id"), table_name="batches")
    op.drop_table("batches")
    op.drop_table("batch_detections")
    op.drop_index(op.f("ix_ai_audit_model_name"), table_name="ai_audit")
    op.drop_index(op.f("ix_ai_audit_created_at"), table_name="ai_audit")
    op.drop_index(op.f("ix_ai_audit_batch_id"), table_name="ai_audit")
    op.drop_table("ai_audit")
