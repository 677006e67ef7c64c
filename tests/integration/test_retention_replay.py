"""A cleanup holds whatever order a replay brings the facts in: the projector applies one
camera's history and the cleanup's `RetentionApplied`, each in a transaction of its own, with
the cleanup at every position, and the same rows are left each time."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.runner import Projector
from projections.tables import (
    AuditRow,
    BatchRow,
    DeadLetterRow,
    DetectionRow,
    EnrichmentRow,
    EvaluationRow,
    Image,
    PromptTestRow,
    SecurityEventRow,
)
from schemas.codec import encode
from schemas.jobs import RetentionApplied
from schemas.topics import JOBS
from tests.factories import camera_history, job_id
from tests.support import Record, new_camera_id

HISTORY = len(camera_history("any", datetime.now(UTC), "/any.jpg"))
TABLES = (
    Image,
    DetectionRow,
    EnrichmentRow,
    BatchRow,
    SecurityEventRow,
    AuditRow,
    EvaluationRow,
    PromptTestRow,
    DeadLetterRow,
)


def rows_left(engine, camera_id: str) -> dict[str, int]:
    with Session(engine) as session:
        return {
            table.__tablename__: session.scalar(
                select(func.count()).select_from(table).where(table.camera_id == camera_id)
            )
            for table in TABLES
        }


def replayed_with_cleanup_at(engine, position: int) -> dict[str, int]:
    """A new camera's history of an image from 40 days ago and one from an hour ago, one
    event per transaction, with a cleanup of what is older than 30 days applied after the
    first `position` events."""
    camera_id = new_camera_id("order")
    now = datetime.now(UTC)
    history = [
        *camera_history(camera_id, now - timedelta(days=40), "/old.jpg"),
        *camera_history(camera_id, now - timedelta(hours=1), "/new.jpg"),
    ]
    cleanup = RetentionApplied(
        job_id=job_id(), attempt=1, cutoff=now - timedelta(days=30), camera_id=camera_id
    )
    facts = [*history[:position], (JOBS, cleanup), *history[position:]]
    projector = Projector(engine, "127.0.0.1:9", consumer_name=f"order-{uuid.uuid4().hex[:8]}")
    for offset, (topic, event) in enumerate(facts):
        projector.apply([Record(topic.name, offset, encode(event))])
    return rows_left(engine, camera_id)


def test_a_cleanup_leaves_the_same_rows_wherever_a_replay_brings_it(engine):
    cleanup_last = replayed_with_cleanup_at(
        engine, len(camera_history("c", datetime.now(UTC), "/x"))
    )
    # The recent image's rows stay, as do the old pending dead letters until they are
    # resolved; everything else goes.
    assert cleanup_last == {table.__tablename__: 1 for table in TABLES} | {
        "detections": 2,
        "dead_letters": 3,
    }
    for position in range(2 * HISTORY):
        assert replayed_with_cleanup_at(engine, position) == cleanup_last, position
