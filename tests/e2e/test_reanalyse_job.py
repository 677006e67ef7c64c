"""The reanalyse job on a broker and a database of this module's own, with the real worker
(and the real LLM on the session's Triton), projector and runner: the closed batches of a
time range, read back from `vigil.batches` (some written as BatchClosed v1), get their
event's next analysis version; a runner killed midway hands the job on, and no version is
written twice."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.tables import EventAnalysisRow, JobAttemptRow, JobItemRow, JobLogRow
from schemas.analysis import ModelCallAudited, PromptReplayed, SecurityEventRecorded
from schemas.codec import encode
from schemas.jobs import JobAbortRequested
from schemas.topics import AI_AUDIT, BATCHES, JOBS, SECURITY_EVENTS
from tests.factories import closed_batch, job_requested, v1_document
from tests.support import finished_job, new_camera_id, publish, read_topic, wait_for


def start_runner(own_stack):
    return own_stack.start_app("runner", name="reanalyse-runner", WORKER_ID="reanalyse-runner")


@pytest.fixture(scope="module")
def services(own_stack, tmp_path_factory):
    processes = {
        "worker": own_stack.start_app(
            "worker",
            name="reanalyse-worker",
            CAMERA_ROOT=str(tmp_path_factory.mktemp("reanalyse-cameras")),
        ),
        "projector": own_stack.start_app("projector", name="reanalyse-projector"),
        "runner": start_runner(own_stack),
    }
    yield processes
    for process in processes.values():
        process.stop()


def versions(own_engine, batch_id: str) -> list[tuple[int, str | None]]:
    with Session(own_engine) as session:
        rows = session.execute(
            select(EventAnalysisRow.analysis_version, EventAnalysisRow.job_id)
            .where(EventAnalysisRow.batch_id == batch_id)
            .order_by(EventAnalysisRow.analysis_version)
        )
        return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
def analysed(services, own_producer, own_engine):
    """Three batches of a camera in the range, one before it, one of another camera: each
    analysed once by the pipeline (version 1)."""
    camera, other = new_camera_id("again"), new_camera_id("left")
    now = datetime.now(UTC)
    start = now - timedelta(hours=1)
    batches = {
        "in": [
            closed_batch(
                ["person", "car"],
                at=now - timedelta(minutes=m),
                camera_id=camera,
                batch_id=f"b_{camera}_{m}",
            )
            for m in (30, 20, 10)
        ],
        "before": [
            closed_batch(
                ["person"],
                at=start - timedelta(hours=2),
                camera_id=camera,
                batch_id=f"b_{camera}_before",
            )
        ],
        "other": [
            closed_batch(
                ["car"], at=now - timedelta(minutes=15), camera_id=other, batch_id=f"b_{other}"
            )
        ],
    }
    everything = [b for group in batches.values() for b in group]
    # Two go out as BatchClosed v1, as Vigil wrote them before image_count: the analysis
    # stage, the job reading the topic back and the projector read them through the upcaster.
    older = {batches["in"][0].batch_id, batches["other"][0].batch_id}
    for batch in everything:
        value = (
            json.dumps(v1_document(batch)).encode() if batch.batch_id in older else encode(batch)
        )
        publish(own_producer, BATCHES.name, batch.camera_id, value)
    wait_for(
        lambda: all(versions(own_engine, b.batch_id) == [(1, None)] for b in everything),
        timeout=180,
        what="the pipeline to analyse the five batches",
    )
    return {"camera": camera, "start": start, "end": now + timedelta(minutes=1), **batches}


def request(own_producer, analysed: dict, start: datetime | None = None) -> str:
    job = job_requested(
        "reanalyse",
        queue="reanalyse",
        params={
            "camera_id": analysed["camera"],
            "start": (start or analysed["start"]).isoformat(),
            "end": analysed["end"].isoformat(),
        },
    )
    publish(own_producer, JOBS.name, job.job_id, encode(job))
    return job.job_id


def recorded_for(own_stack, job_id: str) -> Counter:
    """Per batch, how many SecurityEventRecorded the job's analyses put on vigil.events."""
    return Counter(
        e.batch_id
        for e in read_topic(own_stack.kafka_bootstrap, SECURITY_EVENTS)
        if isinstance(e, SecurityEventRecorded) and e.job_id == job_id
    )


def test_reanalyse_writes_the_next_version_of_every_event_in_the_range_only(
    own_stack, own_producer, own_engine, own_api_client, analysed
):
    before = {b.batch_id: versions(own_engine, b.batch_id) for b in analysed["in"]}
    job_id = request(own_producer, analysed)
    job = finished_job(own_engine, job_id)

    assert job.status == "completed", job.error_message
    assert job.result == {"batches": 3, "reanalysed": 3, "failed": 0, "versions_written": 3}
    for batch_id, earlier in before.items():
        assert versions(own_engine, batch_id) == [*earlier, (len(earlier) + 1, job_id)]
    for batch in analysed["before"] + analysed["other"]:
        assert job_id not in [by for _, by in versions(own_engine, batch.batch_id)]
    assert versions(own_engine, analysed["other"][0].batch_id) == [(1, None)]
    assert recorded_for(own_stack, job_id) == {b.batch_id: 1 for b in analysed["in"]}
    listed = own_api_client.get("/api/events", params={"camera_id": analysed["camera"]}).json()
    shown = {e["batch_id"]: e["analysis_version"] for e in listed["events"]}
    before_range = analysed["before"][0].batch_id
    assert shown == {
        **{batch_id: len(earlier) + 1 for batch_id, earlier in before.items()},
        before_range: len(versions(own_engine, before_range)),
    }


def test_a_runner_killed_mid_reanalyse_hands_it_on_and_no_version_is_written_twice(
    services, own_stack, own_producer, own_engine, analysed
):
    first = {b.batch_id: len(versions(own_engine, b.batch_id)) for b in analysed["in"]}
    job_id = request(own_producer, analysed)

    def one_done():
        with Session(own_engine) as session:
            return session.scalars(select(JobItemRow).where(JobItemRow.job_id == job_id)).first()

    wait_for(one_done, timeout=120, what="the first batch reanalysed")
    services["runner"].kill()
    services["runner"] = start_runner(own_stack)
    job = finished_job(own_engine, job_id)
    # A last job on the same camera (same partition): once its batch is done, the worker has
    # also worked through every command sent before it, a second attempt's included.
    newest = analysed["in"][-1].started_at
    last = request(own_producer, analysed, start=newest - timedelta(seconds=1))
    assert finished_job(own_engine, last).result["reanalysed"] == 1

    assert job.status == "completed", job.error_message
    assert (job.result["batches"], job.result["reanalysed"], job.result["versions_written"]) == (
        3,
        3,
        3,
    )
    with Session(own_engine) as session:
        attempts = session.scalars(
            select(JobAttemptRow)
            .where(JobAttemptRow.job_id == job_id)
            .order_by(JobAttemptRow.attempt)
        ).all()
    assert [(a.attempt, a.status) for a in attempts] == [(1, "abandoned"), (2, "completed")]
    for batch in analysed["in"]:
        mine = [v for v, by in versions(own_engine, batch.batch_id) if by == job_id]
        assert mine == [first[batch.batch_id] + 1]
    assert recorded_for(own_stack, job_id) == {b.batch_id: 1 for b in analysed["in"]}


def test_an_abort_stops_a_reanalyse_midway_and_says_how_far_it_got(
    own_producer, own_engine, analysed
):
    job_id = request(own_producer, analysed)
    wait_for(
        lambda: versions_by(own_engine, job_id) >= 1, timeout=120, what="a first batch reanalysed"
    )
    abort = JobAbortRequested(job_id=job_id, requested_by="test")
    publish(own_producer, JOBS.name, job_id, encode(abort))
    job = finished_job(own_engine, job_id)

    assert job.status == "aborted"
    with Session(own_engine) as session:
        logs = session.scalars(
            select(JobLogRow.message).where(JobLogRow.job_id == job_id).order_by(JobLogRow.id)
        ).all()
    [said] = [line for line in logs if line.startswith("Aborted after")]
    assert said.endswith("of 3 batches; what was done stays")
    assert "Abort requested by test; stopping at the next check" in logs
    # The chunk's commands were sent before the abort: the worker still finishes them, each
    # once, and their versions stay (nothing is left running for the next test).
    wait_for(lambda: versions_by(own_engine, job_id) == 3, timeout=120, what="the chunk done")


def versions_by(own_engine, job_id: str) -> int:
    with Session(own_engine) as session:
        return session.scalar(select(func.count()).where(EventAnalysisRow.job_id == job_id)) or 0


def test_a_prompt_replay_compares_the_candidate_on_each_batch_and_writes_no_event(
    own_stack, own_producer, own_engine, analysed
):
    other = analysed["other"][0]
    # The default prompt's room (512 tokens): at 256 the small CPU model's answer was once cut
    # inside a string, and the batch rightly dead-lettered as not JSON.
    candidate = {
        "system_prompt": "Rate every scene as calm.",
        "temperature": 0.0,
        "max_tokens": 512,
    }
    job = job_requested(
        "prompt_replay",
        queue="prompt_replay",
        params={"days": 1, "camera_id": other.camera_id, "candidate": candidate},
    )
    publish(own_producer, JOBS.name, job.job_id, encode(job))
    done = finished_job(own_engine, job.job_id)

    assert done.status == "completed", done.error_message
    [row] = done.result["events"]
    assert (row["batch_id"], row["current_version"]) == (other.batch_id, 1)
    change = abs(row["candidate"]["risk_score"] - row["current"]["risk_score"])
    same_level = row["candidate"]["risk_level"] == row["current"]["risk_level"]
    assert {k: v for k, v in done.result.items() if k != "events"} == {
        "batches": 1,
        "failed": 0,
        "replayed": 1,
        "mean_abs_score_change": change,
        "level_changes": 0 if same_level else 1,
        "agreement_rate": 1.0 if same_level else 0.0,
    }
    assert versions(own_engine, other.batch_id) == [(1, None)]
    audit = read_topic(own_stack.kafka_bootstrap, AI_AUDIT, other.camera_id)
    replayed = [e for e in audit if isinstance(e, PromptReplayed) and e.job_id == job.job_id]
    trials = [
        (e.input_summary.split(":")[0], e.prompt_version, e.outcome)
        for e in audit
        if isinstance(e, ModelCallAudited) and e.input_summary.startswith("prompt replay")
    ]
    assert len(replayed) == 1
    assert trials == [
        ("prompt replay, current", 1, "success"),
        ("prompt replay, candidate", None, "success"),
    ]
