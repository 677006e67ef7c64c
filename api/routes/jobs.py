from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import HTTPException, Query

from api.deps import SessionDep
from api.errors import found
from api.models import (
    JobDetail,
    JobHistory,
    JobList,
    JobLogList,
    JobSearchResult,
    JobStats,
    JobStatusOut,
)
from api.pagination import Pagination
from api.queries.jobs import (
    JobFilter,
    JobSort,
    SortOrder,
    get_job,
    job_detail,
    job_history,
    job_logs,
    job_stats,
    list_jobs,
    search_jobs,
)
from api.security import resource_routers
from schemas.envelope import utcnow
from schemas.jobs import JOB_STATUSES, LOG_LEVELS, JobStatus

read, write = resource_routers("/api/jobs", "jobs")

_UNKNOWN_JOB: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown job"}}


def _invalid(param: str, message: str, kind: str) -> HTTPException:
    """A 422 shaped as FastAPI's own, for a parameter only the code can check."""
    return HTTPException(
        status_code=422,
        detail=[{"loc": ["query", param], "msg": message, "type": kind}],
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # a timestamp without zone is taken as UTC
    return value


def _listed(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
    return items or None


@read.get("", response_model=JobList)
def read_jobs(
    session: SessionDep,
    page: Pagination,
    job_type: str | None = None,
    status: JobStatus | None = None,
) -> JobList:
    """Jobs, newest created first; `count` is every job that matches."""
    filters = JobFilter(
        job_types=(job_type,) if job_type is not None else None,
        statuses=(status,) if status is not None else None,
    )
    return list_jobs(session, filters, page.limit, page.offset)


# /search and /stats are declared before /{job_id}, which would otherwise take them.
@read.get("/search", response_model=JobSearchResult)
def read_job_search(
    session: SessionDep,
    page: Pagination,
    q: Annotated[str | None, Query(description="Text in the type, error, params or result")] = None,
    status: Annotated[str | None, Query(description="Comma-separated statuses")] = None,
    job_type: Annotated[str | None, Query(description="Comma-separated job types")] = None,
    queue: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    completed_after: datetime | None = None,
    completed_before: datetime | None = None,
    has_error: Annotated[bool | None, Query(description="With or without an error")] = None,
    min_duration: Annotated[
        float | None, Query(ge=0, description="Minimum seconds from start to finish")
    ] = None,
    max_duration: Annotated[
        float | None, Query(ge=0, description="Maximum seconds from start to finish")
    ] = None,
    sort: JobSort = "created_at",
    order: SortOrder = "desc",
) -> JobSearchResult:
    """Jobs matching every filter given, with counts per status and per type over all of
    them (not only this page).

    - `q`: case-insensitive text in the job type, error message, params or result.
    - `has_error`: whether the job has an error message (a retried attempt's counts).
    - `min_duration` / `max_duration`: seconds from first start to finish; a bound leaves
      out jobs not both started and finished.
    """
    statuses = _listed(status)
    if statuses is not None:
        unknown = [value for value in statuses if value not in JOB_STATUSES]
        if unknown:
            raise _invalid(
                "status",
                f"unknown status {', '.join(unknown)}: the statuses are {', '.join(JOB_STATUSES)}",
                "value_error.job_status",
            )
    filters = JobFilter(
        job_types=_listed(job_type),
        statuses=statuses,
        q=q,
        queue=queue,
        created_after=_aware(created_after),
        created_before=_aware(created_before),
        completed_after=_aware(completed_after),
        completed_before=_aware(completed_before),
        has_error=has_error,
        min_duration=min_duration,
        max_duration=max_duration,
    )
    return search_jobs(session, filters, sort, order, page.limit, page.offset)


@read.get("/stats", response_model=JobStats)
def read_job_stats(session: SessionDep) -> JobStats:
    """Job statistics over every job.

    - `by_status`: count per status; every status is present, 0 when none.
    - `avg_duration_seconds`: mean seconds from first start to finish of finished jobs
      that started, null when there are none.
    - `jobs_today`: created since midnight UTC; `jobs_this_hour`: in the last 60 minutes.
    """
    return job_stats(session, utcnow())


@read.get("/{job_id}", response_model=JobStatusOut, responses=_UNKNOWN_JOB)
def read_job(session: SessionDep, job_id: str) -> JobStatusOut:
    return found(get_job(session, job_id), f"job {job_id}")


@read.get("/{job_id}/detail", response_model=JobDetail, responses=_UNKNOWN_JOB)
def read_job_detail(session: SessionDep, job_id: str) -> JobDetail:
    """The job with its progress steps (oldest first), timing and retries.

    `queue_wait_seconds` is from creation to first start; `running_seconds` from first
    start to finish, or to now while the job runs; both null until the job starts.
    """
    return found(job_detail(session, job_id, utcnow()), f"job {job_id}")


@read.get("/{job_id}/history", response_model=JobHistory, responses=_UNKNOWN_JOB)
def read_job_history(session: SessionDep, job_id: str) -> JobHistory:
    """Every status change, oldest first, and every attempt, by number."""
    return found(job_history(session, job_id), f"job {job_id}")


@read.get("/{job_id}/logs", response_model=JobLogList, responses=_UNKNOWN_JOB)
def read_job_logs(
    session: SessionDep,
    job_id: str,
    level: Annotated[
        str | None, Query(description="Minimum level: DEBUG, INFO, WARNING or ERROR")
    ] = None,
    since: Annotated[datetime | None, Query(description="Only from this time")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Max entries (1-1000)")] = 100,
) -> JobLogList:
    """The job's log lines, oldest first; `count` is every line that matches."""
    minimum = None
    if level is not None:
        minimum = level.upper()
        if minimum not in LOG_LEVELS:
            raise _invalid(
                "level",
                f"unknown level {level}: the levels are {', '.join(LOG_LEVELS)}",
                "value_error.log_level",
            )
    return found(job_logs(session, job_id, minimum, _aware(since), limit), f"job {job_id}")
