"""Realistic read-side data, published straight to the topics with no model: what months of
cameras would leave there, for the replay and API benchmarks (`vigil bench seed`).

N detections over `cameras` cameras and `days` days, images arriving at random (exponential
gaps) with 1-6 detections each (COCO labels weighted as a driveway camera sees them,
confidences mostly high), every person and vehicle described by the vision model, the
camera's images grouped into batches of 5-200 detections, each batch analysed into one
security event with 1-3 analysis versions (each with the audit of its model call), and
for about one image in 150 a pending dead letter of the detection stage (three failed
attempts; the image was detected at a later try). Deterministic for a given `seed`.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from confluent_kafka import Producer

from schemas.analysis import ModelCallAudited, SecurityEventRecorded, level_for
from schemas.batches import BatchClosed, BatchDetection, BatchOpened, DetectionsBatched, images_in
from schemas.codec import encode
from schemas.detections import BoundingBox, Detection, DetectionsProduced
from schemas.enrichments import ENRICHED_TYPES, DetectionsEnriched, Enrichment, detection_type
from schemas.envelope import Message
from schemas.images import ImageReceived, image_id_for
from schemas.topics import (
    AI_AUDIT,
    BATCHES,
    DETECTIONS,
    DLQ_DETECTION,
    ENRICHMENTS,
    IMAGES,
    SECURITY_EVENTS,
    TopicSpec,
    producer_settings,
)
from streams.batching import batch_detections
from streams.dead_letters import dead_letter

# The detector the history says made its detections: the API lists a detector's detections,
# so it is to be served with DETECTOR_MODEL set to this.
DETECTOR = "yolo26"

# (label, COCO class id, weight): what a driveway camera sees, people and cars mostly.
LABELS = (
    ("person", 0, 45),
    ("car", 2, 28),
    ("truck", 7, 6),
    ("bicycle", 1, 5),
    ("dog", 16, 5),
    ("motorcycle", 3, 4),
    ("bus", 5, 4),
    ("cat", 15, 3),
)
DESCRIPTIONS = {
    "person": ("Person in a dark jacket", "Person carrying a bag", "Person in a red top"),
    "vehicle": ("White sedan", "Dark pickup truck", "Silver hatchback"),
}
TRIGGERS = ("idle_timeout", "time_window", "max_size", "manual_flush")
LETTER_EVERY = 150  # one image in this many is dead-lettered (it is detected too)
WIDTH, HEIGHT = 1920, 1080


@dataclass
class Seeded:
    """What was published: messages per topic and the detections among them."""

    detections: int = 0
    messages: Counter[str] | None = None
    seconds: float = 0.0


class _Camera:
    """One camera's timeline: its images and the batch they are gathered into."""

    def __init__(self, rng: random.Random, camera_id: str, start: datetime) -> None:
        self.rng = rng
        self.camera_id = camera_id
        self.at = start
        self.batch: BatchOpened | None = None
        self.held: list[BatchDetection] = []
        self.target = 0
        self.images = 0

    def image(self, gap_s: float) -> Iterator[tuple[TopicSpec, Message]]:
        rng = self.rng
        self.at += timedelta(seconds=rng.expovariate(1 / gap_s))
        self.images += 1
        digest = uuid.UUID(int=rng.getrandbits(128)).hex * 2
        path = f"/cameras/{self.camera_id}/{self.at:%Y%m%d}/{self.images:07d}.jpg"
        image = ImageReceived(
            image_id=image_id_for(self.camera_id, digest),
            camera_id=self.camera_id,
            file_path=path,
            sha256=digest,
            size_bytes=rng.randint(150_000, 900_000),
            file_modified_at=self.at,
            occurred_at=self.at,
        )
        yield IMAGES, image
        found = tuple(
            self._detection(i) for i in range(rng.choices(range(1, 7), (40, 25, 15, 10, 6, 4))[0])
        )
        detected_at = self.at + timedelta(milliseconds=rng.uniform(40, 250))
        produced = DetectionsProduced(
            image_id=image.image_id,
            camera_id=self.camera_id,
            file_path=path,
            image_width=WIDTH,
            image_height=HEIGHT,
            detections=found,
            model_name=DETECTOR,
            model_version="1",
            latency_ms=rng.uniform(20, 120),
            image_received_at=self.at,
            occurred_at=detected_at,
        )
        yield DETECTIONS, produced
        if rng.random() < 1 / LETTER_EVERY:
            yield DLQ_DETECTION, self._letter(image)
        described = tuple(
            Enrichment(
                position=position,
                detection_type=detection_type(d.label),
                description=rng.choice(DESCRIPTIONS[detection_type(d.label)]),
                attributes={"confidence_band": "high" if d.confidence > 0.8 else "medium"},
                confidence=round(rng.uniform(0.5, 0.95), 3),
            )
            for position, d in enumerate(found)
            if detection_type(d.label) in ENRICHED_TYPES
        )
        enriched_at = detected_at + timedelta(milliseconds=rng.uniform(30, 400))
        enriched = DetectionsEnriched.of(
            produced,
            enrichments=described,
            model_name="florence-2" if described else None,
            model_version="1" if described else None,
            latency_ms=rng.uniform(30, 400) if described else None,
            occurred_at=enriched_at,
        )
        yield ENRICHMENTS, enriched
        yield from self._gather(enriched)

    def _detection(self, index: int) -> Detection:
        rng = self.rng
        label, class_id, _ = rng.choices(LABELS, [w for *_, w in LABELS])[0]
        x1, y1 = rng.uniform(0, WIDTH - 200), rng.uniform(0, HEIGHT - 200)
        return Detection(
            label=label,
            class_id=class_id,
            confidence=round(min(0.99, max(0.25, rng.betavariate(6, 2))), 4),
            bbox=BoundingBox(
                x1=x1, y1=y1, x2=x1 + rng.uniform(30, 200), y2=y1 + rng.uniform(30, 200)
            ),
        )

    def _gather(self, enriched: DetectionsEnriched) -> Iterator[tuple[TopicSpec, Message]]:
        """Add the image's detections to the camera's open batch (opening one), and close
        it once it holds its target size."""
        at = enriched.occurred_at
        if self.batch is None:
            self.batch = BatchOpened(
                batch_id=f"batch_{uuid.UUID(int=self.rng.getrandbits(128)).hex[:16]}",
                camera_id=self.camera_id,
                started_at=at,
                occurred_at=at,
            )
            self.held, self.target = [], self.rng.randint(5, 200)
            yield BATCHES, self.batch
        self.held.extend(batch_detections(enriched))
        yield (
            BATCHES,
            DetectionsBatched(
                batch_id=self.batch.batch_id,
                camera_id=self.camera_id,
                image_id=enriched.image_id,
                added=len(enriched.detections),
                detection_count=len(self.held),
                last_activity_at=at,
                occurred_at=at,
            ),
        )
        if len(self.held) >= self.target:
            yield from self.close(at)

    def close(self, at: datetime) -> Iterator[tuple[TopicSpec, Message]]:
        """Close the open batch (if any) and publish its analysis, 1-3 versions."""
        if self.batch is None:
            return
        rng, batch = self.rng, self.batch
        closed_at = at + timedelta(seconds=rng.uniform(1, 30))
        done = BatchClosed(
            batch_id=batch.batch_id,
            camera_id=self.camera_id,
            started_at=batch.started_at,
            closed_at=closed_at,
            last_activity_at=at,
            trigger="max_size" if len(self.held) >= 200 else rng.choice(TRIGGERS[:2]),
            detections=tuple(self.held),
            image_count=images_in(self.held),
            occurred_at=closed_at,
        )
        yield BATCHES, done
        self.batch, self.held = None, []
        people = sum(d.label == "person" for d in done.detections)
        for version in range(1, rng.choices((1, 2, 3), (70, 22, 8))[0] + 1):
            analysed_at = closed_at + timedelta(seconds=rng.uniform(2, 20) * version)
            score = max(0, min(100, int(rng.gauss(15 + 6 * min(people, 8), 15))))
            audit_id = str(uuid.UUID(int=rng.getrandbits(128)))
            tokens_in, tokens_out = 80 + 25 * len(done.detections), rng.randint(40, 160)
            yield (
                AI_AUDIT,
                ModelCallAudited(
                    audit_id=audit_id,
                    model_name="nemotron",
                    model_version="nano-9b",
                    camera_id=self.camera_id,
                    batch_id=done.batch_id,
                    prompt_version=version,
                    input_summary=f"{len(done.detections)} detections, {people} people",
                    raw_output=f'{{"risk_score": {score}}}',
                    tokens_in=tokens_in,
                    tokens_out=tokens_out,
                    latency_ms=rng.uniform(400, 4000),
                    outcome="success",
                    occurred_at=analysed_at,
                ),
            )
            yield (
                SECURITY_EVENTS,
                SecurityEventRecorded(
                    batch_id=done.batch_id,
                    camera_id=self.camera_id,
                    analysis_version=version,
                    risk_score=score,
                    risk_level=level_for(score),
                    summary=f"{people} people and {len(done.detections) - people} other detections",
                    reasoning="Activity assessed against the time of day and the camera's zone.",
                    started_at=done.started_at,
                    ended_at=done.closed_at,
                    detection_count=len(done.detections),
                    model_name="nemotron",
                    model_version="nano-9b",
                    prompt_version=version,
                    audit_id=audit_id,
                    occurred_at=analysed_at,
                ),
            )

    def _letter(self, image: ImageReceived) -> Message:
        failed = self.at + timedelta(seconds=self.rng.uniform(1, 60))
        return dead_letter(
            stage="detection",
            raw=encode(image),
            error=TimeoutError("detector service unavailable"),
            producer="bench-seed",
            source_topic=IMAGES.name,
            source_partition=0,
            source_offset=self.images,
            camera_id=self.camera_id,
            attempt_count=3,
            first_failed_at=failed,
            last_failed_at=failed + timedelta(seconds=12),
        )


def history(
    detections: int,
    *,
    cameras: int = 50,
    days: int = 30,
    seed: int = 0,
    end: datetime | None = None,
) -> Iterator[tuple[TopicSpec, Message]]:
    """Every message of `detections` detections' history, cameras interleaved in time order
    of their images; every open batch is closed at the end."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=days)
    per_image = 2.1  # the mean of the detections-per-image weights
    gap_s = days * 86_400 / max(detections / per_image / cameras, 1)
    timeline = [
        _Camera(random.Random(rng.getrandbits(64)), f"cam-{n:02d}", start) for n in range(cameras)
    ]
    made = 0
    while made < detections:
        camera = min(timeline, key=lambda c: c.at)
        for topic, message in camera.image(gap_s):
            if isinstance(message, DetectionsProduced):
                made += len(message.detections)
            yield topic, message
    for camera in timeline:
        yield from camera.close(camera.at)


def publish(bootstrap: str, detections: int, **options) -> Seeded:
    """Publish `history(detections, **options)` to the topics (keyed by camera)."""
    return publish_facts(bootstrap, history(detections, **options))


def publish_facts(
    bootstrap: str,
    facts: Iterable[tuple[TopicSpec, Message]],
    written: Callable[[TopicSpec, Message], bytes] | None = None,
) -> Seeded:
    """Publish each fact to its topic (keyed as the topic is), as `written` gives it (by
    default its topic's encoding)."""
    producer = Producer(
        producer_settings(
            bootstrap, {"linger.ms": 50, "batch.size": 1_000_000, "compression.type": "lz4"}
        )
    )
    counted: Counter[str] = Counter()
    made = 0
    started = time.perf_counter()
    for topic, message in facts:
        value = written(topic, message) if written else topic.encode(message)
        key = getattr(message, topic.key)
        while True:
            try:
                producer.produce(topic.name, value=value, key=key.encode() if key else None)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        counted[topic.name] += 1
        if isinstance(message, DetectionsProduced):
            made += len(message.detections)
    if producer.flush(120) != 0:
        raise RuntimeError("Kafka did not acknowledge every seeded message in 120 s")
    return Seeded(
        detections=made, messages=counted, seconds=round(time.perf_counter() - started, 1)
    )


def live_image(camera_id: str, seed: int) -> DetectionsEnriched:
    """One image of `camera_id`'s, detected and enriched now: what the enrichment stage hands
    the batching stage (which opens the camera's batch on it, or adds to the open one)."""
    camera = _Camera(random.Random(seed), camera_id, datetime.now(UTC))
    return next(m for _, m in camera.image(0.001) if isinstance(m, DetectionsEnriched))
