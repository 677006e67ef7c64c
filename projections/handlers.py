"""Pure projection handlers `(event, session) -> None`, one table from event type to handlers.

Each handler is idempotent on its natural key, so a redelivered event changes
nothing; the runner's offset tracking makes replays exact on top of that.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from projections.tables import DeadLetterRow, DetectionRow, Image
from schemas.dead_letters import DeadLettered
from schemas.detections import DetectionsProduced
from schemas.images import ImageReceived

Handler = Callable[[Any, Session], None]


def image_received(event: ImageReceived, session: Session) -> None:
    values = {
        "camera_id": event.camera_id,
        "file_path": event.file_path,
        "sha256": event.sha256,
        "size_bytes": event.size_bytes,
        "file_modified_at": event.file_modified_at,
        "received_at": event.occurred_at,
    }
    statement = insert(Image).values(image_id=event.image_id, status="received", **values)
    # A detection applied first leaves a row without file facts; fill them in, keep its status.
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[Image.image_id],
            set_=values,
            where=Image.received_at.is_(None),
        )
    )


def detections_produced(event: DetectionsProduced, session: Session) -> None:
    detected = {
        "status": "detected",
        "width": event.image_width,
        "height": event.image_height,
        "detection_count": len(event.detections),
        "detected_at": event.occurred_at,
        "error": None,
    }
    claimed = session.execute(
        insert(Image)
        .values(
            image_id=event.image_id,
            camera_id=event.camera_id,
            file_path=event.file_path,
            **detected,
        )
        .on_conflict_do_update(
            index_elements=[Image.image_id], set_=detected, where=Image.detected_at.is_(None)
        )
        .returning(Image.id)
    ).first()
    if claimed is None:
        return  # already detected: a duplicate DetectionsProduced for this image
    if not event.detections:
        return
    session.execute(
        insert(DetectionRow).on_conflict_do_nothing(),
        [
            {
                "image_id": event.image_id,
                "position": position,
                "camera_id": event.camera_id,
                "file_path": event.file_path,
                "label": detection.label,
                "class_id": detection.class_id,
                "confidence": detection.confidence,
                "x1": detection.bbox.x1,
                "y1": detection.bbox.y1,
                "x2": detection.bbox.x2,
                "y2": detection.bbox.y2,
                "image_width": event.image_width,
                "image_height": event.image_height,
                "model_name": event.model_name,
                "model_version": event.model_version,
                "latency_ms": event.latency_ms,
                "detected_at": event.occurred_at,
            }
            for position, detection in enumerate(event.detections)
        ],
    )


def dead_lettered(event: DeadLettered, session: Session) -> None:
    session.execute(
        insert(DeadLetterRow)
        .values(
            dead_letter_id=str(event.event_id),
            stage=event.stage,
            camera_id=event.camera_id,
            source_topic=event.source_topic,
            source_partition=event.source_partition,
            source_offset=event.source_offset,
            original=event.original,
            original_encoding=event.original_encoding,
            error_type=event.error_type,
            error=event.error,
            attempt_count=event.attempt_count,
            first_failed_at=event.first_failed_at,
            last_failed_at=event.last_failed_at,
        )
        .on_conflict_do_nothing(index_elements=[DeadLetterRow.dead_letter_id])
    )
    image_id = event.original.get("image_id") if isinstance(event.original, dict) else None
    if event.stage == "detection" and isinstance(image_id, str):
        session.execute(
            update(Image)
            .where(Image.image_id == image_id, Image.detected_at.is_(None))
            .values(status="failed", error=f"{event.error_type}: {event.error}")
        )


HANDLERS: dict[type, list[Handler]] = {
    ImageReceived: [image_received],
    DetectionsProduced: [detections_produced],
    DeadLettered: [dead_lettered],
}
