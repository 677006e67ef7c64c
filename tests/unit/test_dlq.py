"""What a requeue sends, which letters it can take, and how a clear names the letters."""

from __future__ import annotations

import json

import pytest

from api.dead_letters import cleared_events, requeue_value
from api.queries.dlq import QUEUES, why_not_requeueable
from projections.tables import DeadLetterRow
from schemas.codec import decode, encode
from schemas.topics import IMAGES
from tests.unit.test_codec import _image


def _letter(**values) -> DeadLetterRow:
    defaults = {
        "source_topic": IMAGES.name,
        "original_encoding": "json",
        "error_type": "TimeoutError",
    }
    return DeadLetterRow(**{**defaults, **values})


def test_requeue_value_decodes_to_the_original_event():
    event = _image(file_path="/cams/front_door/é.jpg")
    assert decode(IMAGES, requeue_value(json.loads(encode(event)))) == event


def test_requeue_value_is_compact_utf8_json():
    assert requeue_value({"a": [1, "é"]}) == '{"a":[1,"é"]}'.encode()


def test_a_json_letter_from_a_vigil_topic_can_be_requeued():
    assert why_not_requeueable(_letter()) is None


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
    assert reason in (why_not_requeueable(_letter(**values)) or "")


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
