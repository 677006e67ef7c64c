"""Three workers in one group, one killed (SIGKILL) and one stopped (SIGTERM) mid-stream:
an outside read-committed consumer of every topic sees each image announced, detected,
enriched and batched once, each batch opened, closed and analysed once, and Postgres holds
each image's detections once."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.tables import DetectionRow, Image
from schemas.analysis import ModelCallAudited, SecurityEventRecorded
from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched
from schemas.detections import DetectionsProduced
from schemas.enrichments import DetectionsEnriched
from schemas.images import ImageReceived
from schemas.topics import (
    AI_AUDIT,
    BATCHES,
    DEAD_LETTER_TOPICS,
    DETECTIONS,
    ENRICHMENTS,
    IMAGES,
    SECURITY_EVENTS,
)
from tests.support import drop, new_camera_id, read_topic, variant, wait_for

CAMERAS = 4
PER_CAMERA = 50
SCALE_ENV = {
    # The analyst on Triton that answers at once: what is counted here is delivery, and the
    # 135M LLM takes minutes over the ~600 detections (test_security_events runs it).
    "ANALYST_MODEL": "scripted-analyst",
    "FILE_STABLE_S": "0.3",
    "WATCH_INTERVAL_S": "0.25",
    # A few batches per camera (every one is analysed by the LLM, seconds each): cut by the
    # window and by the pauses the kills make.
    "BATCH_WINDOW_S": "45",
    "BATCH_IDLE_S": "5",
    "BATCH_CHECK_INTERVAL_S": "0.5",
}


@pytest.fixture(scope="module")
def camera_root(tmp_path_factory):
    return tmp_path_factory.mktemp("scale-cameras")


@pytest.fixture(scope="module")
def workers(stack, camera_root):
    env = {"CAMERA_ROOT": str(camera_root), **SCALE_ENV}
    started = {
        name: stack.start_app("worker", name=name, WORKER_ID=name, **env)
        for name in ("scale-a", "scale-b", "scale-c")
    }
    projector = stack.start_app("projector", name="scale-projector", **env)
    yield started
    for process in (projector, *started.values()):
        process.stop()
        stack.apps.remove(process)


def detected(engine, cameras: list[str]) -> int:
    with Session(engine) as session:
        return session.scalar(
            select(func.count())
            .select_from(Image)
            .where(Image.camera_id.in_(cameras), Image.status == "detected")
        )


def detections_per_image(engine, cameras: list[str]) -> Counter:
    with Session(engine) as session:
        rows = session.execute(
            select(DetectionRow.image_id, DetectionRow.position, func.count())
            .where(DetectionRow.camera_id.in_(cameras))
            .group_by(DetectionRow.image_id, DetectionRow.position)
        ).all()
    return Counter({(image_id, position): n for image_id, position, n in rows})


def of_type(messages: list, kind: type) -> list:
    return [m for m in messages if isinstance(m, kind)]


def test_killed_and_stopped_workers_leave_every_topic_with_each_message_once(
    stack, workers, camera_root, engine, samples
):
    cameras = [new_camera_id(f"scale{n}") for n in range(CAMERAS)]
    for n in range(PER_CAMERA):
        for index, camera_id in enumerate(cameras):
            data = variant(samples, "zidane.jpg", 5000 + index * PER_CAMERA + n)
            drop(camera_root, camera_id, f"{n}.jpg", data)
    total = CAMERAS * PER_CAMERA

    wait_for(lambda: detected(engine, cameras) >= total // 5, timeout=180, what="a fifth detected")
    workers["scale-a"].kill()
    wait_for(lambda: detected(engine, cameras) >= total // 2, timeout=180, what="half detected")
    workers["scale-b"].stop()
    wait_for(lambda: detected(engine, cameras) == total, timeout=300, what="every image detected")

    bootstrap = stack.kafka_bootstrap

    def ours(topic) -> dict[str, list]:
        """The topic as an outside read-committed consumer reads it, by camera."""
        by_camera: dict[str, list] = {camera_id: [] for camera_id in cameras}
        for message in read_topic(bootstrap, topic, cameras):
            by_camera[message.camera_id].append(message)
        return by_camera

    def analysed() -> bool:
        # Every camera's batches closed (the timers closed the last ones) and analysed.
        batches, events = ours(BATCHES), ours(SECURITY_EVENTS)
        for camera_id in cameras:
            opened = {m.batch_id for m in of_type(batches[camera_id], BatchOpened)}
            closed = {m.batch_id for m in of_type(batches[camera_id], BatchClosed)}
            done = {m.batch_id for m in of_type(events[camera_id], SecurityEventRecorded)}
            if not opened or not opened == closed == done:
                return False
        return True

    wait_for(analysed, timeout=300, what="every batch closed and analysed", interval=2)
    images, detections, enrichments = ours(IMAGES), ours(DETECTIONS), ours(ENRICHMENTS)
    batches, events, audits = ours(BATCHES), ours(SECURITY_EVENTS), ours(AI_AUDIT)
    for camera_id in cameras:
        announced = Counter(m.image_id for m in of_type(images[camera_id], ImageReceived))
        assert len(announced) == PER_CAMERA and set(announced.values()) == {1}, announced
        produced = of_type(detections[camera_id], DetectionsProduced)
        assert Counter(m.image_id for m in produced) == announced
        enriched = of_type(enrichments[camera_id], DetectionsEnriched)
        assert Counter(m.image_id for m in enriched) == announced

        # zidane.jpg has people in it: every image joins a batch, once.
        batched = of_type(batches[camera_id], DetectionsBatched)
        assert Counter(m.image_id for m in batched) == announced
        for kind in (BatchOpened, BatchClosed):
            counts = Counter(m.batch_id for m in of_type(batches[camera_id], kind))
            assert set(counts.values()) == {1}, (kind.__name__, counts)
        closed = Counter(m.batch_id for m in of_type(batches[camera_id], BatchClosed))
        in_batches = Counter(
            (d.image_id, d.position)
            for b in of_type(batches[camera_id], BatchClosed)
            for d in b.detections
        )
        assert set(in_batches.values()) == {1}
        assert {image_id for image_id, _ in in_batches} == set(announced)

        recorded = of_type(events[camera_id], SecurityEventRecorded)
        assert Counter(m.batch_id for m in recorded) == closed
        calls = of_type(audits[camera_id], ModelCallAudited)
        assert Counter(a.batch_id for a in calls if a.outcome == "success") == closed

    for topic in DEAD_LETTER_TOPICS.values():
        assert not any(ours(topic).values()), topic.name

    rows = detections_per_image(engine, cameras)
    assert set(rows.values()) == {1}
    assert len({image_id for image_id, _ in rows}) == total
