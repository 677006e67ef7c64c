"""A background job is a stream of events on `vigil.jobs`, keyed by its id.

Every state a job is in, every attempt, progress step and log line is one of these
events, in order on the job's partition; the projector folds them into the jobs read
models (the job, its transitions, attempts, progress history and logs), so a replay of
the topic rebuilds all of it. The API asks (requested, cancel requested, abort
requested); the runner that owns the job's partition answers with everything else.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from schemas.envelope import Message

JobStatus = Literal["pending", "running", "completed", "failed", "cancelled", "aborted"]
JOB_STATUSES: tuple[JobStatus, ...] = (
    "pending",
    "running",
    "completed",
    "failed",
    "cancelled",
    "aborted",
)
# A job in one of these never changes again.
FINISHED: frozenset[JobStatus] = frozenset({"completed", "failed", "cancelled", "aborted"})

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LOG_LEVELS: tuple[LogLevel, ...] = ("DEBUG", "INFO", "WARNING", "ERROR")


class JobEvent(Message):
    job_id: str = Field(min_length=1, max_length=64)


class JobRequested(JobEvent):
    """Someone asked for a job: its type, its (validated) parameters and who asked."""

    event_type: Literal["JobRequested"] = "JobRequested"

    job_type: str
    params: dict[str, Any]
    requested_by: str
    queue: str
    max_attempts: int = Field(ge=1)


class JobStarted(JobEvent):
    """A runner began an attempt."""

    event_type: Literal["JobStarted"] = "JobStarted"

    worker_id: str
    attempt: int = Field(ge=1)


class JobProgressed(JobEvent):
    event_type: Literal["JobProgressed"] = "JobProgressed"

    attempt: int = Field(ge=1)
    progress: int = Field(ge=0, le=100)
    processed: int = Field(ge=0)
    total: int | None = Field(default=None, ge=0)
    message: str


class JobLogged(JobEvent):
    event_type: Literal["JobLogged"] = "JobLogged"

    attempt: int | None = Field(default=None, ge=1)
    level: LogLevel
    message: str


class JobCompleted(JobEvent):
    event_type: Literal["JobCompleted"] = "JobCompleted"

    attempt: int = Field(ge=1)
    result: dict[str, Any]


class JobFailed(JobEvent):
    """An attempt failed; `will_retry` says whether another attempt follows."""

    event_type: Literal["JobFailed"] = "JobFailed"

    attempt: int = Field(ge=1)
    error: str
    error_type: str
    will_retry: bool


class JobCancelRequested(JobEvent):
    event_type: Literal["JobCancelRequested"] = "JobCancelRequested"

    requested_by: str


class JobCancelled(JobEvent):
    """A pending job will never start."""

    event_type: Literal["JobCancelled"] = "JobCancelled"

    reason: str


class JobAbortRequested(JobEvent):
    event_type: Literal["JobAbortRequested"] = "JobAbortRequested"

    requested_by: str


class JobAborted(JobEvent):
    """A running attempt stopped at the runner's abort check, leaving no partial result."""

    event_type: Literal["JobAborted"] = "JobAborted"

    attempt: int = Field(ge=1)
    reason: str


class RetentionApplied(JobEvent):
    """A cleanup job's decision: the read models forget what happened before `cutoff`.

    For one camera, or for every camera when `camera_id` is None. The projector deletes the
    rows it covers when it applies this event and, on a replay, skips the facts it covers,
    so a rebuild from the topics leaves the same rows deleted.
    """

    event_type: Literal["RetentionApplied"] = "RetentionApplied"

    attempt: int = Field(ge=1)
    cutoff: datetime
    camera_id: str | None = Field(default=None, min_length=1, max_length=128)


JOB_EVENTS: tuple[type[JobEvent], ...] = (
    JobRequested,
    JobStarted,
    JobProgressed,
    JobLogged,
    JobCompleted,
    JobFailed,
    JobCancelRequested,
    JobCancelled,
    JobAbortRequested,
    JobAborted,
    RetentionApplied,
)
