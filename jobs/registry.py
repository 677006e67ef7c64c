"""Every job type, in one registry: the API lists them (`GET /api/jobs/types`) and validates
a request's parameters with them; the runner runs them. Adding a job type is one module
that defines its `JOB` (a `jobs.job_type.JobType`) and one line here."""

from __future__ import annotations

from jobs import batch_audit, cleanup, export, prompt_replay, reanalyse, reprocess
from jobs.job_type import JobType

JOB_TYPES: dict[str, JobType] = {
    job.name: job
    for job in (
        export.JOB,
        cleanup.JOB,
        reprocess.JOB,
        reanalyse.JOB,
        prompt_replay.JOB,
        batch_audit.JOB,
    )
}
