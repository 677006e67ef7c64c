"""/api/jobs writes (request, cancel, abort, delete, bulk-cancel), the job types and an
export's download, against the real Kafka and Postgres.

No runner runs here: a job's state is seeded into Postgres with the projector's own
handlers, and where a test needs the runner's answer, a thread plays the runner: it waits
for the API's request on `vigil.jobs`, then applies the answer to Postgres.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from jobs.export import ExportParams, export_path
from jobs.registry import JOB_TYPES
from schemas.jobs import (
    JobAborted,
    JobAbortRequested,
    JobCancelled,
    JobCancelRequested,
    JobCompleted,
    JobRequested,
)
from schemas.topics import JOBS
from tests.factories import apply, job_requested, job_run
from tests.support import read_topic

SHORT_WAIT_S = 0.3
LONG_WAIT_S = 15.0


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> object:
    return tmp_path_factory.mktemp("job-commands-data")


@pytest.fixture(scope="module")
def client(stack, data_dir) -> Iterator[TestClient]:
    """The API with a data directory of this module's own (where exports are found)."""
    with TestClient(create_app(stack.settings(data_dir=data_dir))) as client:
        yield client


def _waiting(client: TestClient, seconds: float) -> Iterator[None]:
    services = client.app.state.services
    saved = services.read_your_writes_wait_s
    services.read_your_writes_wait_s = seconds
    try:
        yield
    finally:
        services.read_your_writes_wait_s = saved


@pytest.fixture
def short(client) -> Iterator[None]:
    """The API waits only SHORT_WAIT_S for the read model, for one test."""
    yield from _waiting(client, SHORT_WAIT_S)


@pytest.fixture
def long(client) -> Iterator[None]:
    """The API waits long enough for the thread playing the runner, for one test."""
    yield from _waiting(client, LONG_WAIT_S)


def seed(engine, outcome: str | None = None, job_type: str = "export", **fields) -> JobRequested:
    """A job in Postgres: pending (outcome None), cancelled, or as job_run leaves it."""
    requested = job_requested(job_type, **fields)
    events: list = [requested]
    if outcome == "cancelled":
        events.append(JobCancelled(job_id=requested.job_id, reason="cancelled by api"))
    elif outcome is not None:
        events.extend(job_run(requested, outcome))
    apply(engine, *events)
    return requested


def on_topic(stack, job_id: str, kind: type) -> list:
    return [m for m in read_topic(stack.kafka_bootstrap, JOBS, job_id) if isinstance(m, kind)]


def status_of(client: TestClient, job_id: str) -> str:
    return client.get(f"/api/jobs/{job_id}").json()["status"]


# --- types -----------------------------------------------------------------------------


def test_types_list_exactly_the_registry(client):
    reply = client.get("/api/jobs/types")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "types": [
            {
                "type": name,
                "description": job.description,
                "supports_abort": job.supports_abort,
                "queue": job.queue,
                "params_schema": job.params.model_json_schema(),
            }
            for name, job in JOB_TYPES.items()
        ]
    }
    [export] = [t for t in reply.json()["types"] if t["type"] == "export"]
    assert export["supports_abort"] is True
    assert "format" in export["params_schema"]["properties"]


# --- request ---------------------------------------------------------------------------


def test_post_job_is_202_pending_and_requested_on_the_topic(client, stack):
    reply = client.post(
        "/api/jobs", json={"job_type": "export", "params": {"min_risk": "70", "format": "jsonl"}}
    )
    assert reply.status_code == 202, reply.text
    job = reply.json()
    expected_params = ExportParams(min_risk=70, format="jsonl").model_dump(mode="json")
    assert job["job_id"].startswith("job_") and len(job["job_id"]) == 20
    assert job["job_type"] == "export"
    assert job["status"] == "pending"
    assert job["progress"] == 0
    assert job["started_at"] is None and job["completed_at"] is None
    assert job["error_message"] is None and job["result"] is None
    assert job["metadata"] == expected_params
    [requested] = on_topic(stack, job["job_id"], JobRequested)
    assert requested.job_type == "export"
    assert requested.params == expected_params  # validated: "70" became 70, defaults filled
    assert requested.requested_by == "api"
    assert requested.queue == "export"
    assert requested.max_attempts == client.app.state.settings.job_max_attempts
    assert job["created_at"] == requested.occurred_at.isoformat().replace("+00:00", "Z")


def test_post_job_of_unknown_type_is_422_naming_the_known_types(client):
    reply = client.post("/api/jobs", json={"job_type": "nope", "params": {}})
    assert reply.status_code == 422, reply.text
    [error] = reply.json()["detail"]
    assert error["loc"] == ["body", "job_type"]
    assert "'nope'" in error["msg"] and "export" in error["msg"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xml"}, "format"), ({"min_risk": 101}, "min_risk"), ({"colour": 1}, "colour")],
)
def test_post_job_with_a_bad_param_is_422_naming_the_field(client, params, field):
    reply = client.post("/api/jobs", json={"job_type": "export", "params": params})
    assert reply.status_code == 422, reply.text
    assert [e["loc"] for e in reply.json()["detail"]] == [["body", "params", field]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"older_than_days": 0}, "older_than_days"),
        ({}, "older_than_days"),
        ({"older_than_days": 7, "camera_id": ""}, "camera_id"),
        ({"older_than_days": 7, "delete_images": "maybe"}, "delete_images"),
    ],
)
def test_post_cleanup_with_a_bad_param_is_422_naming_the_field(client, params, field):
    reply = client.post("/api/jobs", json={"job_type": "cleanup", "params": params})
    assert reply.status_code == 422, reply.text
    assert [e["loc"] for e in reply.json()["detail"]] == [["body", "params", field]]


REPROCESS = {"start": "2026-05-01T00:00:00Z", "end": "2026-05-02T00:00:00Z", "model": "yolo26"}


@pytest.mark.parametrize(
    ("params", "loc", "says"),
    [
        ({**REPROCESS, "end": "2026-04-30T00:00:00Z"}, ["body", "params"], "end must be after"),
        ({**REPROCESS, "start": "2026-05-01T00:00:00"}, ["body", "params", "start"], "timezone"),
        ({**REPROCESS, "model": ""}, ["body", "params", "model"], "at least 1"),
        ({k: v for k, v in REPROCESS.items() if k != "model"}, ["body", "params", "model"], ""),
    ],
)
def test_post_reprocess_with_bad_params_is_422_saying_which(client, params, loc, says):
    reply = client.post("/api/jobs", json={"job_type": "reprocess_detection", "params": params})
    assert reply.status_code == 422, reply.text
    [error] = reply.json()["detail"]
    assert error["loc"] == loc
    assert says in error["msg"]


def test_post_job_without_a_type_is_422(client):
    reply = client.post("/api/jobs", json={"params": {}})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "job_type"]


def test_events_export_requests_an_export_job(client, stack):
    reply = client.post(
        "/api/events/export", json={"camera_id": "front_door", "risk_level": "high"}
    )
    assert reply.status_code == 202, reply.text
    job = reply.json()
    assert job["job_type"] == "export" and job["status"] == "pending"
    [requested] = on_topic(stack, job["job_id"], JobRequested)
    assert requested.params == ExportParams(camera_id="front_door", risk_level="high").model_dump(
        mode="json"
    )
    assert job["metadata"] == requested.params


def test_events_export_with_a_bad_field_is_422(client):
    reply = client.post("/api/events/export", json={"format": "xml"})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "format"]


# --- cancel ----------------------------------------------------------------------------


def test_cancel_unknown_job_is_404(client):
    reply = client.post(f"/api/jobs/job_{uuid.uuid4().hex[:16]}/cancel")
    assert reply.status_code == 404
    assert reply.json()["error"] == "NotFound"


@pytest.mark.parametrize("outcome", ["running", "completed", "cancelled"])
def test_cancel_of_a_job_not_pending_is_409(client, engine, stack, outcome):
    job = seed(engine, outcome)
    reply = client.post(f"/api/jobs/{job.job_id}/cancel")
    assert reply.status_code == 409, reply.text
    assert f"is {outcome}" in reply.json()["detail"]
    assert "aborted instead" in reply.json()["detail"]
    assert on_topic(stack, job.job_id, JobCancelRequested) == []


def test_cancel_pending_job_unanswered_is_202_cancelling(client, engine, stack, short):
    job = seed(engine)
    reply = client.post(f"/api/jobs/{job.job_id}/cancel")
    assert reply.status_code == 202, reply.text
    assert reply.json()["job_id"] == job.job_id
    assert reply.json()["status"] == "cancelling"
    [asked] = on_topic(stack, job.job_id, JobCancelRequested)
    assert asked.requested_by == "api"
    assert status_of(client, job.job_id) == "pending"


def test_cancel_pending_job_answered_is_200_cancelled(client, engine, consumer_of, long):
    job = seed(engine)

    def runner(command: JobCancelRequested) -> None:
        apply(engine, JobCancelled(job_id=command.job_id, reason="cancelled by api"))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobCancelRequested) and m.job_id == job.job_id, runner
    ) as seen:
        reply = client.post(f"/api/jobs/{job.job_id}/cancel")
    assert [key for key, _ in seen] == [job.job_id]
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "job_id": job.job_id,
        "status": "cancelled",
        "message": "Job cancelled successfully",
    }


def test_cancel_of_a_job_that_started_first_is_409(client, engine, consumer_of, long):
    job = seed(engine)

    def runner(_command) -> None:
        apply(engine, *job_run(job, "running"))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobCancelRequested) and m.job_id == job.job_id, runner
    ):
        reply = client.post(f"/api/jobs/{job.job_id}/cancel")
    assert reply.status_code == 409, reply.text
    assert "started before the cancel took effect" in reply.json()["detail"]


# --- abort -----------------------------------------------------------------------------


def test_abort_unknown_job_is_404(client):
    assert client.post(f"/api/jobs/job_{uuid.uuid4().hex[:16]}/abort").status_code == 404


@pytest.mark.parametrize("outcome", [None, "completed"])
def test_abort_of_a_job_not_running_is_409(client, engine, stack, outcome):
    job = seed(engine, outcome)
    reply = client.post(f"/api/jobs/{job.job_id}/abort")
    assert reply.status_code == 409, reply.text
    assert f"is {outcome or 'pending'}" in reply.json()["detail"]
    assert on_topic(stack, job.job_id, JobAbortRequested) == []


def test_abort_of_a_type_without_abort_support_is_409(client, engine, stack):
    job_type = f"unregistered-{uuid.uuid4().hex[:8]}"  # declares no abort support
    job = seed(engine, "running", job_type=job_type)
    reply = client.post(f"/api/jobs/{job.job_id}/abort")
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"] == f"{job_type} jobs cannot be aborted"
    assert on_topic(stack, job.job_id, JobAbortRequested) == []


def test_abort_running_export_unanswered_is_202_aborting(client, engine, stack, short):
    job = seed(engine, "running")
    reply = client.post(f"/api/jobs/{job.job_id}/abort")
    assert reply.status_code == 202, reply.text
    assert reply.json()["job_id"] == job.job_id
    assert reply.json()["status"] == "aborting"
    [asked] = on_topic(stack, job.job_id, JobAbortRequested)
    assert asked.requested_by == "api"


def test_abort_running_export_answered_is_200_aborted(client, engine, consumer_of, long):
    job = seed(engine, "running")

    def runner(command) -> None:
        apply(engine, JobAborted(job_id=command.job_id, attempt=1, reason="abort requested"))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobAbortRequested) and m.job_id == job.job_id, runner
    ):
        reply = client.post(f"/api/jobs/{job.job_id}/abort")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "job_id": job.job_id,
        "status": "aborted",
        "message": "Abort signal sent to worker",
    }


def test_abort_of_a_job_that_completed_first_is_409(client, engine, consumer_of, long):
    job = seed(engine, "running")

    def runner(command) -> None:
        apply(engine, JobCompleted(job_id=command.job_id, attempt=1, result={"rows": 1}))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobAbortRequested) and m.job_id == job.job_id, runner
    ):
        reply = client.post(f"/api/jobs/{job.job_id}/abort")
    assert reply.status_code == 409, reply.text
    assert "completed before the abort took effect" in reply.json()["detail"]


# --- delete ----------------------------------------------------------------------------


def test_delete_unknown_job_is_404(client):
    assert client.delete(f"/api/jobs/job_{uuid.uuid4().hex[:16]}").status_code == 404


def test_delete_pending_job_cancels_it(client, engine, stack, short):
    job = seed(engine)
    reply = client.delete(f"/api/jobs/{job.job_id}")
    assert reply.status_code == 202, reply.text
    assert reply.json()["action"] == "cancelling"
    assert reply.json()["previous_status"] == "pending"
    assert len(on_topic(stack, job.job_id, JobCancelRequested)) == 1
    assert on_topic(stack, job.job_id, JobAbortRequested) == []


def test_delete_pending_job_answered_is_cancelled(client, engine, consumer_of, long):
    job = seed(engine)

    def runner(command) -> None:
        apply(engine, JobCancelled(job_id=command.job_id, reason="cancelled by api"))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobCancelRequested) and m.job_id == job.job_id, runner
    ):
        reply = client.delete(f"/api/jobs/{job.job_id}")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "job_id": job.job_id,
        "action": "cancelled",
        "previous_status": "pending",
        "message": "Job cancelled",
    }


def test_delete_running_job_aborts_it(client, engine, stack, short):
    job = seed(engine, "running")
    reply = client.delete(f"/api/jobs/{job.job_id}")
    assert reply.status_code == 202, reply.text
    assert reply.json()["action"] == "aborting"
    assert reply.json()["previous_status"] == "running"
    assert len(on_topic(stack, job.job_id, JobAbortRequested)) == 1
    assert on_topic(stack, job.job_id, JobCancelRequested) == []


def test_delete_running_job_answered_is_aborted(client, engine, consumer_of, long):
    job = seed(engine, "running")

    def runner(command) -> None:
        apply(engine, JobAborted(job_id=command.job_id, attempt=1, reason="abort requested"))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobAbortRequested) and m.job_id == job.job_id, runner
    ):
        reply = client.delete(f"/api/jobs/{job.job_id}")
    assert reply.status_code == 200, reply.text
    assert reply.json()["action"] == "aborted"
    assert reply.json()["previous_status"] == "running"


def test_abort_of_a_running_cleanup_is_409_and_nothing_is_asked(client, engine, stack):
    job = seed(engine, "running", job_type="cleanup", params={"older_than_days": 30})
    reply = client.post(f"/api/jobs/{job.job_id}/abort")
    assert reply.status_code == 409, reply.text
    assert reply.json()["detail"] == "cleanup jobs cannot be aborted"
    assert on_topic(stack, job.job_id, JobAbortRequested) == []


def test_delete_running_job_of_a_type_without_abort_is_409(client, engine):
    job = seed(engine, "running", job_type=f"unregistered-{uuid.uuid4().hex[:8]}")
    reply = client.delete(f"/api/jobs/{job.job_id}")
    assert reply.status_code == 409
    assert reply.json()["detail"].endswith("jobs cannot be aborted")


@pytest.mark.parametrize("outcome", ["completed", "failed", "aborted", "cancelled"])
def test_delete_finished_job_is_409(client, engine, stack, outcome):
    job = seed(engine, outcome)
    reply = client.delete(f"/api/jobs/{job.job_id}")
    assert reply.status_code == 409, reply.text
    assert f"already {outcome}" in reply.json()["detail"]
    assert read_topic(stack.kafka_bootstrap, JOBS, job.job_id) == []


# --- bulk cancel -----------------------------------------------------------------------


def test_bulk_cancel_answers_per_id_in_order(client, engine, stack, short):
    pending_a, pending_b = seed(engine), seed(engine)
    running, completed, failed = (
        seed(engine, "running"),
        seed(engine, "completed"),
        seed(engine, "failed"),
    )
    unknown = f"job_{uuid.uuid4().hex[:16]}"
    ids = [
        completed.job_id,
        pending_a.job_id,
        unknown,
        running.job_id,
        pending_b.job_id,
        failed.job_id,
    ]
    reply = client.post("/api/jobs/bulk-cancel", json={"job_ids": ids})
    assert reply.status_code == 202, reply.text  # the pending ones show no answer yet
    body = reply.json()
    assert [r["job_id"] for r in body["results"]] == ids
    assert [r["success"] for r in body["results"]] == [False, True, False, False, True, False]
    assert body["results"][0] == {
        "job_id": completed.job_id,
        "success": False,
        "error": "Job already completed",
    }
    assert body["results"][2]["error"] == "Job not found"
    assert body["results"][3]["error"] == "Job is running: abort it instead"
    assert body["results"][5]["error"] == "Job already failed"
    assert body["results"][1]["message"].startswith("Cancel requested")
    assert (body["successful"], body["failed"]) == (2, 4)
    for job in (pending_a, pending_b):
        assert len(on_topic(stack, job.job_id, JobCancelRequested)) == 1
    for job in (running, completed, failed):
        assert on_topic(stack, job.job_id, JobCancelRequested) == []


def test_bulk_cancel_answered_is_200_cancelled(client, engine, consumer_of, long):
    pending, completed = seed(engine), seed(engine, "completed")

    def runner(command) -> None:
        apply(engine, JobCancelled(job_id=command.job_id, reason="cancelled by api"))

    with consumer_of(
        JOBS, lambda m: isinstance(m, JobCancelRequested) and m.job_id == pending.job_id, runner
    ):
        reply = client.post(
            "/api/jobs/bulk-cancel", json={"job_ids": [pending.job_id, completed.job_id]}
        )
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "successful": 1,
        "failed": 1,
        "results": [
            {"job_id": pending.job_id, "success": True, "message": "Cancelled"},
            {"job_id": completed.job_id, "success": False, "error": "Job already completed"},
        ],
    }


@pytest.mark.parametrize("count", [0, 1001])
def test_bulk_cancel_of_no_or_too_many_ids_is_422(client, count):
    reply = client.post("/api/jobs/bulk-cancel", json={"job_ids": [f"j{i}" for i in range(count)]})
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "job_ids"]


# --- download --------------------------------------------------------------------------


def completed_export(engine, fmt: str = "csv", **fields) -> JobRequested:
    job = job_requested("export", params={"format": fmt}, **fields)
    started = job_run(job, "running")
    done = JobCompleted(
        job_id=job.job_id,
        attempt=1,
        result={"file_name": f"{job.job_id}.{fmt}", "format": fmt, "rows": 2},
        occurred_at=job.occurred_at + timedelta(seconds=20),
    )
    apply(engine, job, *started, done)
    return job


def test_download_unknown_job_is_404(client):
    reply = client.get(f"/api/jobs/job_{uuid.uuid4().hex[:16]}/download")
    assert reply.status_code == 404
    assert "not found" in reply.json()["detail"]


def test_download_of_a_job_not_an_export_is_404(client, engine):
    job = seed(engine, "completed", job_type=f"cleanup-{uuid.uuid4().hex[:8]}")
    reply = client.get(f"/api/jobs/{job.job_id}/download")
    assert reply.status_code == 404
    assert "only an export" in reply.json()["detail"]


@pytest.mark.parametrize("outcome", [None, "running", "failed"])
def test_download_of_an_export_not_completed_is_404(client, engine, outcome):
    job = seed(engine, outcome)
    reply = client.get(f"/api/jobs/{job.job_id}/download")
    assert reply.status_code == 404
    assert f"is {outcome or 'pending'}" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("fmt", "media_type"), [("csv", "text/csv"), ("jsonl", "application/x-ndjson")]
)
def test_download_streams_the_file(client, engine, data_dir, fmt, media_type):
    job = completed_export(engine, fmt)
    content = b"id,camera_id\n1,front_door\n2,\xc3\xa9t\xc3\xa9\n"
    path = export_path(client.app.state.settings.data_dir, job.job_id, fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    reply = client.get(f"/api/jobs/{job.job_id}/download")
    assert reply.status_code == 200, reply.text
    assert reply.content == content
    assert reply.headers["content-type"].startswith(media_type)
    assert f'filename="{job.job_id}.{fmt}"' in reply.headers["content-disposition"]


def test_download_of_a_removed_file_is_410(client, engine):
    job = completed_export(engine)
    path = export_path(client.app.state.settings.data_dir, job.job_id, "csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id\n")
    assert client.get(f"/api/jobs/{job.job_id}/download").status_code == 200
    path.unlink()
    reply = client.get(f"/api/jobs/{job.job_id}/download")
    assert reply.status_code == 410, reply.text
    assert reply.json()["error"] == "Gone"
