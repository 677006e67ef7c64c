"""Builders of real pipeline events and read-model rows, shared by every test.

Every builder returns the event the pipeline itself would produce (validated by its
schema); `apply` projects events through the handlers the projector uses.
"""

from __future__ import annotations

import io
import json
import struct
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image
from sqlalchemy.orm import Session

from projections.handlers import HANDLERS
from projections.tables import DeadLetterRow
from schemas.analysis import (
    ModelCallAudited,
    PromptConfig,
    ReanalyseBatch,
    ReplayPrompt,
    SecurityEventRecorded,
    level_for,
)
from schemas.batches import (
    BatchClosed,
    BatchDetection,
    BatchOpened,
    DetectionsBatched,
    Trigger,
    images_in,
)
from schemas.codec import encode
from schemas.dead_letters import DeadLettered, Stage
from schemas.detections import BoundingBox, Detection, DetectionsProduced
from schemas.enrichments import (
    DetectionsEnriched,
    DetectionType,
    Enrichment,
    EnrichmentReprocessed,
)
from schemas.envelope import Message
from schemas.evaluation import (
    EvaluatedAnalysis,
    EvaluateEvent,
    EvaluationEvidence,
    EventEvaluated,
    PromptSuggestion,
    PromptTested,
    PromptTrial,
    QualityScores,
    TestPrompt,
    TrialOutcome,
)
from schemas.images import ImageReceived, image_id_for
from schemas.jobs import (
    JobAborted,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobLogged,
    JobProgressed,
    JobRequested,
    JobStarted,
)
from schemas.system import BreakerState, CircuitBreakerChanged, DeadLetterRequeued
from schemas.topics import (
    AI_AUDIT,
    BATCHES,
    DETECTIONS,
    DLQ_DETECTION,
    ENRICHMENTS,
    IMAGES,
    SECURITY_EVENTS,
    TopicSpec,
)
from streams.dead_letters import dead_letter

VISION_MODEL = ("qwen-vl", "2.5-3b")
# Older than any letter the pipeline writes while the suite runs.
LETTERS_BASE = datetime(2001, 1, 1, tzinfo=UTC)


def apply(engine, *events: Message) -> None:
    """Project the events in one transaction, through the handlers the projector uses."""
    with Session(engine) as session, session.begin():
        for event in events:
            for handler in HANDLERS[type(event)]:
                handler(event, session)


# --- images and detections ----------------------------------------------------------------


def image_event(camera_id: str = "front_door", digest: str = "b" * 64, **fields) -> ImageReceived:
    values = {
        "image_id": image_id_for(camera_id, digest),
        "camera_id": camera_id,
        "file_path": f"/cams/{camera_id}/a.jpg",
        "sha256": digest,
        "size_bytes": 1234,
        "file_modified_at": datetime(2026, 5, 1, 12, 0, tzinfo=UTC),
        **fields,
    }
    return ImageReceived(**values)


def detection(label: str, index: int = 0, **fields) -> Detection:
    """Confidence 0.9, 0.8, 0.7 ... by index; a 100x200 box."""
    values = {
        "label": label,
        "class_id": index,
        "confidence": 0.9 - index * 0.1,
        "bbox": BoundingBox(x1=10, y1=20, x2=110, y2=220),
        **fields,
    }
    return Detection(**values)


def detections_event(image: ImageReceived, labels: list[str]) -> DetectionsProduced:
    return DetectionsProduced(
        image_id=image.image_id,
        camera_id=image.camera_id,
        file_path=image.file_path,
        image_width=810,
        image_height=1080,
        detections=tuple(detection(label, index) for index, label in enumerate(labels)),
        model_name="centernet",
        model_version="1",
        latency_ms=25.0,
        image_received_at=image.occurred_at,
    )


def detections(camera_id: str, labels: list[str], at: datetime) -> DetectionsProduced:
    """One new image's detections; confidences are 0.9, 0.8, 0.7 ... by position."""
    image = image_event(camera_id, digest=uuid.uuid4().hex * 2)
    return detections_event(image, labels).model_copy(update={"occurred_at": at})


# --- enrichments --------------------------------------------------------------------------


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
    return DetectionsEnriched.of(
        produced,
        enrichments=tuple(enrichments),
        model_name=VISION_MODEL[0],
        model_version=VISION_MODEL[1],
        latency_ms=latency_ms,
        occurred_at=at,
    )


def enriched_image(
    image_id: str,
    labels: list[str],
    *,
    at: datetime,
    camera_id: str = "cam",
    enrich_first: bool = False,
) -> DetectionsEnriched:
    """One image's detections (confidence 0.8, 10x10 boxes) as the enrichment stage passes
    them on; with `enrich_first`, the first one carries a person's description."""
    found = tuple(
        Detection(
            label=label, class_id=0, confidence=0.8, bbox=BoundingBox(x1=0, y1=0, x2=10, y2=10)
        )
        for label in labels
    )
    described = Enrichment(
        position=0,
        detection_type="person",
        description="Person in red",
        attributes={"colors": ["red"]},
        confidence=0.7,
    )
    return DetectionsEnriched(
        image_id=image_id,
        camera_id=camera_id,
        file_path=f"/c/{image_id}.jpg",
        image_width=100,
        image_height=100,
        detections=found,
        detected_at=at,
        enrichments=(described,) if enrich_first else (),
        model_name="crop-attributes" if enrich_first else None,
        model_version="1" if enrich_first else None,
        latency_ms=35.0 if enrich_first else None,
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


# --- batches and security events ------------------------------------------------------------


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
            label=found.label,
            confidence=found.confidence,
            bbox=found.bbox,
            detected_at=image.occurred_at,
        )
        for image in images
        for position, found in enumerate(image.detections)
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
        image_count=images_in(held),
    )


def closed_batch(
    labels: list[str], *, at: datetime, camera_id: str = "back_yard", batch_id: str = "batch_1"
) -> BatchClosed:
    """A batch closed on idle after 60 s (last activity at 45 s): two detections per image,
    confidences 0.500, 0.501 ... one second apart, each person described."""
    held = tuple(
        BatchDetection(
            image_id=f"img{i // 2}",
            position=i % 2,
            file_path="/c/x.jpg",
            label=label,
            confidence=0.5 + i / 1000,
            bbox=BoundingBox(x1=0, y1=0, x2=1, y2=1),
            detected_at=at + timedelta(seconds=i),
            enrichment=Enrichment(
                position=i % 2,
                detection_type="person",
                description="Person in a dark upper garment",
                attributes={},
                confidence=0.6,
            )
            if label == "person"
            else None,
        )
        for i, label in enumerate(labels)
    )
    return BatchClosed(
        batch_id=batch_id,
        camera_id=camera_id,
        started_at=at,
        closed_at=at + timedelta(seconds=60),
        last_activity_at=at + timedelta(seconds=45),
        trigger="idle_timeout",
        detections=held,
        image_count=images_in(held),
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


def analysed_batch(
    camera_id: str, score: int = 72, at: datetime | None = None
) -> tuple[BatchOpened, BatchClosed, SecurityEventRecorded]:
    """An empty batch opened `at` (now), closed on max_size 30 s later, and its analysis."""
    batch = opened(camera_id, at or datetime.now(UTC))
    done = closed(batch, [], "max_size", 30)
    return batch, done, recorded(done, score)


# --- circuit breakers ----------------------------------------------------------------------


def breaker_changed(
    name: str,
    state: BreakerState,
    previous: BreakerState,
    worker_id: str = "worker-1",
    at: datetime | None = None,
) -> CircuitBreakerChanged:
    """A worker's report that its breaker `name` went from `previous` to `state` (now)."""
    return CircuitBreakerChanged(
        worker_id=worker_id,
        name=name,
        state=state,
        previous_state=previous,
        failure_count=5 if state == "open" else 0,
        total_calls=12,
        **({"occurred_at": at} if at is not None else {}),
    )


# --- dead letters --------------------------------------------------------------------------


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


def failed_letter(
    stage: Stage,
    camera_id: str | None,
    minute: int,
    *,
    raw: bytes,
    source: TopicSpec | None,
    error: BaseException,
) -> DeadLettered:
    """A letter that failed `minute` minutes after LETTERS_BASE, after 3 attempts."""
    failed = LETTERS_BASE + timedelta(minutes=minute)
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


def image_letter(camera_id: str, minute: int) -> tuple[DeadLettered, ImageReceived]:
    image = image_event(camera_id, digest=uuid.uuid4().hex * 2)
    error = TimeoutError("detector service unavailable")
    letter = failed_letter(
        "detection", camera_id, minute, raw=encode(image), source=IMAGES, error=error
    )
    return letter, image


def detections_letter(camera_id: str, minute: int) -> tuple[DeadLettered, DetectionsProduced]:
    produced = detections_event(image_event(camera_id, uuid.uuid4().hex * 2), ["person"])
    error = ConnectionRefusedError("vision model unavailable")
    letter = failed_letter(
        "enrichment", camera_id, minute, raw=encode(produced), source=DETECTIONS, error=error
    )
    return letter, produced


def batch_letter(camera_id: str, minute: int) -> tuple[DeadLettered, BatchClosed]:
    batch = closed(
        opened(camera_id, LETTERS_BASE + timedelta(minutes=minute)), [], "idle_timeout", 30
    )
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


def letter_row(**values) -> DeadLetterRow:
    """A dead-letter read-model row (not stored), requeueable unless told otherwise."""
    defaults = {
        "source_topic": IMAGES.name,
        "original_encoding": "json",
        "error_type": "TimeoutError",
    }
    return DeadLetterRow(**{**defaults, **values})


# --- files ---------------------------------------------------------------------------------


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims `width` x `height` but which carries almost no pixel data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


# --- jobs ---------------------------------------------------------------------------------


def job_id() -> str:
    return f"job_{uuid.uuid4().hex[:16]}"


def job_requested(
    job_type: str = "export", at: datetime | None = None, **fields: Any
) -> JobRequested:
    values: dict[str, Any] = {
        "job_id": job_id(),
        "job_type": job_type,
        "params": {"format": "csv"},
        "requested_by": "api",
        "queue": job_type,
        "max_attempts": 3,
        **fields,
    }
    if at is not None:
        values["occurred_at"] = at
    return JobRequested(**values)


def job_run(
    requested: JobRequested,
    outcome: str = "completed",
    *,
    steps: int = 2,
    attempts: int = 1,
    worker_id: str = "runner-1",
    seconds: float = 10.0,
) -> list[JobEvent]:
    """The events a runner writes for `requested`, spread over `seconds` after the request.

    Every attempt but the last fails and is retried; the last ends in `outcome`
    (completed, failed, aborted) or, for "running", is still going.
    """
    start = requested.occurred_at
    events: list[JobEvent] = []
    step_count = attempts * (steps + 2)
    tick = timedelta(seconds=seconds / step_count)
    at = start
    base = {"job_id": requested.job_id}
    for attempt in range(1, attempts + 1):
        at += tick
        events.append(JobStarted(**base, worker_id=worker_id, attempt=attempt, occurred_at=at))
        for step in range(steps):
            at += tick
            processed = (step + 1) * 10
            events.append(
                JobProgressed(
                    **base,
                    attempt=attempt,
                    progress=int(100 * (step + 1) / (steps + 1)),
                    processed=processed,
                    total=(steps + 1) * 10,
                    message=f"Processed {processed} rows",
                    occurred_at=at,
                )
            )
            events.append(
                JobLogged(
                    **base,
                    attempt=attempt,
                    level="INFO",
                    message=f"Processed {processed} rows",
                    occurred_at=at,
                )
            )
        at += tick
        last = attempt == attempts
        if not last:
            events.append(
                JobFailed(
                    **base,
                    attempt=attempt,
                    error="connection reset",
                    error_type="OperationalError",
                    will_retry=True,
                    occurred_at=at,
                )
            )
        elif outcome == "completed":
            events.append(
                JobCompleted(**base, attempt=attempt, result={"rows": 30}, occurred_at=at)
            )
        elif outcome == "failed":
            events.append(
                JobFailed(
                    **base,
                    attempt=attempt,
                    error="disk full",
                    error_type="OSError",
                    will_retry=False,
                    occurred_at=at,
                )
            )
        elif outcome == "aborted":
            events.append(
                JobAborted(**base, attempt=attempt, reason="Aborted on request", occurred_at=at)
            )
    return events


# --- a camera's whole history, as the topics hold it ------------------------------------------


def camera_history(camera_id: str, at: datetime, file_path: str) -> list[tuple[TopicSpec, Message]]:
    """Everything the pipeline writes about one image that arrived `at`, in topic order: the
    image, its detections (person, car) and the person's enrichment, the batch that held them
    and its analysed event with the audit of the call, two dead letters of the image (one
    requeued a minute later, one still pending), the event's evaluation and a prompt test on
    it."""
    image = image_event(camera_id, digest=uuid.uuid4().hex * 2, file_path=file_path)
    image = image.model_copy(update={"occurred_at": at})
    produced = detections_event(image, ["person", "car"]).model_copy(
        update={"occurred_at": at + timedelta(seconds=1)}
    )
    described = enriched(
        produced, [enrichment(0, "person", 0.8)], at + timedelta(seconds=2), latency_ms=30.0
    )
    batch = opened(camera_id, at + timedelta(seconds=1))
    done = closed(batch, members(produced), "idle_timeout", 30)
    event = recorded(done, 40)
    audit = ModelCallAudited(
        audit_id=event.audit_id,
        model_name=event.model_name,
        model_version=event.model_version,
        camera_id=camera_id,
        batch_id=done.batch_id,
        prompt_version=event.prompt_version,
        input_summary="2 detections",
        raw_output='{"risk_score": 40}',
        outcome="success",
        occurred_at=event.occurred_at,
    )
    requeued, pending = (
        dead_letter(
            stage="detection",
            raw=encode(image),
            error=TimeoutError("detector service unavailable"),
            producer="test",
            source_topic=IMAGES.name,
            source_partition=0,
            source_offset=0,
            camera_id=camera_id,
            first_failed_at=at,
            last_failed_at=at,
        )
        for _ in range(2)
    )
    requeue = DeadLetterRequeued(
        dead_letter_id=str(requeued.event_id),
        stage="detection",
        source_topic=IMAGES.name,
        requeued_partition=0,
        requeued_offset=0,
        occurred_at=at + timedelta(minutes=1),
    )
    return [
        (IMAGES, image),
        (DETECTIONS, produced),
        (ENRICHMENTS, described),
        (BATCHES, batch),
        (BATCHES, progressed(batch, image.image_id, 2, at + timedelta(seconds=1))),
        (BATCHES, done),
        (SECURITY_EVENTS, event),
        (AI_AUDIT, audit),
        (DLQ_DETECTION, requeued),
        (DLQ_DETECTION, pending),
        (DLQ_DETECTION, requeue),
        (
            AI_AUDIT,
            evaluated(
                event,
                event.occurred_at + timedelta(seconds=10),
                quality=(1.0, 0.5, 0.75),
                contributions={"centernet": 0.2, "crop-attributes": 0.1, "nemotron": 0.7},
            ),
        ),
        (AI_AUDIT, prompt_tested(event, event.occurred_at + timedelta(seconds=20))),
    ]


def audited(
    camera_id: str, model_name: str, outcome: str, at: datetime, **fields: Any
) -> ModelCallAudited:
    """One audited model call of a camera's batch at `at`."""
    values: dict[str, Any] = {
        "audit_id": str(uuid.uuid4()),
        "model_name": model_name,
        "model_version": "1",
        "camera_id": camera_id,
        "batch_id": f"batch_{uuid.uuid4().hex[:8]}",
        "prompt_version": 1,
        "input_summary": "1 detection",
        "raw_output": '{"risk_score": 10}' if outcome != "error" else None,
        "tokens_in": 120,
        "tokens_out": 30,
        "latency_ms": 850.0,
        "outcome": outcome,
        "error": None if outcome == "success" else f"{outcome} on purpose",
        "occurred_at": at,
        **fields,
    }
    return ModelCallAudited(**values)


# --- evaluations -----------------------------------------------------------------------------


def evaluated(
    event: SecurityEventRecorded,
    at: datetime,
    *,
    quality: tuple[float | None, float | None, float | None],
    contributions: dict[str, float] | None,
    suggestions: list[tuple[str, str]] | None = None,
    status: str = "evaluated",
    job_id: str | None = None,
) -> EventEvaluated:
    """An evaluation of `event`'s analysis made `at`: (consistency, relevance, coherence)
    and their mean, the contributions and the (category, text) suggestions as given."""
    measured = [q for q in quality if q is not None]
    consistency, relevance, coherence = quality
    return EventEvaluated(
        evaluation_id=str(uuid.uuid4()),
        job_id=job_id,
        batch_id=event.batch_id,
        camera_id=event.camera_id,
        analysis_version=event.analysis_version,
        prompt_version=event.prompt_version,
        prompt_model="nemotron",
        judge_model="nemotron",
        status=status,
        failures={} if status == "evaluated" else {"coherence": "answer is not valid JSON"},
        quality=QualityScores(
            consistency=consistency,
            relevance=relevance,
            coherence=coherence,
            overall=round(sum(measured) / len(measured), 4) if measured else None,
        ),
        model_contributions=contributions,
        prompt_suggestions=(
            tuple(PromptSuggestion(category=c, suggestion=s) for c, s in suggestions)
            if suggestions is not None
            else None
        ),
        evidence=EvaluationEvidence(),
        duration_ms=1000.0,
        occurred_at=at,
    )


def prompt_tested(event: SecurityEventRecorded, at: datetime) -> PromptTested:
    """A prompt test of `event`'s input made `at`: one custom configuration, answered 55."""
    return PromptTested(
        test_id=str(uuid.uuid4()),
        event_id=1,
        batch_id=event.batch_id,
        camera_id=event.camera_id,
        model="nemotron",
        outcomes=(
            TrialOutcome(
                name="custom",
                risk_score=55,
                risk_level="medium",
                summary="Tested.",
                reasoning="Tested.",
                latency_ms=900.0,
                tokens_in=300,
                tokens_out=40,
            ),
        ),
        occurred_at=at,
    )


def image_file_bytes(
    fmt: str = "JPEG", size: tuple[int, int] = (64, 48), seed: int = 0, **save
) -> bytes:
    """A real, small image file in `fmt` (PIL's format name) with a pattern drawn from `seed`,
    so that different seeds give different bytes."""
    image = Image.new("RGB", size, (seed * 37 % 256, 90, 200))
    for x in range(size[0]):
        image.putpixel((x, (x * (seed + 1)) % size[1]), (255, x * 4 % 256, 0))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save)
    return buffer.getvalue()


def v1_document(message: Message) -> dict[str, Any]:
    """`message` as Vigil wrote it before its type's v2 (`schemas/upcasters.py`): a
    BatchClosed without its image_count, or a command carrying its batch so."""
    document = json.loads(message.model_dump_json())
    if "batch" in document:
        document["batch"] = _batch_closed_v1(document["batch"])
        return {**document, "schema_version": 1}
    return _batch_closed_v1(document)


def _batch_closed_v1(document: dict[str, Any]) -> dict[str, Any]:
    if document["event_type"] != "BatchClosed":
        raise ValueError(f"{document['event_type']} has no v1 older than its current version")
    return {k: v for k, v in document.items() if k != "image_count"} | {"schema_version": 1}


def carrying(model: type[Message], batch: BatchClosed) -> Message:
    """A command of `model` (ReanalyseBatch, ReplayPrompt, EvaluateEvent or TestPrompt), as a
    job or the API asks for it, carrying `batch`."""
    config = PromptConfig(system_prompt="Rate the scene.", temperature=0.2, max_tokens=256)
    about = {"batch_id": batch.batch_id, "camera_id": batch.camera_id, "batch": batch}
    if model is ReanalyseBatch:
        return ReanalyseBatch(job_id="job-1", **about)
    if model is ReplayPrompt:
        return ReplayPrompt(job_id="job-1", model="nemotron", candidate=config, **about)
    if model is EvaluateEvent:
        analysis = EvaluatedAnalysis(
            analysis_version=1,
            risk_score=20,
            risk_level="low",
            summary="A car passes.",
            reasoning="Daylight, no one lingers.",
            prompt_version=1,
        )
        return EvaluateEvent(evaluation_id="ev-1", job_id="job-1", analysis=analysis, **about)
    if model is TestPrompt:
        trials = (PromptTrial(name="current", config=config, version=1),)
        return TestPrompt(test_id="t-1", event_id=1, model="nemotron", trials=trials, **about)
    raise TypeError(f"{model.__name__} carries no batch")
