import pytest

from schemas.codec import UndecodableMessage, UnsupportedSchemaVersion, decode, encode
from schemas.images import ImageReceived, image_id_for
from schemas.system import DeadLetterRequeued, DeadLettersCleared
from schemas.topics import ALL_TOPICS, DEAD_LETTER_TOPICS, DETECTIONS, ENRICHMENTS, IMAGES
from tests.factories import enriched_image, image_event


def test_round_trip_keeps_every_field():
    event = image_event()
    assert decode(IMAGES, encode(event)) == event


def test_image_id_is_stable_per_camera_and_content():
    assert image_id_for("a", "f" * 64) == image_id_for("a", "f" * 64)
    assert image_id_for("a", "f" * 64) != image_id_for("b", "f" * 64)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty message value"),
        (b"\xff\xfe", "not JSON"),
        (b"not json", "not JSON"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"event_type": "Other"}', "'Other' is not one of ['ImageReceived']"),
    ],
)
def test_decode_rejects_with_reason(raw, reason):
    with pytest.raises(UndecodableMessage, match=reason.replace("[", r"\[").replace("]", r"\]")):
        decode(IMAGES, raw)


def test_decode_names_the_failing_fields():
    raw = encode(image_event()).replace(b'"size_bytes":1234', b'"size_bytes":-1')
    with pytest.raises(UndecodableMessage, match="size_bytes: Input should be greater than"):
        decode(IMAGES, raw)


def test_decode_refuses_a_future_schema_version():
    raw = encode(image_event()).replace(b'"schema_version":1', b'"schema_version":2')
    with pytest.raises(UnsupportedSchemaVersion, match="schema_version 2 is newer than"):
        decode(IMAGES, raw)


def test_a_topic_refuses_another_topics_event():
    with pytest.raises(UndecodableMessage, match=r"vigil\.detections"):
        decode(DETECTIONS, encode(image_event()))


def test_topic_names_are_unique():
    names = [t.name for t in ALL_TOPICS]
    assert len(names) == len(set(names))


def test_a_dead_letter_topic_carries_letters_and_what_became_of_them():
    requeued = DeadLetterRequeued(
        dead_letter_id="d" * 36,
        stage="detection",
        source_topic=IMAGES.name,
        requeued_partition=1,
        requeued_offset=7,
    )
    cleared = DeadLettersCleared(stage="detection", dead_letter_ids=("a", "b"))
    for topic in DEAD_LETTER_TOPICS.values():
        assert decode(topic, encode(requeued)) == requeued
        assert decode(topic, encode(cleared)) == cleared


def test_enrichments_must_name_the_model_that_made_them():
    at = image_event().occurred_at
    enriched = enriched_image("a", ["person"], at=at, enrich_first=True)
    raw = encode(enriched).replace(b'"model_name":"crop-attributes"', b'"model_name":null')
    with pytest.raises(UndecodableMessage, match=r"model_name'\] unset"):
        decode(ENRICHMENTS, raw)
    unenriched = enriched_image("b", ["person"], at=at)
    assert decode(ENRICHMENTS, encode(unenriched)).model_name is None


def test_the_supported_schema_version_is_the_fields_default():
    event = image_event()
    assert event.schema_version == ImageReceived.model_fields["schema_version"].default == 1
    assert decode(IMAGES, encode(event)).schema_version == 1
