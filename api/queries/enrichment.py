"""Read queries for enrichments: the vision model's descriptions of detections."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial

from sqlalchemy import ColumnElement, Select, exists, func, select
from sqlalchemy.orm import Session

from api.models import EnrichmentOut, EnrichmentStats
from api.queries.counts import rollup_count
from projections.tables import (
    BatchMember,
    DetectionRow,
    EnrichmentRow,
    ReadCountRow,
    SecurityEventRow,
    own_detection,
)
from schemas.enrichments import DetectionType

# An enrichment names its detection by (image_id, position); these look up the ids the
# API shows for it: the detection's row, and the event of the batch holding it.
_DETECTION_ID = (
    select(DetectionRow.id)
    .where(own_detection(EnrichmentRow.image_id, EnrichmentRow.position))
    .correlate(EnrichmentRow)
    .scalar_subquery()
)
_EVENT_ID = (
    select(SecurityEventRow.id)
    .join(BatchMember, BatchMember.batch_id == SecurityEventRow.batch_id)
    .where(
        BatchMember.image_id == EnrichmentRow.image_id,
        BatchMember.position == EnrichmentRow.position,
    )
    .correlate(EnrichmentRow)
    .order_by(SecurityEventRow.id.desc())
    .limit(1)
    .scalar_subquery()
)


@dataclass(frozen=True)
class EnrichmentFilter:
    detection_type: DetectionType | None = None
    camera_id: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    min_confidence: float | None = None
    event_id: int | None = None
    image_id: str | None = None
    position: int | None = None


def _of_event(event_id: int) -> ColumnElement[bool]:
    return exists(
        select(1)
        .select_from(BatchMember)
        .join(SecurityEventRow, SecurityEventRow.batch_id == BatchMember.batch_id)
        .where(
            SecurityEventRow.id == event_id,
            BatchMember.image_id == EnrichmentRow.image_id,
            BatchMember.position == EnrichmentRow.position,
        )
        .correlate(EnrichmentRow)
    )


def _filtered(query: Select, f: EnrichmentFilter) -> Select:
    conditions: list[ColumnElement[bool]] = []
    if f.detection_type is not None:
        conditions.append(EnrichmentRow.detection_type == f.detection_type)
    if f.camera_id is not None:
        conditions.append(EnrichmentRow.camera_id == f.camera_id)
    if f.start_date is not None:
        conditions.append(EnrichmentRow.created_at >= f.start_date)
    if f.end_date is not None:
        conditions.append(EnrichmentRow.created_at <= f.end_date)
    if f.min_confidence is not None:
        conditions.append(EnrichmentRow.confidence >= f.min_confidence)
    if f.event_id is not None:
        conditions.append(_of_event(f.event_id))
    if f.image_id is not None:
        conditions.append(EnrichmentRow.image_id == f.image_id)
    if f.position is not None:
        conditions.append(EnrichmentRow.position == f.position)
    return query.where(*conditions) if conditions else query


def _out(row: EnrichmentRow, detection_id: int | None, event_id: int | None) -> EnrichmentOut:
    return EnrichmentOut(
        id=row.id,
        detection_id=detection_id,
        event_id=event_id,
        model_name=row.model_name,
        model_version=row.model_version,
        description=row.description,
        attributes=row.attributes,
        confidence=row.confidence,
        latency_ms=row.latency_ms,
        created_at=row.created_at,
    )


def _select() -> Select:
    return select(EnrichmentRow, _DETECTION_ID, _EVENT_ID)


def count_enrichments(session: Session, f: EnrichmentFilter) -> int:
    """How many enrichments `f` selects; exact, from the daily rollup unless it filters on
    what the rollup does not key on (confidence, an event, a detection)."""

    def count_rows(*conditions: ColumnElement[bool], within: EnrichmentFilter = f) -> int:
        query = _filtered(select(func.count()).select_from(EnrichmentRow), within)
        return session.scalar(query.where(*conditions)) or 0

    unkeyed = (f.min_confidence, f.event_id, f.image_id, f.position)
    if any(value is not None for value in unkeyed):
        return count_rows()
    keys = {
        column: value
        for column, value in (("camera_id", f.camera_id), ("label", f.detection_type))
        if value is not None
    }
    undated = replace(f, start_date=None, end_date=None)
    return rollup_count(
        session, "enrichment", keys, EnrichmentRow.created_at, f.start_date, f.end_date,
        partial(count_rows, within=undated),
    )  # fmt: skip


def list_enrichments(
    session: Session, f: EnrichmentFilter, limit: int | None = None, offset: int = 0
) -> tuple[list[EnrichmentOut], int]:
    """Newest first, with the total that matches `f`; every match when `limit` is None."""
    total = count_enrichments(session, f)
    rows = session.execute(
        _filtered(_select(), f)
        .order_by(EnrichmentRow.created_at.desc(), EnrichmentRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_out(*row) for row in rows], total


def get_enrichment(session: Session, enrichment_id: int) -> EnrichmentOut | None:
    found = session.execute(_select().where(EnrichmentRow.id == enrichment_id)).first()
    return _out(*found) if found is not None else None


def find_detection(session: Session, detection_id: int) -> DetectionRow | None:
    """The detection row itself: what a reprocess command is built from."""
    return session.get(DetectionRow, detection_id)


def for_detection(session: Session, detection_id: int) -> list[EnrichmentOut] | None:
    """Every enrichment of one detection; None when the detection does not exist."""
    detection = find_detection(session, detection_id)
    if detection is None:
        return None
    f = EnrichmentFilter(image_id=detection.image_id, position=detection.position)
    return list_enrichments(session, f)[0]


def for_event(session: Session, event_id: int) -> list[EnrichmentOut] | None:
    """Every enrichment of the detections in the event's batch; None when there is no event."""
    if session.get(SecurityEventRow, event_id) is None:
        return None
    return list_enrichments(session, EnrichmentFilter(event_id=event_id))[0]


def _latency_percentile(
    session: Session, fraction: float, count: int, camera_id: str | None
) -> float | None:
    """percentile_cont(`fraction`) of the latencies of `count` enrichments (of the camera),
    from the two values it interpolates between, read from the top of the latency index
    (a scan of the top 5% instead of a sort of every row)."""
    if count == 0:
        return None
    position = fraction * (count - 1)
    low, high = math.floor(position), math.ceil(position)
    query = select(EnrichmentRow.latency_ms).order_by(EnrichmentRow.latency_ms.desc())
    if camera_id is not None:
        query = query.where(EnrichmentRow.camera_id == camera_id)
    values = session.scalars(query.offset(count - 1 - high).limit(2)).all()
    at_high, at_low = values[0], values[high - low]
    return at_low + (position - low) * (at_high - at_low)


def enrichment_stats(
    session: Session, now: datetime, camera_id: str | None = None
) -> EnrichmentStats:
    """Counts and averages from the daily rollup (`read_counts`); the p95 latency from the
    table, read from the top of its latency index."""
    rollup = [ReadCountRow.kind == "enrichment"]
    if camera_id is not None:
        rollup.append(ReadCountRow.camera_id == camera_id)
    by_type = session.execute(
        select(
            ReadCountRow.label,
            func.sum(ReadCountRow.n),
            func.sum(ReadCountRow.n).filter(ReadCountRow.day >= now.astimezone(UTC).date()),
            func.sum(ReadCountRow.confidence_sum),
            func.sum(ReadCountRow.latency_n),
            func.sum(ReadCountRow.latency_sum),
        )
        .where(*rollup)
        .group_by(ReadCountRow.label)
        .order_by(ReadCountRow.label)
    ).all()
    total = sum(int(row[1]) for row in by_type)
    today = sum(int(row[2] or 0) for row in by_type)
    confidence_sum = sum(row[3] for row in by_type)
    latency_n = sum(int(row[4]) for row in by_type)
    latency_sum = sum(row[5] for row in by_type)
    avg_confidence = confidence_sum / total if total else None
    avg_latency = latency_sum / latency_n if latency_n else None
    p95_latency = _latency_percentile(session, 0.95, latency_n, camera_id)
    by_type = [(label, int(n)) for label, n, *_ in by_type if n]
    return EnrichmentStats(
        total_enrichments=total,
        enrichments_today=today,
        by_detection_type=dict(by_type),
        avg_confidence=avg_confidence,
        avg_latency_ms=avg_latency,
        p95_latency_ms=p95_latency,
    )
