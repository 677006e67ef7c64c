"""Read queries for background jobs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, Text, cast, func, or_, select
from sqlalchemy.orm import Session

from api.models import (
    JobAggregations,
    JobAttemptOut,
    JobDetail,
    JobHistory,
    JobList,
    JobLogList,
    JobLogOut,
    JobOut,
    JobProgressStep,
    JobRetryInfo,
    JobSearchResult,
    JobStats,
    JobStatusOut,
    JobTiming,
    JobTransitionOut,
)
from projections.jobs import LEVEL_NUMBERS
from projections.tables import (
    JobAttemptRow,
    JobLogRow,
    JobProgressRow,
    JobRow,
    JobTransitionRow,
    ProjectionOffset,
)
from schemas.jobs import FINISHED, JOB_STATUSES
from schemas.topics import JOBS

JobSort = Literal["created_at", "started_at", "completed_at", "progress", "job_type", "status"]
SortOrder = Literal["asc", "desc"]

# Seconds from the first start to the finish; null unless the job has both.
_DURATION = func.extract("epoch", JobRow.completed_at - JobRow.started_at)


@dataclass(frozen=True)
class JobFilter:
    job_types: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    q: str | None = None
    queue: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None
    has_error: bool | None = None
    min_duration: float | None = None
    max_duration: float | None = None


def _like(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _conditions(f: JobFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.job_types is not None:
        where.append(JobRow.job_type.in_(f.job_types))
    if f.statuses is not None:
        where.append(JobRow.status.in_(f.statuses))
    if f.q:
        pattern = _like(f.q)
        where.append(
            or_(
                JobRow.job_type.ilike(pattern, escape="\\"),
                JobRow.error_message.ilike(pattern, escape="\\"),
                cast(JobRow.params, Text).ilike(pattern, escape="\\"),
                cast(JobRow.result, Text).ilike(pattern, escape="\\"),
            )
        )
    if f.queue is not None:
        where.append(JobRow.queue == f.queue)
    if f.created_after is not None:
        where.append(JobRow.created_at >= f.created_after)
    if f.created_before is not None:
        where.append(JobRow.created_at <= f.created_before)
    if f.completed_after is not None:
        where.append(JobRow.completed_at >= f.completed_after)
    if f.completed_before is not None:
        where.append(JobRow.completed_at <= f.completed_before)
    if f.has_error is not None:
        has = JobRow.error_message.is_not(None)
        where.append(has if f.has_error else JobRow.error_message.is_(None))
    if f.min_duration is not None or f.max_duration is not None:
        where.append(JobRow.started_at.is_not(None))
        where.append(JobRow.completed_at.is_not(None))
        if f.min_duration is not None:
            where.append(_DURATION >= f.min_duration)
        if f.max_duration is not None:
            where.append(_DURATION <= f.max_duration)
    return where


def _filtered(query: Select, f: JobFilter) -> Select:
    return query.where(*_conditions(f))


def job_metadata(row: JobRow) -> dict[str, Any]:
    """The job's params, with its processed, total and message where they are known."""
    known = {"processed": row.processed, "total": row.total, "message": row.message}
    return {**row.params, **{key: value for key, value in known.items() if value is not None}}


def _out(row: JobRow) -> JobOut:
    return JobOut(
        job_id=row.job_id,
        job_type=row.job_type,
        status=row.status,
        progress=row.progress,
        created_at=row.created_at,
        started_at=row.started_at,
        metadata=job_metadata(row),
    )


def _page(
    session: Session, f: JobFilter, sort: JobSort, order: SortOrder, limit: int, offset: int
) -> tuple[list[JobOut], int]:
    total = session.scalar(_filtered(select(func.count()).select_from(JobRow), f)) or 0
    column = getattr(JobRow, sort)
    key = column.asc() if order == "asc" else column.desc()
    tie = JobRow.job_id.asc() if order == "asc" else JobRow.job_id.desc()
    rows = session.scalars(
        _filtered(select(JobRow), f).order_by(key.nulls_last(), tie).limit(limit).offset(offset)
    )
    return [_out(row) for row in rows], total


def list_jobs(session: Session, f: JobFilter, limit: int, offset: int) -> JobList:
    jobs, total = _page(session, f, "created_at", "desc", limit, offset)
    return JobList(jobs=jobs, count=total, limit=limit, offset=offset)


def _counts(session: Session, column: Any, f: JobFilter) -> dict[str, int]:
    query = _filtered(select(column, func.count()).select_from(JobRow), f).group_by(column)
    return {value: count for value, count in session.execute(query).all()}


def search_jobs(
    session: Session,
    f: JobFilter,
    sort: JobSort,
    order: SortOrder,
    limit: int,
    offset: int,
) -> JobSearchResult:
    jobs, total = _page(session, f, sort, order, limit, offset)
    aggregations = JobAggregations(
        by_status=_counts(session, JobRow.status, f),
        by_type=_counts(session, JobRow.job_type, f),
    )
    return JobSearchResult(
        jobs=jobs, count=total, limit=limit, offset=offset, aggregations=aggregations
    )


def job_stats(session: Session, now: datetime) -> JobStats:
    by_status = dict.fromkeys(JOB_STATUSES, 0)
    by_status.update(
        session.execute(select(JobRow.status, func.count()).group_by(JobRow.status)).all()
    )
    by_type = dict(
        session.execute(select(JobRow.job_type, func.count()).group_by(JobRow.job_type)).all()
    )
    avg_duration = session.scalar(
        select(func.avg(_DURATION)).where(
            JobRow.status.in_(FINISHED),
            JobRow.started_at.is_not(None),
            JobRow.completed_at.is_not(None),
        )
    )
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    jobs_today = session.scalar(
        select(func.count()).select_from(JobRow).where(JobRow.created_at >= midnight)
    )
    jobs_this_hour = session.scalar(
        select(func.count())
        .select_from(JobRow)
        .where(JobRow.created_at >= now - timedelta(minutes=60))
    )
    return JobStats(
        total_jobs=sum(by_status.values()),
        by_status=by_status,
        by_type=by_type,
        avg_duration_seconds=float(avg_duration) if avg_duration is not None else None,
        jobs_today=jobs_today or 0,
        jobs_this_hour=jobs_this_hour or 0,
    )


def job_exists(session: Session, job_id: str) -> bool:
    return session.scalar(select(JobRow.job_id).where(JobRow.job_id == job_id)) is not None


def get_job(session: Session, job_id: str) -> JobStatusOut | None:
    row = session.get(JobRow, job_id)
    if row is None:
        return None
    return JobStatusOut(
        **_out(row).model_dump(),
        completed_at=row.completed_at,
        error_message=row.error_message,
        result=row.result,
    )


def shown_jobs(
    session: Session, projector_group: str, held: Sequence[tuple[int, int, str]]
) -> list[JobStatusOut | None]:
    """For each (partition, offset, job_id) of an event on `vigil.jobs`: the job as
    GET /api/jobs/{id} answers it once the projector applied that offset; None until then.

    The projector stores its offsets with the rows they cover, so an offset it stored is
    an event whose change the read model shows."""
    applied = dict(
        session.execute(
            select(ProjectionOffset.partition, ProjectionOffset.next_offset).where(
                ProjectionOffset.consumer == projector_group, ProjectionOffset.topic == JOBS.name
            )
        ).all()
    )
    jobs: dict[str, JobStatusOut | None] = {}
    shown: list[JobStatusOut | None] = []
    for partition, offset, job_id in held:
        if applied.get(partition, 0) <= offset:
            shown.append(None)
            continue
        if job_id not in jobs:
            jobs[job_id] = get_job(session, job_id)
        shown.append(jobs[job_id])
    return shown


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def job_detail(session: Session, job_id: str, now: datetime) -> JobDetail | None:
    row = session.get(JobRow, job_id)
    if row is None:
        return None
    steps = session.scalars(
        select(JobProgressRow)
        .where(JobProgressRow.job_id == job_id)
        .order_by(JobProgressRow.at, JobProgressRow.id)
    )
    last_error = session.scalar(
        select(JobAttemptRow.error)
        .where(JobAttemptRow.job_id == job_id, JobAttemptRow.status == "failed")
        .order_by(JobAttemptRow.attempt.desc())
        .limit(1)
    )
    return JobDetail(
        job_id=row.job_id,
        job_type=row.job_type,
        status=row.status,
        progress=row.progress,
        progress_history=[
            JobProgressStep(timestamp=step.at, progress=step.progress, message=step.message)
            for step in steps
        ],
        timing=JobTiming(
            created_at=row.created_at,
            started_at=row.started_at,
            queue_wait_seconds=_seconds(row.created_at, row.started_at),
            running_seconds=_seconds(row.started_at, row.completed_at or now),
        ),
        retry_info=JobRetryInfo(
            attempt=row.attempt, max_attempts=row.max_attempts, last_error=last_error
        ),
        metadata=job_metadata(row),
    )


def job_history(session: Session, job_id: str) -> JobHistory | None:
    if not job_exists(session, job_id):
        return None
    transitions = session.scalars(
        select(JobTransitionRow)
        .where(JobTransitionRow.job_id == job_id)
        .order_by(JobTransitionRow.at, JobTransitionRow.id)
    )
    attempts = session.scalars(
        select(JobAttemptRow).where(JobAttemptRow.job_id == job_id).order_by(JobAttemptRow.attempt)
    )
    return JobHistory(
        job_id=job_id,
        transitions=[
            JobTransitionOut(
                from_status=t.from_status, to_status=t.to_status, timestamp=t.at, reason=t.reason
            )
            for t in transitions
        ],
        attempts=[
            JobAttemptOut(
                attempt=a.attempt,
                started_at=a.started_at,
                ended_at=a.ended_at,
                status=a.status,
                worker_id=a.worker_id,
                error=a.error,
            )
            for a in attempts
        ],
    )


def job_logs(
    session: Session, job_id: str, level: str | None, since: datetime | None, limit: int
) -> JobLogList | None:
    if not job_exists(session, job_id):
        return None
    where: list[ColumnElement[bool]] = [JobLogRow.job_id == job_id]
    if level is not None:
        where.append(JobLogRow.level_no >= LEVEL_NUMBERS[level])
    if since is not None:
        where.append(JobLogRow.at >= since)
    total = session.scalar(select(func.count()).select_from(JobLogRow).where(*where)) or 0
    rows = session.scalars(
        select(JobLogRow).where(*where).order_by(JobLogRow.at, JobLogRow.id).limit(limit)
    )
    return JobLogList(
        job_id=job_id,
        logs=[
            JobLogOut(timestamp=r.at, level=r.level, message=r.message, attempt=r.attempt)
            for r in rows
        ],
        count=total,
    )
