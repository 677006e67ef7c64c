"""The cleanup job on a broker and a database of this module's own: it deletes what is older
than the cut-off for its camera (rows of every read model, resolved dead letters, and with
`delete_images` the files under the camera root), and a rebuild of the read models from the
topics (`vigil replay`) leaves the same rows deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from projections.db import reset_read_models
from projections.tables import (
    AuditRow,
    BatchMember,
    BatchRow,
    DeadLetterRow,
    DetectionRow,
    EnrichmentRow,
    EvaluationRow,
    EventAnalysisRow,
    Image,
    PromptTestRow,
    RetentionCutoffRow,
    SecurityEventRow,
)
from schemas.codec import encode
from schemas.jobs import RetentionApplied
from schemas.topics import JOBS
from tests.factories import camera_history, job_requested
from tests.support import finished_job, new_camera_id, publish, read_topic, wait_for

# Each table by the id a row is known by first: the entity the row belongs to.
KEYS = {
    "images": (Image.image_id,),
    "detections": (DetectionRow.image_id, DetectionRow.position),
    "enrichments": (EnrichmentRow.image_id, EnrichmentRow.position),
    "batches": (BatchRow.batch_id, BatchRow.status),
    "batch_detections": (BatchMember.batch_id, BatchMember.image_id, BatchMember.position),
    "events": (SecurityEventRow.batch_id, SecurityEventRow.analysis_version),
    "event_analyses": (EventAnalysisRow.batch_id, EventAnalysisRow.analysis_version),
    "ai_audit": (AuditRow.audit_id,),
    "dead_letters": (DeadLetterRow.dead_letter_id,),
    "event_evaluations": (EvaluationRow.evaluation_id,),
    "prompt_tests": (PromptTestRow.test_id,),
}


# Rows of the four histories the test publishes (two detections an image, two dead letters).
PROJECTED = {
    "images": 4,
    "detections": 8,
    "enrichments": 4,
    "batches": 4,
    "batch_detections": 8,
    "events": 4,
    "event_analyses": 4,
    "ai_audit": 4,
    "dead_letters": 8,
    "event_evaluations": 4,
    "prompt_tests": 4,
}


def deleted_ids(history) -> set[str]:
    """The ids a cleanup of `camera_history`'s facts removes rows of: the image, the batch,
    the audited call, the requeued dead letter (its pending twin stays), the evaluation and
    the prompt test."""
    events = [event for _, event in history]
    image, batch, audit, requeued = events[0], events[3], events[7], events[8]
    evaluation, test = events[11], events[12]
    return {
        image.image_id,
        batch.batch_id,
        audit.audit_id,
        str(requeued.event_id),
        evaluation.evaluation_id,
        test.test_id,
    }


def whole(rows: dict[str, list[tuple]], ids: set[str] | None = None, histories: int = 4) -> bool:
    """Whether `rows` (a snapshot) holds all of `histories` camera histories (those whose
    rows are keyed by `ids`; None: every row), their batches completed. The projector
    commits what it reads in batches of its own, so one topic's rows can be there before
    another's: a snapshot taken before it all is in is not what a replay rebuilds."""
    mine = {t: [k for k in keys if ids is None or k[0] in ids] for t, keys in rows.items()}
    counts = all(len(mine[t]) == n // 4 * histories for t, n in PROJECTED.items())
    return counts and all(status == "completed" for _, status in mine["batches"])


def snapshot(engine) -> dict[str, list[tuple]]:
    with Session(engine) as session:
        return {
            table: sorted(tuple(row) for row in session.execute(select(*columns)))
            for table, columns in KEYS.items()
        }


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory):
    return tmp_path_factory.mktemp("cameras")


@pytest.fixture(scope="module")
def projector(own_stack):
    process = own_stack.start_app("projector", name="cleanup-projector")
    yield process
    process.stop()


@pytest.fixture(scope="module")
def runner(own_stack, camera_root, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("cleanup-data")
    process = own_stack.start_app(
        "runner",
        name="cleanup-runner",
        WORKER_ID="cleanup-runner",
        DATA_DIR=str(data_dir),
        CAMERA_ROOT=str(camera_root),
    )
    yield process
    process.stop()


def test_cleanup_deletes_what_is_older_than_the_cutoff_and_a_replay_keeps_it_deleted(
    own_stack, own_engine, own_producer, projector, runner, camera_root, tmp_path
):
    camera, other = new_camera_id("clean"), new_camera_id("keep")
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=40), now - timedelta(hours=1)
    files = {
        "old": camera_root / camera / "old.jpg",
        "recent": camera_root / camera / "recent.jpg",
        "other": camera_root / other / "old.jpg",
        "outside": tmp_path / "outside.jpg",  # an old row pointing out of the camera root
    }
    for path in files.values():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\xff\xd8 not really a jpeg")
    histories = {
        "old": camera_history(camera, old, str(files["old"])),
        "outside": camera_history(camera, old + timedelta(minutes=5), str(files["outside"])),
        "recent": camera_history(camera, recent, str(files["recent"])),
        "other": camera_history(other, old, str(files["other"])),
    }
    for name, history in histories.items():
        for topic, event in history:
            publish(own_producer, topic.name, other if name == "other" else camera, encode(event))
    before = wait_for(
        lambda: (s := snapshot(own_engine)) and whole(s) and s,
        timeout=60,
        what="the four histories projected",
    )

    request = job_requested(
        "cleanup",
        queue="cleanup",
        params={"older_than_days": 30, "camera_id": camera, "delete_images": True},
    )
    publish(own_producer, JOBS.name, request.job_id, encode(request))
    job = finished_job(own_engine, request.job_id, timeout=90)

    assert job.status == "completed", job.error_message
    per_history = {
        "event_analyses": 1,
        "events": 1,
        "batch_detections": 2,
        "batches": 1,
        "enrichments": 1,
        "detections": 2,
        "images": 1,
        "ai_audit": 1,
        "event_evaluations": 1,
        "prompt_tests": 1,
        "dead_letters": 1,  # the requeued one; the pending letter stays in its queue
    }
    assert job.result == {
        "cutoff": (request.occurred_at - timedelta(days=30)).isoformat(),
        "camera_id": camera,
        "rows_deleted": 2 * sum(per_history.values()),
        "deleted": {table: 2 * n for table, n in per_history.items()},
        "image_files": {"deleted": 1, "already_missing": 0, "outside_camera_root": 1},
    }
    assert not files["old"].exists()
    assert all(files[name].exists() for name in ("recent", "other", "outside"))

    gone = {key for name in ("old", "outside") for key in deleted_ids(histories[name])}
    expected = {
        table: [key for key in keys if key[0] not in gone] for table, keys in before.items()
    }
    assert snapshot(own_engine) == expected
    assert [len(expected[t]) for t in ("images", "events", "dead_letters")] == [2, 2, 6]

    # Facts from before the cut-off that arrive after the cleanup (a late upload, a requeue)
    # stay out of the read models; a fresh one published behind them shows they were read.
    late, fresh = camera_history(camera, old, "/late.jpg"), camera_history(camera, now, "/new.jpg")
    for topic, event in late + fresh:
        publish(own_producer, topic.name, camera, encode(event))
    fresh_ids = deleted_ids(fresh) | {str(fresh[9][1].event_id)}
    wait_for(
        lambda: whole(snapshot(own_engine), fresh_ids, histories=1),
        timeout=60,
        what="the fresh history projected, every topic of it",
    )
    # A dead letter stays until it is resolved; the late one requeued before the cleanup goes.
    late_pending = str(late[9][1].event_id)
    after = snapshot(own_engine)
    assert {t: [k for k in keys if k[0] not in fresh_ids] for t, keys in after.items()} == {
        **expected,
        "dead_letters": sorted([*expected["dead_letters"], (late_pending,)]),
    }

    # Nothing of it is lost to other services: one RetentionApplied for the job on the topic.
    on_topic = read_topic(own_stack.kafka_bootstrap, JOBS, request.job_id)
    assert sum(isinstance(e, RetentionApplied) for e in on_topic) == 1

    projector.stop()
    reset_read_models(own_engine, "vigil-projector")
    assert snapshot(own_engine)["images"] == []
    replayed = own_stack.start_app("projector", name="cleanup-projector-replay")
    try:
        finished_job(own_engine, request.job_id, timeout=90)
        rebuilt = wait_for(
            lambda: (s := snapshot(own_engine)) == after and s,
            timeout=90,
            what="the replay to rebuild the read models as the cleanup left them",
        )
        with Session(own_engine) as session:
            assert session.get(
                RetentionCutoffRow, request.job_id
            ).cutoff == request.occurred_at - timedelta(days=30)
    finally:
        replayed.stop()
    assert rebuilt == after
