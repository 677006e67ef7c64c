"""The jobs' use cases: request a job, cancel a pending one, abort a running one.

The API only asks (JobRequested, JobCancelRequested, JobAbortRequested on `vigil.jobs`,
keyed by the job id); the runner that owns the job's partition answers, and the projector
folds its answer into the read model. A cancel or abort waits for the read model to show
the answer (read-your-writes) and raises NotYetVisible when the wait runs out first.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.commands import CommandSender, NotDelivered, outgoing, wait_for_read_model
from api.errors import Conflict, NotYetVisible, found
from api.models import (
    BulkCancelFailed,
    BulkCancelOutcome,
    BulkCancelSucceeded,
    JobAbortOutcome,
    JobCancelOutcome,
    JobDeleteOutcome,
    JobStatusOut,
)
from api.queries.jobs import get_job
from jobs.job_type import JobType
from jobs.registry import JOB_TYPES
from projections.tables import JobRow
from schemas.jobs import JobAbortRequested, JobCancelRequested, JobRequested
from schemas.topics import JOBS

REQUESTED_BY = "api"


def new_job_id() -> str:
    return f"job_{uuid.uuid4().hex[:16]}"


def request_job(
    sender: CommandSender,
    job_type: JobType,
    params: dict[str, Any],
    *,
    max_attempts: int,
    requested_by: str = REQUESTED_BY,
) -> JobStatusOut:
    """Ask for a job; `params` are already validated by the type's params model (as JSON).

    The job is pending from the request on, so the answer is the job as it will be shown.
    """
    event = JobRequested(
        job_id=new_job_id(),
        job_type=job_type.name,
        params=params,
        requested_by=requested_by,
        queue=job_type.queue,
        max_attempts=max_attempts,
    )
    sender.send(JOBS, event.job_id, event)
    return JobStatusOut(
        job_id=event.job_id,
        job_type=event.job_type,
        status="pending",
        progress=0,
        created_at=event.occurred_at,
        started_at=None,
        completed_at=None,
        error_message=None,
        result=None,
        metadata=params,
    )


def _status(session: Session, job_id: str, last: str) -> str:
    job = get_job(session, job_id)
    return job.status if job is not None else last


def _ask(
    session: Session,
    sender: CommandSender,
    request: JobCancelRequested | JobAbortRequested,
    *,
    leaving: str,
    wait_s: float,
) -> str:
    """Send the request, then wait for the job to leave `leaving`; the status shown last."""
    sender.send(JOBS, request.job_id, request)
    return wait_for_read_model(
        session,
        lambda: _status(session, request.job_id, leaving),
        lambda shown: shown != leaving,
        wait_s=wait_s,
    )


def _cancel(
    session: Session, sender: CommandSender, job: JobStatusOut, *, wait_s: float
) -> JobCancelOutcome:
    if job.status != "pending":
        raise Conflict(
            f"job {job.job_id} is {job.status}: only a pending job can be cancelled "
            "(a running job is aborted instead)"
        )
    request = JobCancelRequested(job_id=job.job_id, requested_by=REQUESTED_BY)
    status = _ask(session, sender, request, leaving="pending", wait_s=wait_s)
    if status == "pending":
        raise NotYetVisible(
            JobCancelOutcome(
                job_id=job.job_id,
                status="cancelling",
                message=f"Cancel requested; the job was still pending after {wait_s:g}s",
            )
        )
    if status != "cancelled":
        raise Conflict(
            f"job {job.job_id} started before the cancel took effect: it is {status} "
            "(abort it instead)"
        )
    return JobCancelOutcome(
        job_id=job.job_id, status="cancelled", message="Job cancelled successfully"
    )


def _abort(
    session: Session, sender: CommandSender, job: JobStatusOut, *, wait_s: float
) -> JobAbortOutcome:
    if job.status != "running":
        hint = " (a pending job is cancelled instead)" if job.status == "pending" else ""
        raise Conflict(f"job {job.job_id} is {job.status}: only a running job can be aborted{hint}")
    job_type = JOB_TYPES.get(job.job_type)
    if job_type is None or not job_type.supports_abort:
        raise Conflict(f"{job.job_type} jobs cannot be aborted")
    request = JobAbortRequested(job_id=job.job_id, requested_by=REQUESTED_BY)
    status = _ask(session, sender, request, leaving="running", wait_s=wait_s)
    if status == "running":
        raise NotYetVisible(
            JobAbortOutcome(
                job_id=job.job_id,
                status="aborting",
                message=f"Abort signal sent; the job was still running after {wait_s:g}s",
            )
        )
    if status != "aborted":
        raise Conflict(f"job {job.job_id} {status} before the abort took effect")
    return JobAbortOutcome(
        job_id=job.job_id, status="aborted", message="Abort signal sent to worker"
    )


def cancel_job(
    session: Session, sender: CommandSender, job_id: str, *, wait_s: float
) -> JobCancelOutcome:
    """Cancel a pending job: the runner emits JobCancelled unless it started the job first."""
    job = found(get_job(session, job_id), f"job {job_id}")
    return _cancel(session, sender, job, wait_s=wait_s)


def abort_job(
    session: Session, sender: CommandSender, job_id: str, *, wait_s: float
) -> JobAbortOutcome:
    """Abort a running job whose type supports it: it stops at its next abort check."""
    job = found(get_job(session, job_id), f"job {job_id}")
    return _abort(session, sender, job, wait_s=wait_s)


# What DELETE does per status: the use case, the action while waiting, once done, its message.
_DELETES = {
    "pending": (_cancel, "cancelling", "cancelled", "Job cancelled"),
    "running": (_abort, "aborting", "aborted", "Job aborted"),
}


def delete_job(
    session: Session, sender: CommandSender, job_id: str, *, wait_s: float
) -> JobDeleteOutcome:
    """Cancel a pending job, abort a running one; a finished job is a conflict."""
    job = found(get_job(session, job_id), f"job {job_id}")
    if job.status not in _DELETES:
        raise Conflict(f"job {job_id} is already {job.status}: there is nothing to cancel or abort")
    act, waiting_action, done_action, done_message = _DELETES[job.status]
    try:
        act(session, sender, job, wait_s=wait_s)
    except NotYetVisible as waiting:
        raise NotYetVisible(
            JobDeleteOutcome(
                job_id=job_id,
                action=waiting_action,
                previous_status=job.status,
                message=waiting.outcome.message,  # type: ignore[attr-defined]
            )
        ) from None
    return JobDeleteOutcome(
        job_id=job_id, action=done_action, previous_status=job.status, message=done_message
    )


def _refusal(status: str) -> str:
    if status == "running":
        return "Job is running: abort it instead"
    return f"Job already {status}"


def bulk_cancel(
    session: Session, sender: CommandSender, job_ids: list[str], *, wait_s: float
) -> BulkCancelOutcome:
    """Cancel every pending job named: all requests are sent first, then one wait for all.

    Answers per id, in request order (an id named twice is answered twice, asked once).
    A job still pending when the wait runs out counts as successful (its cancel is on
    Kafka); the whole answer is then 202 (NotYetVisible).
    """
    rows = session.scalars(select(JobRow).where(JobRow.job_id.in_(set(job_ids)))).all()
    statuses = {row.job_id: row.status for row in rows}
    pending = [job_id for job_id in dict.fromkeys(job_ids) if statuses.get(job_id) == "pending"]
    results = sender.deliver(
        [
            outgoing(JOBS, job_id, JobCancelRequested(job_id=job_id, requested_by=REQUESTED_BY))
            for job_id in pending
        ]
    )
    undelivered = {
        job_id: result.reason
        for job_id, result in zip(pending, results, strict=True)
        if isinstance(result, NotDelivered)
    }
    asked = [job_id for job_id in pending if job_id not in undelivered]

    def shown() -> dict[str, str]:
        if not asked:
            return {}
        found_rows = session.execute(
            select(JobRow.job_id, JobRow.status).where(JobRow.job_id.in_(asked))
        ).all()
        return {job_id: status for job_id, status in found_rows}

    after = wait_for_read_model(
        session,
        shown,
        lambda now: all(now.get(job_id, "pending") != "pending" for job_id in asked),
        wait_s=wait_s,
    )
    answers: list[BulkCancelSucceeded | BulkCancelFailed] = []
    waiting = False
    for job_id in job_ids:
        status = statuses.get(job_id)
        if status is None:
            answers.append(BulkCancelFailed(job_id=job_id, error="Job not found"))
        elif status != "pending":
            answers.append(BulkCancelFailed(job_id=job_id, error=_refusal(status)))
        elif job_id in undelivered:
            answers.append(
                BulkCancelFailed(
                    job_id=job_id,
                    error=f"Kafka did not acknowledge the cancel request: {undelivered[job_id]}",
                )
            )
        else:
            now = after.get(job_id, "pending")
            if now == "cancelled":
                answers.append(BulkCancelSucceeded(job_id=job_id, message="Cancelled"))
            elif now == "pending":
                waiting = True
                answers.append(
                    BulkCancelSucceeded(
                        job_id=job_id, message=f"Cancel requested; still pending after {wait_s:g}s"
                    )
                )
            else:
                answers.append(
                    BulkCancelFailed(
                        job_id=job_id,
                        error=f"Job started before the cancel took effect: it is {now}",
                    )
                )
    successful = sum(1 for answer in answers if answer.success)
    outcome = BulkCancelOutcome(
        successful=successful, failed=len(answers) - successful, results=answers
    )
    if waiting:
        raise NotYetVisible(outcome)
    return outcome
