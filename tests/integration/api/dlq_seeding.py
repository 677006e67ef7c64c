"""Real dead letters for the DLQ tests: built, published, projected and read back."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from projections.tables import DeadLetterRow
from schemas.codec import encode
from schemas.dead_letters import DeadLettered, Stage
from schemas.envelope import Message
from schemas.system import DeadLetterRequeued
from schemas.topics import BATCHES, DEAD_LETTER_TOPICS, DETECTIONS, IMAGES, TopicSpec
from streams.dead_letters import dead_letter
from tests.conftest import publish, wait_for
from tests.integration.api.seeding import TopicWatcher, closed, opened
from tests.integration.test_projection_handlers import detections_event, image_event

# Older than any letter the pipeline writes while the suite runs.
BASE = datetime(2001, 1, 1, tzinfo=UTC)


def failed_letter(
    stage: Stage,
    camera_id: str | None,
    minute: int,
    *,
    raw: bytes,
    source: TopicSpec | None,
    error: BaseException,
) -> DeadLettered:
    failed = BASE + timedelta(minutes=minute)
    return dead_letter(
        stage=stage,
        raw=raw,
        error=error,
        producer="test",
        source_topic=source.name if source else None,
        source_partition=0 if source else None,
        source_offset=minute if source else None,
        camera_id=camera_id,
        attempt_count=3,
        first_failed_at=failed,
        last_failed_at=failed + timedelta(seconds=10),
    )


def image_letter(camera_id: str, minute: int) -> tuple[DeadLettered, Message]:
    image = image_event(camera_id, digest=uuid.uuid4().hex * 2)
    error = TimeoutError("detector service unavailable")
    letter = failed_letter(
        "detection", camera_id, minute, raw=encode(image), source=IMAGES, error=error
    )
    return letter, image


def detections_letter(camera_id: str, minute: int) -> tuple[DeadLettered, Message]:
    produced = detections_event(image_event(camera_id, uuid.uuid4().hex * 2), ["person"])
    error = ConnectionRefusedError("vision model unavailable")
    letter = failed_letter(
        "enrichment", camera_id, minute, raw=encode(produced), source=DETECTIONS, error=error
    )
    return letter, produced


def batch_letter(camera_id: str, minute: int) -> tuple[DeadLettered, Message]:
    batch = closed(opened(camera_id, BASE + timedelta(minutes=minute)), [], "idle_timeout", 30)
    error = TimeoutError("nemotron did not answer")
    letter = failed_letter(
        "analysis", camera_id, minute, raw=encode(batch), source=BATCHES, error=error
    )
    return letter, batch


def unrequeueable_letter(kind: str, stage: Stage, camera_id: str, minute: int) -> DeadLettered:
    """A letter no requeue takes: its original was not JSON, or it has no Vigil topic."""
    if kind == "text":
        return failed_letter(
            stage, camera_id, minute, raw=b"not json", source=IMAGES, error=ValueError("not JSON")
        )
    if kind == "base64":
        return failed_letter(
            stage, camera_id, minute, raw=b"\xff\xd8", source=IMAGES, error=ValueError("binary")
        )
    if kind == "sourceless":
        outside = json.dumps({"camera_id": None, "file_path": "/etc/passwd"}).encode()
        error = PermissionError("path outside the camera root")
        return failed_letter(stage, None, minute, raw=outside, source=None, error=error)
    event = json.dumps({"event_type": "Elsewhere"}).encode()
    letter = failed_letter(
        stage, camera_id, minute, raw=event, source=IMAGES, error=ValueError("?")
    )
    return letter.model_copy(update={"source_topic": "someone.elses.topic"})


def ids_of(letters: list[DeadLettered]) -> list[str]:
    return [str(letter.event_id) for letter in letters]


def stored(engine: Engine, ids: list[str]) -> bool:
    with Session(engine) as session:
        found = session.scalars(
            select(DeadLetterRow.dead_letter_id).where(DeadLetterRow.dead_letter_id.in_(ids))
        ).all()
    return len(found) == len(ids)


def seed(producer, engine, *letters: DeadLettered) -> list[str]:
    """Publish the letters to their dead-letter topics and wait until they are projected."""
    for letter in letters:
        publish(producer, DEAD_LETTER_TOPICS[letter.stage].name, letter.camera_id, encode(letter))
    ids = ids_of(list(letters))
    wait_for(lambda: stored(engine, ids), timeout=30, what=f"{len(ids)} letters projected")
    return ids


def read_back(bootstrap: str, topic: str, partition: int, offset: int) -> tuple[str, bytes]:
    """Key and value of one message, read at its offset (no subscription, nothing committed)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, partition, offset)])

    def next_message():
        message = consumer.poll(0.5)
        return message if message is not None and not message.error() else None

    try:
        message = wait_for(next_message, timeout=15, what=f"{topic}[{partition}]@{offset}")
    finally:
        consumer.close()
    assert message.offset() == offset
    return message.key().decode(), message.value()


def collect(watcher: TopicWatcher, ids: set[str], count: int) -> list[tuple[str | None, Any]]:
    """The next `count` messages on the watched topic that are about these letters."""

    def about(event: Any) -> bool:
        if isinstance(event, DeadLettered):
            return str(event.event_id) in ids
        if isinstance(event, DeadLetterRequeued):
            return event.dead_letter_id in ids
        return bool(ids & set(event.dead_letter_ids))

    return [watcher.find(about) for _ in range(count)]
