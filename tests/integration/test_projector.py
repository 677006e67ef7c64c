"""The projection runner against real Kafka and Postgres: exactly once across crashes.

On a broker and a database of this module's own: the hundreds of detections it publishes
would otherwise wait for the workers of every later end-to-end module."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from projections.handlers import HANDLERS
from projections.runner import Projector
from projections.tables import DetectionRow, ProjectionOffset, ProjectionReject
from schemas.codec import encode
from schemas.detections import DetectionsProduced
from schemas.topics import DETECTIONS, IMAGES
from tests.factories import detections_event, image_event
from tests.support import Record, metric, new_camera_id, publish, wait_for
from vigil.devservices.procs import free_port
from vigil.metrics import exposition

# Enough messages for several of the projector's transactions (500 messages each), so that a
# kill at the first rows lands mid-stream.
IMAGES_IN_STREAM = 2000
LABELS = ["person", "car", "dog"]


def _count_rows(own_engine, camera_id: str) -> int:
    with Session(own_engine) as session:
        return session.scalar(
            select(func.count())
            .select_from(DetectionRow)
            .where(DetectionRow.camera_id == camera_id)
        )


def test_projector_killed_mid_stream_leaves_every_detection_once(
    own_stack, own_engine, own_producer
):
    camera_id = new_camera_id("proj")
    group = f"projector-{uuid.uuid4().hex[:8]}"
    for index in range(IMAGES_IN_STREAM):
        image = image_event(camera_id, digest=f"{index:064x}")
        own_producer.produce(IMAGES.name, key=camera_id.encode(), value=encode(image))
        own_producer.produce(
            DETECTIONS.name, key=camera_id.encode(), value=encode(detections_event(image, LABELS))
        )
    own_producer.flush(30)
    expected = IMAGES_IN_STREAM * len(LABELS)

    first = own_stack.start_app("projector", name=f"{group}-a", PROJECTOR_GROUP=group)
    wait_for(
        lambda: _count_rows(own_engine, camera_id) > 0, timeout=60, what="first rows", interval=0.02
    )
    first.kill()
    assert _count_rows(own_engine, camera_id) < expected, (
        "killed too late to test a crash mid-stream"
    )

    second = own_stack.start_app("projector", name=f"{group}-b", PROJECTOR_GROUP=group)
    try:
        wait_for(
            lambda: _count_rows(own_engine, camera_id) == expected, timeout=90, what="all rows"
        )
        with Session(own_engine) as session:
            per_image = session.execute(
                select(DetectionRow.image_id, func.count())
                .where(DetectionRow.camera_id == camera_id)
                .group_by(DetectionRow.image_id)
            ).all()
            offsets = session.scalars(
                select(ProjectionOffset).where(ProjectionOffset.consumer == group)
            ).all()
        assert len(per_image) == IMAGES_IN_STREAM
        assert {count for _, count in per_image} == {len(LABELS)}
        assert {o.topic for o in offsets} >= {IMAGES.name, DETECTIONS.name}
    finally:
        second.stop()


def test_undecodable_message_is_kept_as_a_reject_and_projection_continues(
    own_stack, own_engine, own_producer
):
    camera_id = new_camera_id("poison")
    group = f"projector-{uuid.uuid4().hex[:8]}"
    publish(own_producer, DETECTIONS.name, camera_id, b"{not json")
    image = image_event(camera_id)
    publish(own_producer, DETECTIONS.name, camera_id, encode(detections_event(image, ["person"])))
    port = free_port()
    projector = own_stack.start_app(
        "projector", name=group, PROJECTOR_GROUP=group, PROJECTOR_METRICS_PORT=str(port)
    )
    try:
        wait_for(lambda: _count_rows(own_engine, camera_id) == 1, timeout=60, what="the good event")
        # Its metrics, served by the process: the reject counted, and no lag once caught up.
        scrape = f"http://127.0.0.1:{port}/metrics"
        served = httpx.get(scrape, timeout=5, trust_env=False).text
        topic = {"topic": DETECTIONS.name}

        # Every reject of this projector's counted (the module's other tests publish poison
        # too, on any partition: the two agree once it has applied them all).
        def rejects_kept() -> int:
            with Session(own_engine) as session:
                return session.scalar(
                    select(func.count())
                    .select_from(ProjectionReject)
                    .where(
                        ProjectionReject.consumer == group,
                        ProjectionReject.topic == DETECTIONS.name,
                    )
                )

        wait_for(
            lambda: (
                metric(
                    httpx.get(scrape, timeout=5, trust_env=False).text,
                    "vigil_projector_rejects_total",
                    **topic,
                )
                == rejects_kept()
                >= 1
            ),
            timeout=30,
            what="the rejects counted as kept",
        )
        assert metric(served, "vigil_projector_records_total", **topic) >= 2
        assert metric(served, "vigil_projector_transaction_seconds_count") >= 1
        wait_for(
            lambda: (
                'vigil_projector_lag_records{partition="0",topic="vigil.detections"}'
                in (text := httpx.get(scrape, timeout=5, trust_env=False).text)
                and metric(text, "vigil_projector_lag_records", **topic) == 0
            ),
            timeout=30,
            what="no lag on vigil.detections",
        )
        with Session(own_engine) as session:
            rejects = session.scalars(
                select(ProjectionReject).where(
                    ProjectionReject.consumer == group, ProjectionReject.raw == "{not json"
                )
            ).all()
        assert len(rejects) == 1
        assert "message is not JSON" in rejects[0].error
    finally:
        projector.stop()


def test_projector_waits_out_a_postgres_outage(stack, own_stack, own_engine, own_producer):
    if stack.postgres is None:
        import pytest

        pytest.skip("Postgres is external (DATABASE_URL); the test cannot stop it")
    camera_id = new_camera_id("outage")
    group = f"projector-{uuid.uuid4().hex[:8]}"
    projector = own_stack.start_app("projector", name=group, PROJECTOR_GROUP=group)
    try:
        image = image_event(camera_id, digest="1" * 64)
        publish(
            own_producer, DETECTIONS.name, camera_id, encode(detections_event(image, ["person"]))
        )
        wait_for(lambda: _count_rows(own_engine, camera_id) == 1, timeout=60, what="first event")
        stack.postgres.stop()
        for index in range(20):
            image = image_event(camera_id, digest=f"{index + 100:064x}")
            own_producer.produce(
                DETECTIONS.name,
                key=camera_id.encode(),
                value=encode(detections_event(image, ["car", "bus"])),
            )
        own_producer.flush(10)
        wait_for(
            lambda: "unavailable" in projector.log_tail(200),
            timeout=30,
            what="the projector to notice the outage",
        )
        stack.postgres.start()
        own_engine.dispose()
        wait_for(lambda: _count_rows(own_engine, camera_id) == 41, timeout=90, what="catch-up")
        assert projector.alive()
        with Session(own_engine) as session:
            labels = session.execute(
                select(DetectionRow.image_id, func.string_agg(DetectionRow.label, ","))
                .where(DetectionRow.camera_id == camera_id)
                .group_by(DetectionRow.image_id)
            ).all()
        # Every event sent during the outage, each once: the first image's person, then
        # twenty images of a car and a bus.
        assert sorted(",".join(sorted(found.split(","))) for _, found in labels) == sorted(
            ["person"] + ["bus,car"] * 20
        )
    finally:
        projector.stop()


def test_event_the_database_refuses_is_kept_as_a_reject_and_projection_continues(
    own_stack, own_engine, own_producer
):
    camera_id = new_camera_id("refused")
    group = f"projector-{uuid.uuid4().hex[:8]}"
    too_long = detections_event(image_event(camera_id, digest="2" * 64), ["x" * 100])
    publish(own_producer, DETECTIONS.name, camera_id, encode(too_long))
    good = detections_event(image_event(camera_id, digest="3" * 64), ["person"])
    publish(own_producer, DETECTIONS.name, camera_id, encode(good))
    projector = own_stack.start_app("projector", name=group, PROJECTOR_GROUP=group)
    try:
        wait_for(lambda: _count_rows(own_engine, camera_id) == 1, timeout=60, what="the good event")
        with Session(own_engine) as session:
            [reject] = session.scalars(
                select(ProjectionReject).where(
                    ProjectionReject.consumer == group,
                    ProjectionReject.raw.contains(str(too_long.event_id)),
                )
            ).all()
            image = session.scalars(
                select(DetectionRow.image_id).where(DetectionRow.camera_id == camera_id)
            ).one()
        assert "StringDataRightTruncation" in reject.error
        assert image == good.image_id
        assert projector.alive()
    finally:
        projector.stop()


def test_a_refused_record_amid_a_batch_is_a_reject_and_the_rest_of_the_batch_is_applied(
    own_engine,
):
    """The batch is applied whole first; the refusal rolls that back, and the batch is
    applied again one record at a time: the records on both sides of the refused one are
    kept, and the offset moves past all three."""
    camera_id = new_camera_id("amid")
    before = detections_event(image_event(camera_id, digest="4" * 64), ["person"])
    refused = detections_event(image_event(camera_id, digest="5" * 64), ["x" * 100])
    after = detections_event(image_event(camera_id, digest="6" * 64), ["car", "dog"])
    consumer = f"amid-{uuid.uuid4().hex[:8]}"
    projector = Projector(own_engine, "127.0.0.1:9", consumer_name=consumer)
    records = [
        Record(DETECTIONS.name, offset, encode(event))
        for offset, event in enumerate((before, refused, after))
    ]
    counted_before = exposition()[0].decode()
    assert projector.apply(records) == {(DETECTIONS.name, 0): 3}
    counted = exposition()[0].decode()
    with Session(own_engine) as session:
        images = session.execute(
            select(DetectionRow.image_id, func.count())
            .where(DetectionRow.camera_id == camera_id)
            .group_by(DetectionRow.image_id)
        ).all()
        rejects = session.scalars(
            select(ProjectionReject.offset).where(ProjectionReject.consumer == consumer)
        ).all()
        stored = session.scalars(
            select(ProjectionOffset.next_offset).where(ProjectionOffset.consumer == consumer)
        ).all()
    assert sorted(images) == sorted([(before.image_id, 1), (after.image_id, 2)])
    assert rejects == [1]
    assert stored == [3]
    # The committed pass is counted, not the one rolled back.
    for name, moved in (
        ("vigil_projector_records_total", 3),
        ("vigil_projector_rejects_total", 1),
        ("vigil_projector_transaction_seconds_count", 1),
    ):
        labels = {} if name.endswith("_count") else {"topic": DETECTIONS.name}
        assert metric(counted, name, **labels) - metric(counted_before, name, **labels) == moved


def test_handlers_given_for_a_run_type_are_the_ones_applied(own_engine):
    """A projector given handlers of its own for a type the runs cover (fault injection)
    applies those, not the run handler."""
    seen: list[str] = []
    handlers = {
        **HANDLERS,
        DetectionsProduced: [lambda event, session: seen.append(event.image_id)],
    }
    projector = Projector(
        own_engine, "127.0.0.1:9", consumer_name=f"own-{uuid.uuid4().hex[:8]}", handlers=handlers
    )
    produced = detections_event(image_event(new_camera_id("own"), digest="7" * 64), ["person"])
    projector.apply([Record(DETECTIONS.name, 0, encode(produced))])
    assert seen == [produced.image_id]
