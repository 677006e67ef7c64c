"""What a requeue sends, which letters it can take, and how a clear names the letters."""

from __future__ import annotations

import json

import pytest

from api.dead_letters import cleared_events, requeue_letters, requeue_value
from api.errors import DeliveryIncomplete, status_of
from api.queries.dlq import QUEUES, why_not_requeueable
from schemas.codec import decode, encode
from schemas.topics import DLQ_DETECTION, IMAGES
from tests.factories import image_event, letter_row
from tests.fakes import FakeSender


def test_requeue_value_decodes_to_the_original_event():
    event = image_event(file_path="/cams/front_door/é.jpg")
    assert decode(IMAGES, requeue_value(json.loads(encode(event)))) == event


def test_requeue_value_is_compact_utf8_json():
    assert requeue_value({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_a_json_letter_from_a_vigil_topic_can_be_requeued():
    assert why_not_requeueable(letter_row()) is None


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"source_topic": None, "error_type": "PathOutsideCameraRoot"}, "refused before it"),
        ({"original_encoding": "text"}, "not JSON (kept as text)"),
        ({"original_encoding": "base64"}, "not JSON (kept as base64)"),
        ({"source_topic": "someone.elses"}, "someone.elses is not a Vigil topic"),
    ],
)
def test_letters_that_cannot_be_requeued_say_why(values, reason):
    assert reason in (why_not_requeueable(letter_row(**values)) or "")


def test_cleared_events_are_one_per_camera_in_order():
    pending = [("a", "1"), ("b", "2"), ("a", "3"), (None, "4")]
    events = cleared_events("analysis", pending)
    assert [(key, e.stage, e.dead_letter_ids) for key, e in events] == [
        ("a", "analysis", ("1", "3")),
        ("b", "analysis", ("2",)),
        (None, "analysis", ("4",)),
    ]


def test_cleared_events_split_a_big_camera():
    pending = [("a", str(i)) for i in range(5)]
    events = cleared_events("detection", pending, per_event=2)
    assert [e.dead_letter_ids for _, e in events] == [("0", "1"), ("2", "3"), ("4",)]
    assert cleared_events("detection", []) == []


def test_queue_names_follow_the_spec():
    assert {name: q.stage for name, q in QUEUES.items()} == {
        "dlq:detection_queue": "detection",
        "dlq:enrichment_queue": "enrichment",
        "dlq:analysis_queue": "analysis",
    }
    assert [q.short_name for q in QUEUES.values()] == [
        "detection_queue",
        "enrichment_queue",
        "analysis_queue",
    ]


DETECTION_QUEUE = QUEUES["dlq:detection_queue"]


def _image_letters(*cameras: str):
    return [
        letter_row(
            dead_letter_id=f"letter-{camera}",
            camera_id=camera,
            original=json.loads(encode(image_event(camera_id=camera))),
        )
        for camera in cameras
    ]


def test_requeue_sends_originals_then_records_where_each_went():
    sender = FakeSender()
    letters = _image_letters("a", "b")
    assert requeue_letters(sender, DETECTION_QUEUE, letters) == ["letter-a", "letter-b"]
    originals, records = sender.stored[:2], sender.stored[2:]
    assert [(m.topic, m.key) for m in originals] == [(IMAGES.name, "a"), (IMAGES.name, "b")]
    assert [decode(IMAGES, m.value).camera_id for m in originals] == ["a", "b"]
    requeued = [decode(DLQ_DETECTION, m.value) for m in records]
    assert [(m.topic, m.key) for m in records] == [(DLQ_DETECTION.name, c) for c in "ab"]
    assert [(r.dead_letter_id, r.requeued_partition, r.requeued_offset) for r in requeued] == [
        ("letter-a", 1, 0),
        ("letter-b", 1, 1),
    ]


def test_requeue_records_only_what_kafka_took_and_says_what_it_refused():
    sender = FakeSender(refuse=("b",))
    with pytest.raises(DeliveryIncomplete) as raised:
        requeue_letters(sender, DETECTION_QUEUE, _image_letters("a", "b", "c"))
    assert status_of(raised.value) == 503
    assert "1 were not acknowledged on their source topic" in raised.value.detail
    records = [decode(DLQ_DETECTION, m.value) for m in sender.stored if m.topic != IMAGES.name]
    assert [r.dead_letter_id for r in records] == ["letter-a", "letter-c"]


def test_requeue_warns_when_the_requeue_was_not_recorded():
    sender = FakeSender(refuse_topic=DLQ_DETECTION.name)
    with pytest.raises(DeliveryIncomplete) as raised:
        requeue_letters(sender, DETECTION_QUEUE, _image_letters("a"))
    assert "DeadLetterRequeued was not acknowledged" in raised.value.detail
    assert "another requeue would send them again" in raised.value.detail
