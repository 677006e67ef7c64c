"""The jobs read models folded from job events, against the real Postgres."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.tables import JobAttemptRow, JobLogRow, JobProgressRow, JobRow, JobTransitionRow
from schemas.jobs import (
    JobAbortRequested,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobStarted,
)
from tests.factories import apply, job_requested, job_run

AT = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)


def _job(engine, job_id: str) -> JobRow:
    with Session(engine) as session:
        return session.get(JobRow, job_id)


def _transitions(engine, job_id: str) -> list[tuple[str | None, str, str]]:
    with Session(engine) as session:
        rows = session.scalars(
            select(JobTransitionRow)
            .where(JobTransitionRow.job_id == job_id)
            .order_by(JobTransitionRow.at, JobTransitionRow.id)
        )
        return [(r.from_status, r.to_status, r.reason) for r in rows]


def _attempts(engine, job_id: str) -> list[tuple[int, str, str | None]]:
    with Session(engine) as session:
        rows = session.scalars(
            select(JobAttemptRow)
            .where(JobAttemptRow.job_id == job_id)
            .order_by(JobAttemptRow.attempt)
        )
        return [(r.attempt, r.status, r.error) for r in rows]


def test_a_retried_job_keeps_every_transition_attempt_step_and_line(engine):
    requested = job_requested(at=AT, requested_by="alice")
    run = job_run(requested, "completed", steps=2, attempts=2, seconds=8.0)
    apply(engine, requested, *run)
    job = _job(engine, requested.job_id)
    assert (job.status, job.progress, job.attempt, job.result) == (
        "completed",
        100,
        2,
        {"rows": 30},
    )
    assert job.created_at == AT
    assert job.started_at == AT + timedelta(seconds=1)  # the first attempt's start
    assert job.completed_at == AT + timedelta(seconds=8)
    assert (job.error_type, job.error_message) == ("OperationalError", "connection reset")
    assert _transitions(engine, requested.job_id) == [
        (None, "pending", "Job created by alice"),
        ("pending", "running", "Worker runner-1 picked up job (attempt 1 of 3)"),
        (
            "running",
            "pending",
            "Attempt 1 failed (OperationalError: connection reset); retrying",
        ),
        ("pending", "running", "Worker runner-1 picked up job (attempt 2 of 3)"),
        ("running", "completed", "Completed"),
    ]
    assert _attempts(engine, requested.job_id) == [
        (1, "failed", "OperationalError: connection reset"),
        (2, "completed", None),
    ]
    with Session(engine) as session:
        steps = session.scalars(
            select(JobProgressRow.progress)
            .where(JobProgressRow.job_id == requested.job_id)
            .order_by(JobProgressRow.at)
        ).all()
        lines = session.scalars(
            select(JobLogRow.level_no).where(JobLogRow.job_id == requested.job_id)
        ).all()
    assert steps == [33, 66, 33, 66]
    assert lines == [20, 20, 20, 20]


def test_applying_the_same_events_twice_writes_nothing_twice(engine):
    requested = job_requested(at=AT)
    run = job_run(requested, "failed", steps=1)
    apply(engine, requested, *run)
    apply(engine, requested, *run)
    assert [t[1] for t in _transitions(engine, requested.job_id)] == [
        "pending",
        "running",
        "failed",
    ]
    with Session(engine) as session:
        assert (
            len(
                session.scalars(select(JobLogRow).where(JobLogRow.job_id == requested.job_id)).all()
            )
            == 1
        )
    assert _job(engine, requested.job_id).status == "failed"


def test_a_takeover_marks_the_dead_runners_attempt_abandoned(engine):
    requested = job_requested(at=AT)
    first = job_run(requested, "running", steps=1, worker_id="runner-a")
    later = AT + timedelta(minutes=1)
    second = [
        JobStarted(job_id=requested.job_id, worker_id="runner-b", attempt=2, occurred_at=later),
        JobCompleted(
            job_id=requested.job_id,
            attempt=2,
            result={"rows": 1},
            occurred_at=later + timedelta(seconds=1),
        ),
    ]
    apply(engine, requested, *first, *second)
    assert _attempts(engine, requested.job_id) == [
        (1, "abandoned", "the runner stopped mid-attempt"),
        (2, "completed", None),
    ]
    assert _transitions(engine, requested.job_id)[2] == (
        "running",
        "running",
        "Worker runner-b took over after attempt 1 ended without an outcome (attempt 2 of 3)",
    )
    assert _job(engine, requested.job_id).worker_id == "runner-b"


def test_a_job_completed_while_an_abort_was_asked_ends_completed_and_says_so(engine):
    requested = job_requested(at=AT)
    run = job_run(requested, "completed", steps=1)
    asked = JobAbortRequested(
        job_id=requested.job_id, requested_by="bob", occurred_at=run[-1].occurred_at
    )
    apply(engine, requested, *run[:-1], asked, run[-1])
    job = _job(engine, requested.job_id)
    assert (job.status, job.abort_requested_at) == ("completed", asked.occurred_at)
    assert _transitions(engine, requested.job_id)[-1] == (
        "running",
        "completed",
        "Completed before the requested abort took effect",
    )


def test_a_finished_job_ignores_what_arrives_after_it(engine):
    requested = job_requested(at=AT)
    later = AT + timedelta(seconds=5)
    apply(
        engine,
        requested,
        JobCancelRequested(job_id=requested.job_id, requested_by="bob", occurred_at=later),
        JobCancelled(job_id=requested.job_id, reason="Cancelled by bob", occurred_at=later),
        JobStarted(job_id=requested.job_id, worker_id="runner-1", attempt=1, occurred_at=later),
    )
    job = _job(engine, requested.job_id)
    assert (job.status, job.started_at, job.completed_at) == ("cancelled", None, later)
    assert job.cancel_requested_at == later
    assert _transitions(engine, requested.job_id) == [
        (None, "pending", "Job created by api"),
        ("pending", "cancelled", "Cancelled by bob"),
    ]
    assert _attempts(engine, requested.job_id) == []


def test_a_second_request_under_the_same_id_changes_nothing(engine):
    requested = job_requested(at=AT, params={"format": "csv"})
    again = job_requested(job_id=requested.job_id, job_type="cleanup", params={"days": 1})
    apply(engine, requested, again)
    job = _job(engine, requested.job_id)
    assert (job.job_type, job.params) == ("export", {"format": "csv"})
    assert len(_transitions(engine, requested.job_id)) == 1
