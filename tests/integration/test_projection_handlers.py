"""Projection handlers against the real Postgres: idempotent on their natural keys."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.handlers import dead_lettered, detections_produced, image_received
from projections.tables import DeadLetterRow, DetectionRow, Image
from streams.dead_letters import dead_letter
from tests.factories import detections_event, image_event
from tests.support import new_camera_id


def _apply(engine, handler, event) -> None:
    with Session(engine) as session, session.begin():
        handler(event, session)


def test_detections_are_written_once_per_image(engine):
    image = image_event(new_camera_id())
    produced = detections_event(image, ["person", "bus"])
    _apply(engine, image_received, image)
    _apply(engine, detections_produced, produced)
    _apply(engine, detections_produced, detections_event(image, ["person", "bus", "dog"]))
    _apply(engine, image_received, image)
    with Session(engine) as session:
        rows = session.scalars(
            select(DetectionRow)
            .where(DetectionRow.image_id == image.image_id)
            .order_by(DetectionRow.position)
        ).all()
        stored = session.scalars(select(Image).where(Image.image_id == image.image_id)).one()
    assert [(r.position, r.label) for r in rows] == [(0, "person"), (1, "bus")]
    assert rows[0].detected_at == produced.occurred_at
    assert (stored.status, stored.detection_count, stored.width, stored.height) == (
        "detected",
        2,
        810,
        1080,
    )
    assert stored.sha256 == "b" * 64


def test_detections_before_image_fact_keep_detected_status(engine):
    image = image_event(new_camera_id())
    _apply(engine, detections_produced, detections_event(image, []))
    _apply(engine, image_received, image)
    with Session(engine) as session:
        stored = session.scalars(select(Image).where(Image.image_id == image.image_id)).one()
    assert (stored.status, stored.detection_count, stored.size_bytes) == ("detected", 0, 1234)


def test_dead_letter_marks_image_failed_until_detected(engine):
    image = image_event(new_camera_id())
    letter = dead_letter(
        stage="detection",
        raw=image.model_dump_json().encode(),
        error=ValueError("boom"),
        producer="test",
        source_topic="vigil.images",
        source_partition=0,
        source_offset=7,
        camera_id=image.camera_id,
    )
    _apply(engine, image_received, image)
    _apply(engine, dead_lettered, letter)
    _apply(engine, dead_lettered, letter)
    with Session(engine) as session:
        stored = session.scalars(select(Image).where(Image.image_id == image.image_id)).one()
        letters = session.scalar(
            select(func.count())
            .select_from(DeadLetterRow)
            .where(DeadLetterRow.dead_letter_id == str(letter.event_id))
        )
    assert (stored.status, stored.error) == ("failed", "ValueError: boom")
    assert letters == 1
    _apply(engine, detections_produced, detections_event(image, ["car"]))
    with Session(engine) as session:
        stored = session.scalars(select(Image).where(Image.image_id == image.image_id)).one()
    assert (stored.status, stored.error, stored.detection_count) == ("detected", None, 1)
