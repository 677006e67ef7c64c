"""What every stage does around its handlers: decode or dead-letter, decide, publish, give up."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from schemas.codec import encode
from schemas.dead_letters import DeadLettered
from schemas.topics import DETECTIONS, DLQ_DETECTION, IMAGES
from streams.errors import InvalidImage
from streams.retry import RetryExhausted
from streams.stage import Failure, Outcome, Publish, Received, Stage
from tests.factories import detections_event, image_event

STAGE = Stage("detection", "worker-1/detection")


def _received(value: bytes | None, key: bytes | None = b"front_door") -> Received:
    return Received(topic=IMAGES.name, partition=2, offset=41, key=key, value=value)


def test_parse_returns_the_event_of_the_topic():
    image = image_event()
    assert STAGE.parse(_received(encode(image))) == image


def test_undecodable_message_is_dead_lettered_with_its_bytes_and_position():
    item = STAGE.parse(_received(b"\x00\x01 not json"))
    assert isinstance(item, Publish)
    letter = item.message
    assert (item.topic, item.key) == (DLQ_DETECTION, "front_door")
    assert isinstance(letter, DeadLettered)
    assert (letter.error_type, letter.attempt_count) == ("UndecodableMessage", 1)
    assert "message is not JSON" in letter.error
    assert (letter.source_topic, letter.source_partition, letter.source_offset) == (
        IMAGES.name,
        2,
        41,
    )
    assert (letter.original, letter.original_encoding) == ("AAEgbm90IGpzb24=", "base64")
    assert (letter.stage, letter.producer, letter.camera_id) == (
        "detection",
        "worker-1/detection",
        "front_door",
    )


def test_future_schema_version_is_dead_lettered_as_unsupported():
    raw = encode(image_event()).replace(b'"schema_version":1', b'"schema_version":9')
    item = STAGE.parse(_received(raw, key=None))
    assert isinstance(item, Publish)
    assert item.message.error_type == "UnsupportedSchemaVersion"
    assert item.key is None and item.message.camera_id is None
    assert item.message.original == json.loads(raw)


def test_an_outcome_publishes_in_order_then_the_dead_letter():
    image = image_event(camera_id="driveway")
    produced = detections_event(image, ["person"])
    first, second = Publish(DETECTIONS, "driveway", produced), Publish(IMAGES, "driveway", image)
    outcome = Outcome(publish=(first, second), failure=Failure(InvalidImage("bad"), attempts=1))

    sent = STAGE.publications(_received(encode(image)), image, outcome)
    assert sent[:2] == [first, second]
    letter = sent[2].message
    assert (sent[2].topic, sent[2].key) == (DLQ_DETECTION, "driveway")
    assert (letter.error_type, letter.error, letter.camera_id) == (
        "InvalidImage",
        "bad",
        "driveway",
    )
    assert letter.trace_id == image.trace_id
    assert letter.original == json.loads(encode(image))


async def test_decide_takes_a_plain_function_too():
    image = image_event()
    item = Publish(IMAGES, image.camera_id, image)
    outcome = await STAGE.decide(image, lambda: Outcome(publish=(item,)))
    assert (outcome.state, outcome.publish) == (None, (item,))


async def test_unexpected_failure_is_dead_lettered_and_records_nothing():
    image = image_event(camera_id="porch")

    async def handler() -> Outcome:
        raise KeyError("boom")

    outcome = await STAGE.decide(image, handler)
    assert outcome.state is None and outcome.publish == ()
    [item] = STAGE.publications(_received(encode(image)), image, outcome)
    assert (item.topic, item.message.error_type, item.message.error) == (
        DLQ_DETECTION,
        "KeyError",
        "'boom'",
    )
    assert item.message.camera_id == "porch"


def test_failure_after_retries_keeps_attempts_and_times():
    first, last = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 0, 7, tzinfo=UTC)
    failure = Failure.after(
        RetryExhausted(TimeoutError("slow"), 3, first, last), context={"raw_answer": "x"}
    )
    produced = detections_event(image_event(), [])
    sent = STAGE.publications(_received(encode(produced)), produced, Outcome(failure=failure))
    letter = sent[0].message
    assert (letter.attempt_count, letter.first_failed_at, letter.last_failed_at) == (3, first, last)
    assert (letter.error_type, letter.context) == ("TimeoutError", {"raw_answer": "x"})
