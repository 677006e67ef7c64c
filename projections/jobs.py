"""The jobs read models, folded from each job's events on `vigil.jobs` alone.

A job's events arrive in order (one key, one partition). The job row shows where the
job stands; every status change is a transition with its reason, every attempt a row,
every progress step and log line a row of its own. Rows written per event carry the
event's id, so an event applied twice writes nothing twice. A finished job keeps its
status: an event that arrives after it (a cancel answered late) leaves the row alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from projections.tables import (
    JobAttemptRow,
    JobLogRow,
    JobProgressRow,
    JobRow,
    JobTransitionRow,
)
from schemas.jobs import (
    FINISHED,
    JobAborted,
    JobAbortRequested,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobLogged,
    JobProgressed,
    JobRequested,
    JobStarted,
    JobStatus,
)

LEVEL_NUMBERS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}


def _open_job(event: JobEvent, session: Session) -> JobRow | None:
    """The job, unless it is unknown or finished (then the event changes nothing on it)."""
    job = session.get(JobRow, event.job_id)
    if job is None or job.status in FINISHED:
        return None
    return job


def _move(job: JobRow, event: JobEvent, to: JobStatus, reason: str, session: Session) -> None:
    session.execute(
        insert(JobTransitionRow)
        .values(
            event_id=str(event.event_id),
            job_id=job.job_id,
            from_status=job.status,
            to_status=to,
            reason=reason,
            at=event.occurred_at,
        )
        .on_conflict_do_nothing()
    )
    job.status = to
    job.updated_at = event.occurred_at
    if to in FINISHED:
        job.completed_at = event.occurred_at


def _end_attempt(
    event: JobEvent, attempt: int, status: str, session: Session, error: str | None = None
) -> None:
    session.execute(
        update(JobAttemptRow)
        .where(JobAttemptRow.job_id == event.job_id, JobAttemptRow.attempt == attempt)
        .values(status=status, ended_at=event.occurred_at, error=error)
    )


def job_requested(event: JobRequested, session: Session) -> None:
    inserted = session.execute(
        insert(JobRow)
        .values(
            job_id=event.job_id,
            job_type=event.job_type,
            queue=event.queue,
            status="pending",
            params=event.params,
            progress=0,
            requested_by=event.requested_by,
            attempt=0,
            max_attempts=event.max_attempts,
            created_at=event.occurred_at,
            updated_at=event.occurred_at,
        )
        .on_conflict_do_nothing()
        .returning(JobRow.job_id)
    ).scalar()
    if inserted is None:
        return  # requested twice under one id: the first request stands
    session.execute(
        insert(JobTransitionRow)
        .values(
            event_id=str(event.event_id),
            job_id=event.job_id,
            from_status=None,
            to_status="pending",
            reason=f"Job created by {event.requested_by}",
            at=event.occurred_at,
        )
        .on_conflict_do_nothing()
    )


def job_started(event: JobStarted, session: Session) -> None:
    job = _open_job(event, session)
    if job is None:
        return
    if job.status == "running" and job.attempt < event.attempt:
        # The runner of the previous attempt stopped without an outcome (it died).
        _end_attempt(event, job.attempt, "abandoned", session, "the runner stopped mid-attempt")
        reason = (
            f"Worker {event.worker_id} took over after attempt {job.attempt} ended without an "
            f"outcome (attempt {event.attempt} of {job.max_attempts})"
        )
    else:
        reason = (
            f"Worker {event.worker_id} picked up job "
            f"(attempt {event.attempt} of {job.max_attempts})"
        )
    session.execute(
        insert(JobAttemptRow)
        .values(
            job_id=event.job_id,
            attempt=event.attempt,
            worker_id=event.worker_id,
            status="running",
            started_at=event.occurred_at,
        )
        .on_conflict_do_nothing()
    )
    _move(job, event, "running", reason, session)
    job.attempt = event.attempt
    job.worker_id = event.worker_id
    job.started_at = job.started_at or event.occurred_at


def job_progressed(event: JobProgressed, session: Session) -> None:
    session.execute(
        insert(JobProgressRow)
        .values(
            event_id=str(event.event_id),
            job_id=event.job_id,
            attempt=event.attempt,
            progress=event.progress,
            processed=event.processed,
            total=event.total,
            message=event.message,
            at=event.occurred_at,
        )
        .on_conflict_do_nothing()
    )
    job = _open_job(event, session)
    if job is None or job.attempt != event.attempt:
        return  # a step of an attempt that is over
    job.progress = event.progress
    job.processed = event.processed
    job.total = event.total
    job.message = event.message
    job.updated_at = event.occurred_at


def job_logged(event: JobLogged, session: Session) -> None:
    session.execute(
        insert(JobLogRow)
        .values(
            event_id=str(event.event_id),
            job_id=event.job_id,
            attempt=event.attempt,
            level=event.level,
            level_no=LEVEL_NUMBERS[event.level],
            message=event.message,
            at=event.occurred_at,
        )
        .on_conflict_do_nothing()
    )


def job_completed(event: JobCompleted, session: Session) -> None:
    job = _open_job(event, session)
    if job is None:
        return
    reason = "Completed"
    if job.abort_requested_at is not None:
        reason = "Completed before the requested abort took effect"
    _end_attempt(event, event.attempt, "completed", session)
    _move(job, event, "completed", reason, session)
    job.progress = 100
    job.result = event.result
    job.message = reason


def job_failed(event: JobFailed, session: Session) -> None:
    job = _open_job(event, session)
    if job is None:
        return
    error = f"{event.error_type}: {event.error}"
    _end_attempt(event, event.attempt, "failed", session, error)
    job.error_message = event.error
    job.error_type = event.error_type
    if event.will_retry:
        reason = f"Attempt {event.attempt} failed ({error}); retrying"
        _move(job, event, "pending", reason, session)
    else:
        reason = f"Failed on attempt {event.attempt} of {job.max_attempts} ({error})"
        _move(job, event, "failed", reason, session)


def job_cancel_requested(event: JobCancelRequested, session: Session) -> None:
    _mark_requested(event, session, cancel_requested_at=event.occurred_at)


def job_abort_requested(event: JobAbortRequested, session: Session) -> None:
    _mark_requested(event, session, abort_requested_at=event.occurred_at)


def _mark_requested(event: JobEvent, session: Session, **requested: datetime) -> None:
    job = _open_job(event, session)
    if job is None:
        return
    for column, at in requested.items():
        setattr(job, column, getattr(job, column) or at)
    job.updated_at = event.occurred_at


def job_cancelled(event: JobCancelled, session: Session) -> None:
    job = _open_job(event, session)
    if job is not None:
        _move(job, event, "cancelled", event.reason, session)


def job_aborted(event: JobAborted, session: Session) -> None:
    job = _open_job(event, session)
    if job is None:
        return
    _end_attempt(event, event.attempt, "aborted", session, event.reason)
    _move(job, event, "aborted", event.reason, session)
    job.message = event.reason


JOB_HANDLERS: dict[type, list[Any]] = {
    JobRequested: [job_requested],
    JobStarted: [job_started],
    JobProgressed: [job_progressed],
    JobLogged: [job_logged],
    JobCompleted: [job_completed],
    JobFailed: [job_failed],
    JobCancelRequested: [job_cancel_requested],
    JobCancelled: [job_cancelled],
    JobAbortRequested: [job_abort_requested],
    JobAborted: [job_aborted],
}
