"""The batch lifecycle per camera, as plain functions over plain state.

A camera's entry in the aggregator's table is a `CameraBatches`: the open batch
(if any) and the images recently batched, so an image redelivered after a crash
never lands in a second batch. The handlers in `streams.batch_agent` call these
functions and turn what they return into the events to publish.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from schemas.batches import BatchClosed, BatchDetection, Trigger, images_in
from schemas.enrichments import DetectionsEnriched

RECENT_IMAGES = 2000


@dataclass(frozen=True)
class BatchLimits:
    window_s: float = 90.0
    idle_s: float = 30.0
    max_size: int = 500


class OpenBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str
    camera_id: str
    started_at: datetime
    last_activity_at: datetime
    detections: list[BatchDetection] = []


class CameraBatches(BaseModel):
    """The table value for one camera (JSON in the table and its changelog)."""

    model_config = ConfigDict(extra="forbid")

    open: OpenBatch | None = None
    recent_images: list[str] = []


def new_batch_id() -> str:
    return f"batch_{uuid.uuid4().hex[:16]}"


def batch_detections(event: DetectionsEnriched) -> list[BatchDetection]:
    by_position = {e.position: e for e in event.enrichments}
    return [
        BatchDetection(
            image_id=event.image_id,
            position=position,
            file_path=event.file_path,
            label=detection.label,
            confidence=detection.confidence,
            bbox=detection.bbox,
            detected_at=event.detected_at,
            enrichment=by_position.get(position),
            enrichment_model=event.model_name if position in by_position else None,
        )
        for position, detection in enumerate(event.detections)
    ]


@dataclass
class Added:
    state: CameraBatches
    opened: OpenBatch | None = None
    added: int = 0
    closed: BatchClosed | None = None
    duplicate: bool = False


def add_detections(
    state: CameraBatches, event: DetectionsEnriched, now: datetime, limits: BatchLimits
) -> Added:
    """Put an image's detections in the camera's open batch, opening one if needed.

    An image without detections opens nothing; an image already batched is ignored;
    reaching `max_size` closes the batch at once.
    """
    if event.image_id in state.recent_images:
        return Added(state, duplicate=True)
    detections = batch_detections(event)
    if not detections:
        return Added(state)
    recent = [*state.recent_images, event.image_id][-RECENT_IMAGES:]
    opened = None
    batch = state.open
    if batch is None:
        batch = opened = OpenBatch(
            batch_id=new_batch_id(), camera_id=event.camera_id, started_at=now, last_activity_at=now
        )
    batch = batch.model_copy(
        update={"detections": [*batch.detections, *detections], "last_activity_at": now}
    )
    result = Added(CameraBatches(open=batch, recent_images=recent), opened, len(detections))
    if len(batch.detections) >= limits.max_size:
        result.state, result.closed = close_batch(result.state, "max_size", now)
    return result


def due_trigger(batch: OpenBatch, now: datetime, limits: BatchLimits) -> Trigger | None:
    """Which timer, if any, has expired for this batch (the window wins a tie)."""
    if (now - batch.started_at).total_seconds() >= limits.window_s:
        return "time_window"
    if (now - batch.last_activity_at).total_seconds() >= limits.idle_s:
        return "idle_timeout"
    return None


def close_batch(
    state: CameraBatches, trigger: Trigger, now: datetime
) -> tuple[CameraBatches, BatchClosed]:
    batch = state.open
    if batch is None:
        raise ValueError("no open batch to close")
    closed = BatchClosed(
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        started_at=batch.started_at,
        closed_at=now,
        last_activity_at=batch.last_activity_at,
        trigger=trigger,
        detections=tuple(batch.detections),
        image_count=images_in(batch.detections),
    )
    return CameraBatches(open=None, recent_images=state.recent_images), closed


def flush(
    state: CameraBatches, batch_id: str, trigger: Trigger, now: datetime, limits: BatchLimits
) -> tuple[CameraBatches, BatchClosed | None]:
    """Apply a flush command: only to the batch it names, and a timer's only if still due."""
    batch = state.open
    if batch is None or batch.batch_id != batch_id:
        return state, None
    if trigger != "manual_flush" and due_trigger(batch, now, limits) is None:
        return state, None  # a detection arrived after the timer fired
    return close_batch(state, trigger, now)


@dataclass
class PendingFlushes:
    """Timer-sent flush commands still in flight, so a timer does not send them every tick.

    A flush is sent again after `resend_after_s` while its batch stays open; a batch that is
    no longer open is forgotten.
    """

    resend_after_s: float = 10.0
    sent: dict[str, datetime] = field(default_factory=dict)

    def due(
        self, batches: Iterable[OpenBatch], now: datetime, limits: BatchLimits
    ) -> list[tuple[OpenBatch, Trigger]]:
        out = []
        still_open: dict[str, datetime] = {}
        for batch in batches:
            last = self.sent.get(batch.batch_id)
            if last is not None:
                still_open[batch.batch_id] = last
            trigger = due_trigger(batch, now, limits)
            if trigger and (last is None or (now - last).total_seconds() >= self.resend_after_s):
                still_open[batch.batch_id] = now
                out.append((batch, trigger))
        self.sent = still_open
        return out
