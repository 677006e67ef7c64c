"""Read queries for the images the API serves: the file an image's row records, and the
boxes to draw on it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.images import Box
from projections.tables import DetectionRow, Image


@dataclass(frozen=True)
class RecordedFile:
    file_path: str
    sha256: str | None


def recorded_file(session: Session, image_id: str) -> RecordedFile | None:
    """The file the read model records for `image_id`; None for an image it does not know or
    has no file for."""
    row = session.execute(
        select(Image.file_path, Image.sha256).where(Image.image_id == image_id)
    ).one_or_none()
    if row is None or row.file_path is None:
        return None
    return RecordedFile(row.file_path, row.sha256)


def image_boxes(
    session: Session, image_id: str, model_name: str, min_confidence: float | None
) -> list[Box]:
    """The image's detections by `model_name`, in their order: of the model's version that
    detected it last (a reprocess by a newer version of the same model would otherwise draw
    every object twice), at least `min_confidence`."""
    rows = session.scalars(
        select(DetectionRow)
        .where(DetectionRow.image_id == image_id, DetectionRow.model_name == model_name)
        .order_by(DetectionRow.position)
    ).all()
    if not rows:
        return []
    version = max(rows, key=lambda r: r.detected_at).model_version
    return [
        Box(r.label, r.confidence, r.x1, r.y1, r.x2, r.y2)
        for r in rows
        if r.model_version == version and (min_confidence is None or r.confidence >= min_confidence)
    ]
