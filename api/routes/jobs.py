from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError

from api.deps import ServicesDep, SessionDep
from api.errors import Gone, NotFound, found, invalid_query
from api.job_commands import abort_job, bulk_cancel, cancel_job, delete_job, request_job
from api.models import (
    BulkCancelIn,
    BulkCancelOutcome,
    JobAbortOutcome,
    JobCancelOutcome,
    JobCreate,
    JobDeleteOutcome,
    JobDetail,
    JobHistory,
    JobList,
    JobLogList,
    JobSearchResult,
    JobStats,
    JobStatusOut,
    JobTypeList,
    JobTypeOut,
)
from api.pagination import Pagination, as_utc
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
from jobs.export import ExportParams, export_path
from jobs.job_type import JobType
from jobs.registry import JOB_TYPES
from schemas.envelope import utcnow
from schemas.jobs import JOB_STATUSES, LOG_LEVELS, JobStatus

read, write = resource_routers("/api/jobs", "jobs")
# POST /api/events/export: the export job, asked for where the events are.
_events_read, events_write = resource_routers("/api/events", "events")

_UNKNOWN_JOB: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown job"}}


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
            raise invalid_query(
                "status",
                f"unknown status {', '.join(unknown)}: the statuses are {', '.join(JOB_STATUSES)}",
                "value_error.job_status",
            )
    filters = JobFilter(
        job_types=_listed(job_type),
        statuses=statuses,
        q=q,
        queue=queue,
        created_after=as_utc(created_after),
        created_before=as_utc(created_before),
        completed_after=as_utc(completed_after),
        completed_before=as_utc(completed_before),
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


@read.get("/types", response_model=JobTypeList)
def read_job_types() -> JobTypeList:
    """Every job type the runner runs, with the JSON schema of its `params`."""
    return JobTypeList(
        types=[
            JobTypeOut(
                type=name,
                description=job_type.description,
                supports_abort=job_type.supports_abort,
                queue=job_type.queue,
                params_schema=job_type.params.model_json_schema(),
            )
            for name, job_type in JOB_TYPES.items()
        ]
    )


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
            raise invalid_query(
                "level",
                f"unknown level {level}: the levels are {', '.join(LOG_LEVELS)}",
                "value_error.log_level",
            )
    return found(job_logs(session, job_id, minimum, as_utc(since), limit), f"job {job_id}")


_MEDIA_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}


@read.get(
    "/{job_id}/download",
    response_class=FileResponse,
    responses={
        200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
        404: {"description": "Unknown job, not an export, or not completed"},
        410: {"description": "The export's file is gone"},
    },
)
def download(session: SessionDep, services: ServicesDep, job_id: str) -> FileResponse:
    """The file of a completed export job."""
    job = found(get_job(session, job_id), f"job {job_id}")
    if job.job_type != "export":
        raise NotFound(f"job {job_id} is a {job.job_type} job: only an export has a file")
    if job.status != "completed" or job.result is None:
        raise NotFound(f"job {job_id} is {job.status}: only a completed export has a file")
    fmt = job.result.get("format") or job.metadata.get("format", "csv")
    path = export_path(services.settings.data_dir, job_id, fmt)
    if not path.is_file():
        raise Gone(f"the file of export job {job_id} is gone")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(fmt, "application/octet-stream"),
        filename=job.result.get("file_name", path.name),
    )


def _invalid_body(errors: list[dict[str, Any]]) -> RequestValidationError:
    """A 422 shaped as FastAPI's own, for a body only the code can check."""
    return RequestValidationError(errors)


def _job_type(name: str) -> JobType:
    job_type = JOB_TYPES.get(name)
    if job_type is None:
        raise _invalid_body(
            [
                {
                    "loc": ["body", "job_type"],
                    "msg": f"unknown job type {name!r}: the job types are {', '.join(JOB_TYPES)}",
                    "type": "value_error.job_type",
                    "input": name,
                }
            ]
        )
    return job_type


def _params(job_type: JobType, params: dict[str, Any]) -> dict[str, Any]:
    """The params as the type's params model validates them, as JSON."""
    try:
        validated = job_type.params.model_validate(params)
    except ValidationError as exc:
        raise _invalid_body(
            [
                {
                    "loc": ["body", "params", *error["loc"]],
                    "msg": error["msg"],
                    "type": error["type"],
                }
                for error in exc.errors()
            ]
        ) from None
    return validated.model_dump(mode="json")


_ASKED: dict[int | str, dict[str, Any]] = {
    202: {"description": "Requested: the job is pending"},
}


@write.post("", status_code=202, response_model=JobStatusOut, responses=_ASKED)
def create_job(services: ServicesDep, body: JobCreate) -> JobStatusOut:
    """Ask for a job of a type of `GET /api/jobs/types`, its `params` as its schema says.

    Answers 202 with the job, pending; an unknown type or bad params answer 422.
    """
    job_type = _job_type(body.job_type)
    return request_job(
        services.commands,
        job_type,
        _params(job_type, body.params),
        max_attempts=services.settings.job_max_attempts,
    )


@events_write.post("/export", status_code=202, response_model=JobStatusOut, responses=_ASKED)
def export_events(services: ServicesDep, body: ExportParams) -> JobStatusOut:
    """Ask for an export job of the events matching the filters (as `POST /api/jobs`
    with job_type export); download its file from `/api/jobs/{job_id}/download`."""
    job_type = JOB_TYPES["export"]
    return request_job(
        services.commands,
        job_type,
        body.model_dump(mode="json"),
        max_attempts=services.settings.job_max_attempts,
    )


_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_UNKNOWN_JOB,
    202: {"description": "Asked on Kafka; the job did not show it yet"},
}


@write.post(
    "/bulk-cancel",
    response_model=BulkCancelOutcome,
    responses={202: {"model": BulkCancelOutcome, "description": "Some jobs still pending"}},
)
def cancel_many(
    session: SessionDep, services: ServicesDep, body: BulkCancelIn
) -> BulkCancelOutcome:
    """Cancel every pending job named (1-1000 ids), answering per id in request order.

    Every cancel is sent first, then one wait for all; when a job still shows pending
    after it, its result is successful ("Cancel requested") and the answer is 202.
    """
    return bulk_cancel(
        session, services.commands, body.job_ids, wait_s=services.read_your_writes_wait_s
    )


@write.post(
    "/{job_id}/cancel",
    response_model=JobCancelOutcome,
    responses={
        **_WRITE_RESPONSES,
        409: {"description": "The job is not pending, or started before the cancel"},
    },
)
def cancel(session: SessionDep, services: ServicesDep, job_id: str) -> JobCancelOutcome:
    """Cancel a pending job; answers once it shows cancelled, or 202 ("cancelling")."""
    return cancel_job(session, services.commands, job_id, wait_s=services.read_your_writes_wait_s)


@write.post(
    "/{job_id}/abort",
    response_model=JobAbortOutcome,
    responses={
        **_WRITE_RESPONSES,
        409: {"description": "Not running, its type cannot abort, or it ended first"},
    },
)
def abort(session: SessionDep, services: ServicesDep, job_id: str) -> JobAbortOutcome:
    """Abort a running job; answers once it shows aborted, or 202 ("aborting")."""
    return abort_job(session, services.commands, job_id, wait_s=services.read_your_writes_wait_s)


@write.delete(
    "/{job_id}",
    response_model=JobDeleteOutcome,
    responses={**_WRITE_RESPONSES, 409: {"description": "The job is finished"}},
)
def delete(session: SessionDep, services: ServicesDep, job_id: str) -> JobDeleteOutcome:
    """Cancel the job when pending, abort it when running (as those routes do)."""
    return delete_job(session, services.commands, job_id, wait_s=services.read_your_writes_wait_s)
