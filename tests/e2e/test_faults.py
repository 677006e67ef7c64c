"""Fault injection on the real services: Triton stopped, the broker restarted, a
decompression bomb (workers killed mid-stream: `test_scale_out.py`). Nothing is lost;
counts are checked exactly."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.tables import DeadLetterAction, DeadLetterRow, DetectionRow, Image
from tests.factories import png_claiming
from tests.support import drop, new_camera_id, variant, wait_for

FAULT_ENV = {
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    "RETRY_BASE_DELAY_S": "0.1",
    "RETRY_MAX_DELAY_S": "0.3",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "3",
    "CIRCUIT_BREAKER_RECOVERY_TIMEOUT": "2",
    # Nothing here is about batches: none closes, so no analysis competes for the CPU.
    "BATCH_WINDOW_S": "3600",
    "BATCH_IDLE_S": "3600",
}


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory):
    return tmp_path_factory.mktemp("fault-cameras")


@pytest.fixture(scope="module")
def pipeline(stack, camera_root, api_client):
    env = {"CAMERA_ROOT": str(camera_root), **FAULT_ENV}
    handles = {
        "env": env,
        "worker": stack.start_app("worker", name="fault-worker", WORKER_ID="fault-worker", **env),
        "projector": stack.start_app("projector", name="fault-projector", **env),
    }
    # Up before any fault is injected: a worker that cannot reach Kafka while it starts exits
    # (in production its service restarts it). Its first breaker report, projected, says
    # both the worker and the projector are connected.
    wait_for(
        lambda: "fault-worker" in (breaker(api_client, "centernet") or {}).get("workers", {}),
        timeout=120,
        what="the fault worker's first breaker report",
    )
    yield handles
    handles["projector"].stop()
    handles["worker"].stop()


def image_states(engine, camera_id: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            select(Image.status, func.count())
            .where(Image.camera_id == camera_id)
            .group_by(Image.status)
        ).all()
    return dict(rows)


def letters(engine, camera_id: str, stage: str = "detection") -> list[DeadLetterRow]:
    with Session(engine) as session:
        return list(
            session.scalars(
                select(DeadLetterRow).where(
                    DeadLetterRow.camera_id == camera_id, DeadLetterRow.stage == stage
                )
            )
        )


def detections_per_image(engine, camera_id: str) -> dict[str, int]:
    with Session(engine) as session:
        rows = session.execute(
            select(DetectionRow.image_id, func.count())
            .where(DetectionRow.camera_id == camera_id)
            .group_by(DetectionRow.image_id)
        ).all()
    return dict(rows)


def actions_of(engine, dead: list[DeadLetterRow]) -> list[str | None]:
    """What became of each letter (requeued, cleared), None while it is pending."""
    with Session(engine) as session:
        return [
            action.action if (action := session.get(DeadLetterAction, d.dead_letter_id)) else None
            for d in dead
        ]


def breaker(api_client, name: str) -> dict | None:
    return api_client.get("/api/system/circuit-breakers").json()["circuit_breakers"].get(name)


def test_triton_down_dead_letters_every_image_and_requeue_brings_each_back_once(
    stack, pipeline, camera_root, api_client, engine, samples
):
    if stack.triton is None:
        pytest.skip("Triton is external (TRITON_URL); the test cannot stop it")
    camera_id = new_camera_id("tritondown")
    count = 6
    wait_for(lambda: breaker(api_client, "centernet"), timeout=60, what="a breaker report")
    stack.triton.stop()
    try:
        for n in range(count):
            drop(camera_root, camera_id, f"{n}.jpg", variant(samples, "bus.jpg", 100 + n))
        dead = wait_for(
            lambda: len(letters(engine, camera_id)) == count and letters(engine, camera_id),
            timeout=120,
            what="every image dead-lettered",
        )
        reasons = {letter.error_type for letter in dead}
        assert reasons <= {"DetectorUnavailable", "CircuitOpen"}
        assert "CircuitOpen" in reasons, "the breaker never opened"
        assert breaker(api_client, "centernet")["state"] in {"open", "half_open"}
    finally:
        stack.triton.start()
    assert image_states(engine, camera_id) == {"failed": count}
    reply = api_client.post("/api/dlq/requeue-all/dlq:detection_queue")
    assert reply.status_code == 200, reply.text
    wait_for(
        lambda: image_states(engine, camera_id) == {"detected": count},
        timeout=120,
        what="every image detected after the requeue",
    )
    per_image = detections_per_image(engine, camera_id)
    assert len(per_image) == count
    assert len(set(per_image.values())) == 1, "the same photo gave different detection counts"
    # The letters stay as history, each requeued once; no image failed again.
    assert actions_of(engine, letters(engine, camera_id)) == ["requeued"] * count
    listed = api_client.get("/api/dlq/jobs/dlq:detection_queue", params={"limit": 1000}).json()
    assert not [j for j in listed["jobs"] if j["camera_id"] == camera_id]
    wait_for(
        lambda: breaker(api_client, "centernet")["state"] == "closed",
        timeout=60,
        what="the breaker to close again",
    )


def test_reset_command_closes_the_breaker_everywhere(
    stack, pipeline, camera_root, api_client, samples
):
    if stack.triton is None:
        pytest.skip("Triton is external (TRITON_URL); the test cannot stop it to open a breaker")
    camera_id = new_camera_id("reset")
    wait_for(lambda: breaker(api_client, "centernet"), timeout=60, what="a breaker report")
    stack.triton.stop()
    try:
        # One image fails its 3 attempts: the breaker's threshold in this module.
        drop(camera_root, camera_id, "bus.jpg", variant(samples, "bus.jpg", 150))
        wait_for(
            lambda: breaker(api_client, "centernet")["state"] == "open",
            timeout=60,
            what="the breaker to open",
        )
    finally:
        stack.triton.start()
    # Nothing calls the detector now: only the reset can close the breaker.
    assert breaker(api_client, "centernet")["state"] == "open"
    reply = api_client.post("/api/system/circuit-breakers/centernet/reset")
    assert reply.status_code == 200, reply.text
    assert (reply.json()["status"], reply.json()["state"]) == ("reset", "closed")
    assert breaker(api_client, "centernet")["state"] == "closed"
    unknown = api_client.post("/api/system/circuit-breakers/no-such-model/reset")
    assert unknown.status_code == 404
    assert "centernet" in unknown.json()["detail"]


def test_broker_restart_needs_no_manual_step(
    stack, pipeline, camera_root, api_client, engine, samples
):
    if stack.kafka is None:
        pytest.skip("Kafka is external (KAFKA_BOOTSTRAP_SERVERS); the test cannot restart it")
    stack.kafka.restart()
    camera_id = new_camera_id("kafkarestart")
    drop(camera_root, camera_id, "bus.jpg", variant(samples, "bus.jpg", 200))
    wait_for(
        lambda: image_states(engine, camera_id) == {"detected": 1},
        timeout=180,
        what="a detection after the broker restart",
    )
    assert pipeline["worker"].alive() and pipeline["projector"].alive()
    answers = []

    def kafka_healthy():
        answers.append(api_client.get("/api/system/health").json())
        return answers[-1]["services"]["kafka"]["status"] == "healthy"

    try:
        wait_for(kafka_healthy, timeout=60, what="the API to see Kafka again")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the last answer: {answers[-1]}") from None


def test_decompression_bomb_is_dead_lettered_unread(pipeline, camera_root, engine):
    camera_id = new_camera_id("bomb")
    drop(camera_root, camera_id, "huge.png", png_claiming(60000, 60000))
    [letter] = wait_for(lambda: letters(engine, camera_id), timeout=60, what="the dead letter")
    assert letter.error_type == "InvalidImage"
    assert "image too large: 60000x60000" in letter.error
    assert letter.attempt_count == 1
