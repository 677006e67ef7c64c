"""Read queries for detections."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from functools import partial

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from api.images import ImageLinks
from api.models import BoundingBoxOut, DetectionOut
from api.queries.counts import rollup_count
from projections.tables import DetectionRow


@dataclass(frozen=True)
class DetectionFilter:
    camera_id: str | None = None
    label: str | None = None
    min_confidence: float | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    model_name: str | None = None
    model_version: str | None = None


def _filtered(query: Select, f: DetectionFilter) -> Select:
    if f.camera_id is not None:
        query = query.where(DetectionRow.camera_id == f.camera_id)
    if f.label is not None:
        query = query.where(DetectionRow.label == f.label)
    if f.min_confidence is not None:
        query = query.where(DetectionRow.confidence >= f.min_confidence)
    if f.start_date is not None:
        query = query.where(DetectionRow.detected_at >= f.start_date)
    if f.end_date is not None:
        query = query.where(DetectionRow.detected_at <= f.end_date)
    if f.model_name is not None:
        query = query.where(DetectionRow.model_name == f.model_name)
    if f.model_version is not None:
        query = query.where(DetectionRow.model_version == f.model_version)
    return query


def to_out(row: DetectionRow, links: ImageLinks) -> DetectionOut:
    return DetectionOut(
        id=row.id,
        image_id=row.image_id,
        camera_id=row.camera_id,
        file_path=row.file_path,
        label=row.label,
        class_id=row.class_id,
        confidence=row.confidence,
        bbox=BoundingBoxOut(x1=row.x1, y1=row.y1, x2=row.x2, y2=row.y2),
        image_width=row.image_width,
        image_height=row.image_height,
        model_name=row.model_name,
        model_version=row.model_version,
        latency_ms=row.latency_ms,
        detected_at=row.detected_at,
        created_at=row.created_at,
        image_url=links.url(row.image_id, "original"),
        annotated_image_url=links.url(row.image_id, "annotated"),
    )


def count_detections(session: Session, f: DetectionFilter) -> int:
    """How many detections `f` selects; exact, from the daily rollup unless it filters on
    confidence."""

    def count_rows(*conditions: ColumnElement[bool], within: DetectionFilter = f) -> int:
        query = _filtered(select(func.count()).select_from(DetectionRow), within)
        return session.scalar(query.where(*conditions)) or 0

    if f.min_confidence is not None:
        return count_rows()
    undated = replace(f, start_date=None, end_date=None)
    keys = {
        column: value
        for column, value in (
            ("model_name", f.model_name),
            ("model_version", f.model_version),
            ("camera_id", f.camera_id),
            ("label", f.label),
        )
        if value is not None
    }
    return rollup_count(
        session, "detection", keys, DetectionRow.detected_at, f.start_date, f.end_date,
        partial(count_rows, within=undated),
    )  # fmt: skip


def list_detections(
    session: Session, f: DetectionFilter, limit: int, offset: int, links: ImageLinks
) -> tuple[list[DetectionOut], int]:
    total = count_detections(session, f)
    rows = session.scalars(
        _filtered(select(DetectionRow), f)
        .order_by(DetectionRow.detected_at.desc(), DetectionRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [to_out(row, links) for row in rows], total


def get_detection(session: Session, detection_id: int, links: ImageLinks) -> DetectionOut | None:
    row = session.get(DetectionRow, detection_id)
    return to_out(row, links) if row is not None else None
