"""Builders of real pipeline events, and `apply` to project them the way the runner does."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy.orm import Session

from projections.handlers import HANDLERS
from schemas.analysis import SecurityEventRecorded, level_for
from schemas.batches import BatchClosed, BatchDetection, BatchOpened, DetectionsBatched, Trigger
from schemas.codec import decode
from schemas.dead_letters import DeadLettered
from schemas.detections import DetectionsProduced
from schemas.enrichments import (
    DetectionsEnriched,
    DetectionType,
    Enrichment,
    EnrichmentReprocessed,
)
from schemas.envelope import Message
from schemas.topics import BATCHES, TopicSpec
from streams.dead_letters import dead_letter
from tests.integration.test_projection_handlers import detections_event, image_event

VISION_MODEL = ("qwen-vl", "2.5-3b")


def apply(engine, *events: Message) -> None:
    """Project the events in one transaction, through the handlers the projector uses."""
    with Session(engine) as session, session.begin():
        for event in events:
            for handler in HANDLERS[type(event)]:
                handler(event, session)


def detections(camera_id: str, labels: list[str], at: datetime) -> DetectionsProduced:
    """One new image's detections; confidences are 0.9, 0.8, 0.7 ... by position."""
    image = image_event(camera_id, digest=uuid.uuid4().hex * 2)
    return detections_event(image, labels).model_copy(update={"occurred_at": at})


def enrichment(
    position: int, detection_type: DetectionType, confidence: float, description: str = ""
) -> Enrichment:
    return Enrichment(
        position=position,
        detection_type=detection_type,
        description=description or f"a {detection_type} at position {position}",
        attributes={"position": position, "clothing": ["dark jacket"]},
        confidence=confidence,
    )


def enriched(
    produced: DetectionsProduced, enrichments: list[Enrichment], at: datetime, latency_ms: float
) -> DetectionsEnriched:
    return DetectionsEnriched(
        image_id=produced.image_id,
        camera_id=produced.camera_id,
        file_path=produced.file_path,
        image_width=produced.image_width,
        image_height=produced.image_height,
        detections=produced.detections,
        detected_at=produced.occurred_at,
        enrichments=tuple(enrichments),
        model_name=VISION_MODEL[0],
        model_version=VISION_MODEL[1],
        latency_ms=latency_ms,
        occurred_at=at,
    )


def reprocessed(
    produced: DetectionsProduced, again: Enrichment, at: datetime, latency_ms: float
) -> EnrichmentReprocessed:
    return EnrichmentReprocessed(
        request_id=uuid.uuid4().hex,
        image_id=produced.image_id,
        camera_id=produced.camera_id,
        enrichment=again,
        model_name=VISION_MODEL[0],
        model_version=VISION_MODEL[1],
        latency_ms=latency_ms,
        occurred_at=at,
    )


def opened(camera_id: str, at: datetime) -> BatchOpened:
    return BatchOpened(
        batch_id=f"batch_{uuid.uuid4().hex[:12]}", camera_id=camera_id, started_at=at
    )


def progressed(batch: BatchOpened, image_id: str, count: int, at: datetime) -> DetectionsBatched:
    return DetectionsBatched(
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        image_id=image_id,
        added=count,
        detection_count=count,
        last_activity_at=at,
    )


def members(*images: DetectionsProduced) -> list[BatchDetection]:
    """Every detection of these images, as a batch holds them."""
    return [
        BatchDetection(
            image_id=image.image_id,
            position=position,
            file_path=image.file_path,
            label=detection.label,
            confidence=detection.confidence,
            bbox=detection.bbox,
            detected_at=image.occurred_at,
        )
        for image in images
        for position, detection in enumerate(image.detections)
    ]


def closed(
    batch: BatchOpened, held: list[BatchDetection], trigger: Trigger, after_s: float
) -> BatchClosed:
    end = batch.started_at + timedelta(seconds=after_s)
    return BatchClosed(
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        started_at=batch.started_at,
        closed_at=end,
        last_activity_at=end,
        trigger=trigger,
        detections=tuple(held),
    )


def recorded(
    batch: BatchClosed, score: int, version: int = 1, at: datetime | None = None
) -> SecurityEventRecorded:
    return SecurityEventRecorded(
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        analysis_version=version,
        risk_score=score,
        risk_level=level_for(score),
        summary=f"summary v{version} of {batch.batch_id}",
        reasoning=f"reasoning v{version}",
        started_at=batch.started_at,
        ended_at=batch.closed_at,
        detection_count=len(batch.detections),
        model_name="nemotron",
        model_version="mini-4b",
        prompt_version=3,
        audit_id=str(uuid.uuid4()),
        occurred_at=at or batch.closed_at + timedelta(seconds=5 * version),
    )


def analysis_failed(batch: BatchClosed) -> DeadLettered:
    return dead_letter(
        stage="analysis",
        raw=batch.model_dump_json().encode(),
        error=TimeoutError("nemotron did not answer"),
        producer="test",
        source_topic=BATCHES.name,
        source_partition=0,
        source_offset=0,
        camera_id=batch.camera_id,
    )


class TopicWatcher:
    """Reads a topic from its current end: sees only what is produced after it was made."""

    def __init__(self, bootstrap: str, topic: TopicSpec) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"test-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
            }
        )
        partitions = self._consumer.list_topics(topic.name, timeout=10).topics[topic.name]
        ends = []
        for partition in partitions.partitions:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic.name, partition), timeout=10
            )
            ends.append(TopicPartition(topic.name, partition, high))
        self._consumer.assign(ends)

    def find(self, matches, timeout: float = 15.0) -> tuple[str | None, Any]:
        """The key and decoded value of the first message for which `matches(value)` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self._consumer.poll(0.2)
            if message is None or message.error():
                continue
            value = decode(self.topic, message.value())
            if matches(value):
                key = message.key()
                return (key.decode() if key else None), value
        raise AssertionError(f"nothing matching on {self.topic.name} within {timeout}s")

    def close(self) -> None:
        self._consumer.close()
