"""read models for images, detections and dead letters

Revision ID: 0001
Revises:
Create Date: 2026-11-25 17:34:13.120618
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("dead_letter_id", sa.String(length=36), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=True),
        sa.Column("source_topic", sa.String(length=255), nullable=True),
        sa.Column("source_partition", sa.Integer(), nullable=True),
        sa.Column("source_offset", sa.BigInteger(), nullable=True),
        sa.Column("original", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("original_encoding", sa.String(length=8), nullable=False),
        sa.Column("error_type", sa.String(length=128), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("dead_letter_id", name=op.f("uq_dead_letters_dead_letter_id")),
    )
    op.create_index(op.f("ix_dead_letters_stage"), "dead_letters", ["stage"], unique=False)
    op.create_table(
        "detections",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("class_id", sa.Integer(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("x1", sa.Float(), nullable=False),
        sa.Column("y1", sa.Float(), nullable=False),
        sa.Column("x2", sa.Float(), nullable=False),
        sa.Column("y2", sa.Float(), nullable=False),
        sa.Column("image_width", sa.Integer(), nullable=False),
        sa.Column("image_height", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_detections")),
        sa.UniqueConstraint("image_id", "position", name=op.f("uq_detections_image_id_position")),
    )
    op.create_index(
        op.f("ix_detections_camera_id_detected_at"),
        "detections",
        ["camera_id", "detected_at"],
        unique=False,
    )
    op.create_index(op.f("ix_detections_detected_at"), "detections", ["detected_at"], unique=False)
    op.create_index(
        op.f("ix_detections_label_detected_at"),
        "detections",
        ["label", "detected_at"],
        unique=False,
    )
    op.create_table(
        "images",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("image_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=128), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("file_modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("detection_count", sa.Integer(), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_images")),
        sa.UniqueConstraint("image_id", name=op.f("uq_images_image_id")),
    )
    op.create_index(op.f("ix_images_camera_id"), "images", ["camera_id"], unique=False)
    op.create_table(
        "projection_offsets",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "consumer", "topic", "partition", name=op.f("pk_projection_offsets")
        ),
    )
    op.create_table(
        "projection_rejects",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projection_rejects")),
        sa.UniqueConstraint(
            "consumer",
            "topic",
            "partition",
            "offset",
            name=op.f("uq_projection_rejects_consumer_topic_partition_offset"),
        ),
    )


def downgrade() -> None:
    op.drop_table("projection_rejects")
    op.drop_table("projection_offsets")
    op.drop_index(op.f("ix_images_camera_id"), table_name="images")
    op.drop_table("images")
    op.drop_index(op.f("ix_detections_label_detected_at"), table_name="detections")
    op.drop_index(op.f("ix_detections_detected_at"), table_name="detections")
    op.drop_index(op.f("ix_detections_camera_id_detected_at"), table_name="detections")
    op.drop_table("detections")
    op.drop_index(op.f("ix_dead_letters_stage"), table_name="dead_letters")
    op.drop_table("dead_letters")
