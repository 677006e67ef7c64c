"""The job runner as its own process, on a broker and a database of this module's own:
it runs what is requested, reports every step on `vigil.jobs`, and after a restart acts on
what the topic says (a cancelled job never starts, a finished one never runs again)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from projections.tables import JobAttemptRow, JobLogRow, JobProgressRow, JobTransitionRow
from schemas.jobs import (
    JobAbortRequested,
    JobCancelRequested,
    JobEvent,
    JobLogged,
    JobProgressed,
    JobStarted,
)
from schemas.topics import JOBS
from tests.factories import analysed_batch, apply, job_requested
from tests.support import finished_job, new_camera_id, publish, read_topic, wait_for
from vigil.devservices.procs import free_port, wait_until

BASE = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("job-data")


@pytest.fixture(scope="module")
def camera(own_engine) -> str:
    camera_id = new_camera_id("jobs")
    for hour in range(4):
        apply(own_engine, *analysed_batch(camera_id, 20 * hour, BASE + timedelta(hours=hour)))
    return camera_id


@pytest.fixture(scope="module")
def services(own_stack, data_dir):
    processes = {
        "projector": own_stack.start_app("projector", name="jobs-projector"),
        "runner": start_runner(own_stack, data_dir),
    }
    yield processes
    for process in processes.values():
        process.stop()


def start_runner(own_stack, data_dir):
    return own_stack.start_app(
        "runner", name="job-runner", WORKER_ID="job-runner", DATA_DIR=str(data_dir)
    )


def send(own_producer, *events: JobEvent) -> None:
    for event in events:
        publish(own_producer, JOBS.name, event.job_id, JOBS.encode(event))


def rows(own_engine, table, job_id: str, order):
    with Session(own_engine) as session:
        return session.scalars(select(table).where(table.job_id == job_id).order_by(order)).all()


def test_an_export_runs_to_completion_and_reports_every_step(
    services, own_producer, own_engine, camera, data_dir
):
    request = job_requested("export", params={"camera_id": camera, "format": "jsonl"})
    send(own_producer, request)
    job = finished_job(own_engine, request.job_id, timeout=90)
    path = data_dir / "exports" / f"{request.job_id}.jsonl"
    assert job.status == "completed", job.error_message
    assert job.result == {
        "file_name": path.name,
        "rows": 4,
        "size_bytes": path.stat().st_size,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "format": "jsonl",
    }
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["risk_score"] for line in lines] == [0, 20, 40, 60]
    transitions = rows(own_engine, JobTransitionRow, request.job_id, JobTransitionRow.id)
    assert [(t.from_status, t.to_status) for t in transitions] == [
        (None, "pending"),
        ("pending", "running"),
        ("running", "completed"),
    ]
    [attempt] = rows(own_engine, JobAttemptRow, request.job_id, JobAttemptRow.attempt)
    assert (attempt.attempt, attempt.status, attempt.worker_id) == (1, "completed", "job-runner")
    logs = rows(own_engine, JobLogRow, request.job_id, JobLogRow.id)
    assert [log.message for log in logs] == [
        "Starting export of events to jsonl",
        f"Exported 4 events ({path.stat().st_size} bytes)",
    ]
    steps = rows(own_engine, JobProgressRow, request.job_id, JobProgressRow.id)
    assert [(s.progress, s.processed, s.total) for s in steps] == [(100, 4, 4)]


def test_a_job_type_nobody_knows_fails_once_with_the_reason(services, own_producer, own_engine):
    request = job_requested("defragment", params={})
    send(own_producer, request)
    job = finished_job(own_engine, request.job_id, timeout=90)
    assert (job.status, job.error_type) == ("failed", "LookupError")
    assert job.error_message == "unknown job type 'defragment'"
    attempts = rows(own_engine, JobAttemptRow, request.job_id, JobAttemptRow.attempt)
    assert [(a.attempt, a.status) for a in attempts] == [(1, "failed")]


def test_bad_parameters_fail_without_a_retry(services, own_producer, own_engine):
    request = job_requested("export", params={"format": "xml"})
    send(own_producer, request)
    job = finished_job(own_engine, request.job_id, timeout=90)
    assert (job.status, job.error_type, job.attempt) == ("failed", "ValidationError", 1)
    assert "format" in job.error_message


def test_after_a_restart_a_cancelled_job_never_starts_and_a_finished_one_never_reruns(
    services, own_stack, own_producer, own_engine, camera, data_dir
):
    done = job_requested("export", params={"camera_id": camera})
    send(own_producer, done)
    assert finished_job(own_engine, done.job_id, timeout=90).status == "completed"
    services["runner"].stop()
    pending = job_requested("export", params={"camera_id": camera})
    send(
        own_producer,
        pending,
        JobCancelRequested(job_id=pending.job_id, requested_by="alice"),
    )
    services["runner"] = start_runner(own_stack, data_dir)
    cancelled = finished_job(own_engine, pending.job_id, timeout=90)
    assert (cancelled.status, cancelled.started_at) == ("cancelled", None)
    assert rows(own_engine, JobTransitionRow, pending.job_id, JobTransitionRow.id)[-1].reason == (
        "Cancelled by alice"
    )
    assert not (data_dir / "exports" / f"{pending.job_id}.csv").exists()
    assert [
        type(e).__name__ for e in read_topic(own_stack.kafka_bootstrap, JOBS, pending.job_id)
    ] == [
        "JobRequested",
        "JobCancelRequested",
        "JobCancelled",
    ]
    # The restarted runner read the completed job back and left it alone.
    again = job_requested("export", params={"camera_id": camera})
    send(own_producer, again)
    assert finished_job(own_engine, again.job_id, timeout=90).status == "completed"
    # On the topic, as any other service sees it: the finished job ran once.
    events = read_topic(own_stack.kafka_bootstrap, JOBS, done.job_id)
    assert [type(e).__name__ for e in events if not isinstance(e, JobProgressed | JobLogged)] == [
        "JobRequested",
        "JobStarted",
        "JobCompleted",
    ]


def test_a_runner_killed_mid_export_hands_the_job_on_and_it_completes_once(
    services, own_stack, own_producer, own_engine, camera, data_dir
):
    clean = job_requested("export", params={"camera_id": camera})
    send(own_producer, clean)
    expected = finished_job(own_engine, clean.job_id, timeout=90).result
    # The export's first query waits on a lock: the runner is mid-attempt when it is killed.
    with own_engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        request = job_requested("export", params={"camera_id": camera})
        send(own_producer, request)
        watch = lambda: [  # noqa: E731
            type(e).__name__ for e in read_topic(own_stack.kafka_bootstrap, JOBS, request.job_id)
        ]
        wait_for(lambda: "JobStarted" in watch(), timeout=60, what="the first attempt")
        services["runner"].kill()
        blocker.rollback()
    services["runner"] = start_runner(own_stack, data_dir)
    job = finished_job(own_engine, request.job_id, timeout=90)
    assert job.status == "completed"
    assert {k: v for k, v in job.result.items() if k != "file_name"} == {
        k: v for k, v in expected.items() if k != "file_name"
    }
    attempts = rows(own_engine, JobAttemptRow, request.job_id, JobAttemptRow.attempt)
    assert [(a.attempt, a.status) for a in attempts] == [(1, "abandoned"), (2, "completed")]
    assert [n for n in watch() if n in ("JobStarted", "JobCompleted")] == [
        "JobStarted",
        "JobStarted",
        "JobCompleted",
    ]
    assert sorted(p.name for p in (data_dir / "exports").iterdir() if request.job_id in p.name) == [
        f"{request.job_id}.csv"
    ]


@pytest.fixture(scope="module")
def api_url(own_stack, data_dir) -> str:
    port = free_port()
    process = own_stack.start_app(
        "api", name="jobs-api", API_PORT=str(port), DATA_DIR=str(data_dir)
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: httpx.get(f"{url}/api/jobs/types", timeout=2).status_code == 200,
        timeout=60,
        what="the API",
    )
    yield url
    process.stop()


def vigil(*args: str, api_url: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vigil.cli", *args],
        env={**os.environ, "VIGIL_API_URL": api_url},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_vigil_export_shows_progress_and_writes_the_file(
    services, api_url, own_engine, camera, tmp_path
):
    out = tmp_path / "events.jsonl"
    done = vigil(
        "export", "--camera-id", camera, "--format", "jsonl", "--out", str(out), api_url=api_url
    )
    assert done.returncode == 0, done.stderr
    assert "exporting" in done.stdout + done.stderr  # the progress bar's label
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(line["camera_id"], line["risk_score"]) for line in lines] == [
        (camera, 0),
        (camera, 20),
        (camera, 40),
        (camera, 60),
    ]
    job_id = done.stderr.split("export job ", 1)[1].split()[0]
    assert f"sha256 {hashlib.sha256(out.read_bytes()).hexdigest()}" in done.stdout
    shown = vigil("jobs", "show", job_id, api_url=api_url)
    assert shown.returncode == 0, shown.stderr
    assert f"{job_id}  export  completed  100%" in shown.stdout
    assert "- -> pending  Job created by api" in shown.stdout
    assert "pending -> running  Worker job-runner picked up job (attempt 1 of 3)" in shown.stdout
    assert "running -> completed  Completed" in shown.stdout
    listed = vigil("jobs", "list", "--status", "completed", api_url=api_url)
    assert job_id in listed.stdout


def test_vigil_jobs_prints_the_apis_refusal(services, api_url):
    done = vigil("jobs", "cancel", "job_nobody", api_url=api_url)
    assert done.returncode == 1
    assert done.stderr.strip() == "error 404: job job_nobody not found"


def test_an_export_aborted_midway_ends_aborted_and_leaves_no_file(
    services, api_url, own_stack, own_producer, own_engine, camera, data_dir
):
    with own_engine.connect() as blocker:
        blocker.execute(text("LOCK TABLE events IN ACCESS EXCLUSIVE MODE"))
        request = job_requested("export", params={"camera_id": camera, "format": "jsonl"})
        send(own_producer, request)
        wait_for(
            lambda: any(
                isinstance(e, JobStarted)
                for e in read_topic(own_stack.kafka_bootstrap, JOBS, request.job_id)
            ),
            timeout=60,
            what="the export to start",
        )
        send(own_producer, JobAbortRequested(job_id=request.job_id, requested_by="carol"))
        heard = "Abort requested by carol; stopping at the next check"
        wait_for(
            lambda: any(
                isinstance(e, JobLogged) and e.message == heard
                for e in read_topic(own_stack.kafka_bootstrap, JOBS, request.job_id)
            ),
            timeout=30,
            what="the runner to hear the abort",
        )
        blocker.rollback()
    job = finished_job(own_engine, request.job_id, timeout=90)
    assert (job.status, job.message) == ("aborted", "Aborted on request")
    assert list((data_dir / "exports").glob(f"*{request.job_id}*")) == []
    logs = rows(own_engine, JobLogRow, request.job_id, JobLogRow.id)
    assert [log.message for log in logs][-1] == "Export aborted; the partial file was removed"
    refused = httpx.post(f"{api_url}/api/jobs/{request.job_id}/abort", timeout=30)
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"job {request.job_id} is aborted: only a running job can be aborted"
    )
