"""Dropping the read models and replaying the topics gives the same query answers.

On a broker and a database of this module's own: it empties every read model."""

from __future__ import annotations

import uuid

from projections.db import reset_read_models
from schemas.codec import encode
from schemas.topics import DETECTIONS, DLQ_DETECTION, IMAGES
from streams.dead_letters import dead_letter
from tests.factories import detections_event, image_event
from tests.support import new_camera_id, wait_for

VOLATILE = {"id", "created_at"}  # assigned by the database on insert


def answers(own_api_client, camera_id: str) -> dict:
    detections = own_api_client.get(
        "/api/detections", params={"camera_id": camera_id, "limit": 1000}
    ).json()
    jobs = own_api_client.get("/api/dlq/jobs/dlq:detection_queue", params={"limit": 1000}).json()
    return {
        "count": detections["count"],
        "detections": [
            {k: v for k, v in d.items() if k not in VOLATILE} for d in detections["detections"]
        ],
        "dead_letters": sorted(
            j["dead_letter_id"] for j in jobs["jobs"] if j["camera_id"] == camera_id
        ),
    }


def test_replay_after_dropping_the_read_models_gives_the_same_answers(
    own_stack, own_engine, own_producer, own_api_client
):
    camera_id = new_camera_id("replay")
    group = f"projector-{uuid.uuid4().hex[:8]}"
    images = [image_event(camera_id, digest=f"{n + 500:064x}") for n in range(5)]
    for n, image in enumerate(images):
        own_producer.produce(IMAGES.name, key=camera_id.encode(), value=encode(image))
        labels = ["person", "car", "dog"][: n % 3 + 1]
        own_producer.produce(
            DETECTIONS.name, key=camera_id.encode(), value=encode(detections_event(image, labels))
        )
    letter = dead_letter(
        stage="detection",
        raw=encode(images[0]),
        error=ValueError("boom"),
        producer="test",
        source_topic=IMAGES.name,
        source_partition=0,
        source_offset=0,
        camera_id=camera_id,
    )
    own_producer.produce(DLQ_DETECTION.name, key=camera_id.encode(), value=encode(letter))
    own_producer.flush(10)

    first = own_stack.start_app("projector", name=f"{group}-1", PROJECTOR_GROUP=group)
    try:
        before = wait_for(
            lambda: (
                (a := answers(own_api_client, camera_id))["count"] == 1 + 2 + 3 + 1 + 2
                and a["dead_letters"]
                and a
            ),
            timeout=90,
            what="the first projection",
        )
    finally:
        first.stop()
    emptied = reset_read_models(own_engine, group)
    assert {"images", "detections", "dead_letters", "events", "batches"} <= set(emptied)
    assert answers(own_api_client, camera_id)["count"] == 0

    second = own_stack.start_app("projector", name=f"{group}-2", PROJECTOR_GROUP=group)
    try:
        after = wait_for(
            lambda: (a := answers(own_api_client, camera_id)) == before and a,
            timeout=180,
            what="the replay to give the same answers",
        )
    finally:
        second.stop()
    assert after == before
