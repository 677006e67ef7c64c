"""read_counts: detections, the images they were found in, and enrichments counted per
model, camera, label and UTC day, kept exact by statement triggers on their tables

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (table, kind, label column, time column): what each counted table rolls up.
COUNTED = (
    ("detections", "detection", "label", "detected_at"),
    ("enrichments", "enrichment", "detection_type", "created_at"),
)
KEY = "kind, model_name, model_version, camera_id, label, day"


def _rollup(kind: str, label: str, at: str, rows: str, sign: str) -> str:
    """Add (sign '+') or take away (sign '-') the counts of the transition table `rows`; the
    groups in key order, so two transactions lock the rows they share in the same order."""
    return f"""
    INSERT INTO read_counts AS c ({KEY}, n, confidence_sum, latency_n, latency_sum)
    SELECT '{kind}', model_name, coalesce(model_version, ''), camera_id, {label},
           ({at} AT TIME ZONE 'UTC')::date,
           {sign}count(*), {sign}coalesce(sum(confidence), 0),
           {sign}count(latency_ms), {sign}coalesce(sum(latency_ms), 0)
    FROM {rows}
    GROUP BY 2, 3, 4, 5, 6
    ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT ({KEY}) DO UPDATE SET
        n = c.n + excluded.n,
        confidence_sum = c.confidence_sum + excluded.confidence_sum,
        latency_n = c.latency_n + excluded.latency_n,
        latency_sum = c.latency_sum + excluded.latency_sum;"""


def _images(rows: str, sign: str) -> str:
    """The same for the images detected (kind 'detected_image', no label): an image is
    counted by its first detection's row (position 0), whichever statement writes it (the
    projector writes rows with an executemany: a statement per row)."""
    return f"""
    INSERT INTO read_counts AS c ({KEY}, n, confidence_sum, latency_n, latency_sum)
    SELECT 'detected_image', model_name, coalesce(model_version, ''), camera_id, '',
           (detected_at AT TIME ZONE 'UTC')::date, {sign}count(*), 0, 0, 0
    FROM {rows}
    WHERE position = 0
    GROUP BY 2, 3, 4, 5, 6
    ORDER BY 2, 3, 4, 5, 6
    ON CONFLICT ({KEY}) DO UPDATE SET n = c.n + excluded.n;"""


def upgrade() -> None:
    op.create_table(
        "read_counts",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model_name", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(32), nullable=False),
        sa.Column("camera_id", sa.String(128), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("confidence_sum", sa.Float(), nullable=False),
        sa.Column("latency_n", sa.BigInteger(), nullable=False),
        sa.Column("latency_sum", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint(*KEY.split(", "), name="pk_read_counts"),
    )
    op.create_index("ix_enrichments_latency_ms", "enrichments", ["latency_ms"])
    op.create_index(
        "ix_enrichments_camera_id_latency_ms", "enrichments", ["camera_id", "latency_ms"]
    )
    for table, kind, label, at in COUNTED:
        op.execute(f"""
        CREATE FUNCTION count_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') THEN {_rollup(kind, label, at, "old_rows", "-")}
            {_images("old_rows", "-") if table == "detections" else ""}
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') THEN {_rollup(kind, label, at, "new_rows", "")}
            {_images("new_rows", "") if table == "detections" else ""}
            END IF;
            RETURN NULL;
        END $$""")
        for event, tables in (
            ("INSERT", "NEW TABLE AS new_rows"),
            ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
            ("DELETE", "OLD TABLE AS old_rows"),
        ):
            op.execute(
                f"CREATE TRIGGER {table}_counted_{event.lower()} AFTER {event} ON {table} "
                f"REFERENCING {tables} FOR EACH STATEMENT EXECUTE FUNCTION count_{table}()"
            )
        op.execute(f"""
        INSERT INTO read_counts ({KEY}, n, confidence_sum, latency_n, latency_sum)
        SELECT '{kind}', model_name, coalesce(model_version, ''), camera_id, {label},
               ({at} AT TIME ZONE 'UTC')::date, count(*), coalesce(sum(confidence), 0),
               count(latency_ms), coalesce(sum(latency_ms), 0)
        FROM {table} GROUP BY 2, 3, 4, 5, 6""")
    op.execute(_images("detections", "").split("ON CONFLICT")[0])


def downgrade() -> None:
    for table, *_ in COUNTED:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER {table}_counted_{event} ON {table}")
        op.execute(f"DROP FUNCTION count_{table}()")
    op.drop_table("read_counts")
    op.drop_index("ix_enrichments_camera_id_latency_ms", "enrichments")
    op.drop_index("ix_enrichments_latency_ms", "enrichments")
