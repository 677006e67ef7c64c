"""Read queries for batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import get_args

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.models import (
    ActiveBatchOut,
    BatchDetail,
    BatchDetectionOut,
    BatchOut,
    BatchStats,
    BatchStatus,
    BatchTrigger,
)
from projections.tables import (
    BatchMember,
    BatchRow,
    DetectionRow,
    SecurityEventRow,
    own_detection,
)

# The event recorded for the batch. Looked up rather than read from BatchRow.event_id,
# which stays empty when the event was projected before the batch's own events.
_EVENT_ID = (
    select(SecurityEventRow.id)
    .where(SecurityEventRow.batch_id == BatchRow.batch_id)
    .correlate(BatchRow)
    .scalar_subquery()
)
_CLOSED = ("completed", "failed")


@dataclass(frozen=True)
class BatchFilter:
    camera_id: str | None = None
    status: BatchStatus | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


@dataclass(frozen=True)
class BatchState:
    """What a command needs to know about a batch."""

    batch_id: str
    camera_id: str
    status: str
    detection_count: int


def _filtered(query: Select, f: BatchFilter) -> Select:
    if f.camera_id is not None:
        query = query.where(BatchRow.camera_id == f.camera_id)
    if f.status is not None:
        query = query.where(BatchRow.status == f.status)
    if f.start_date is not None:
        query = query.where(BatchRow.started_at >= f.start_date)
    if f.end_date is not None:
        query = query.where(BatchRow.started_at <= f.end_date)
    return query


def _out(row: BatchRow, event_id: int | None) -> BatchOut:
    return BatchOut(
        batch_id=row.batch_id,
        camera_id=row.camera_id,
        status=row.status,
        detection_count=row.detection_count,
        started_at=row.started_at,
        completed_at=row.completed_at,
        event_id=event_id,
        trigger=row.trigger,
    )


def list_batches(
    session: Session, f: BatchFilter, limit: int, offset: int
) -> tuple[list[BatchOut], int]:
    total = session.scalar(_filtered(select(func.count()).select_from(BatchRow), f)) or 0
    rows = session.execute(
        _filtered(select(BatchRow, _EVENT_ID), f)
        .order_by(BatchRow.started_at.desc(), BatchRow.batch_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_out(row, event_id) for row, event_id in rows], total


def batch_members(session: Session, batch_id: str) -> list[BatchDetectionOut]:
    rows = session.execute(
        select(BatchMember.image_id, BatchMember.position, DetectionRow.id)
        .outerjoin(DetectionRow, own_detection(BatchMember.image_id, BatchMember.position))
        .where(BatchMember.batch_id == batch_id)
        .order_by(
            DetectionRow.detected_at.asc().nulls_last(),
            BatchMember.image_id,
            BatchMember.position,
        )
    )
    return [
        BatchDetectionOut(image_id=image_id, position=position, detection_id=detection_id)
        for image_id, position, detection_id in rows
    ]


def _find(session: Session, batch_id: str) -> tuple[BatchRow, int | None] | None:
    found = session.execute(select(BatchRow, _EVENT_ID).where(BatchRow.batch_id == batch_id))
    row = found.first()
    return (row[0], row[1]) if row is not None else None


def get_batch_out(session: Session, batch_id: str) -> BatchOut | None:
    found = _find(session, batch_id)
    return _out(*found) if found is not None else None


def get_batch(session: Session, batch_id: str) -> BatchDetail | None:
    found = _find(session, batch_id)
    if found is None:
        return None
    row, event_id = found
    return BatchDetail(
        **_out(row, event_id).model_dump(),
        last_activity_at=row.last_activity_at,
        error=row.error,
        detections=batch_members(session, batch_id),
    )


def batch_state(session: Session, batch_id: str) -> BatchState | None:
    found = session.execute(
        select(BatchRow.camera_id, BatchRow.status, BatchRow.detection_count).where(
            BatchRow.batch_id == batch_id
        )
    ).first()
    if found is None:
        return None
    camera_id, status, detection_count = found
    return BatchState(batch_id, camera_id, status, detection_count)


def batch_stats(session: Session, camera_id: str | None = None) -> BatchStats:
    def scoped(query: Select) -> Select:
        return query if camera_id is None else query.where(BatchRow.camera_id == camera_id)

    by_status = dict.fromkeys(get_args(BatchStatus), 0)
    by_status.update(
        session.execute(
            scoped(select(BatchRow.status, func.count()).group_by(BatchRow.status))
        ).all()
    )
    by_trigger = dict.fromkeys(get_args(BatchTrigger), 0)
    by_trigger.update(
        session.execute(
            scoped(
                select(BatchRow.trigger, func.count())
                .where(BatchRow.trigger.is_not(None))
                .group_by(BatchRow.trigger)
            )
        ).all()
    )
    avg_detections = session.scalar(
        scoped(select(func.avg(BatchRow.detection_count)).where(BatchRow.status.in_(_CLOSED)))
    )
    duration = func.extract("epoch", BatchRow.completed_at - BatchRow.started_at)
    avg_duration = session.scalar(
        scoped(
            select(func.avg(duration)).where(
                BatchRow.status == "completed", BatchRow.completed_at.is_not(None)
            )
        )
    )
    return BatchStats(
        total_batches=sum(by_status.values()),
        by_status=by_status,
        by_trigger=by_trigger,
        active_count=by_status["aggregating"],
        avg_detections_per_batch=float(avg_detections) if avg_detections is not None else None,
        avg_duration_seconds=float(avg_duration) if avg_duration is not None else None,
    )


def active_batches(
    session: Session, now: datetime, camera_id: str | None = None
) -> list[ActiveBatchOut]:
    query = select(BatchRow).where(BatchRow.status == "aggregating")
    if camera_id is not None:
        query = query.where(BatchRow.camera_id == camera_id)
    rows = session.scalars(query.order_by(BatchRow.started_at, BatchRow.batch_id))
    return [
        ActiveBatchOut(
            batch_id=row.batch_id,
            camera_id=row.camera_id,
            detection_count=row.detection_count,
            started_at=row.started_at,
            age_seconds=round((now - row.started_at).total_seconds(), 1),
            last_activity_seconds=round((now - row.last_activity_at).total_seconds(), 1),
        )
        for row in rows
    ]
