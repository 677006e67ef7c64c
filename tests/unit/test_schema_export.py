"""The JSON Schema files other services validate against match the models and accept real events."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from schemas.asyncapi import RECEIVERS, SENDERS, asyncapi_document
from schemas.codec import encode
from schemas.detections import BoundingBox, Detection, DetectionsProduced
from schemas.export import export_asyncapi, export_schemas, topic_schemas
from schemas.images import ImageReceived, image_id_for
from schemas.topics import ALL_TOPICS, DETECTIONS, IMAGES

CHECKED_IN = Path(__file__).resolve().parents[2] / "schemas" / "json"


def test_checked_in_schemas_are_current(tmp_path):
    """Each topic's schema and each type's current version are as the models make them (the
    older versions kept beside them are the rules' business: test_schema_versions)."""
    out = tmp_path / "json"
    written = {p.relative_to(out): p.read_text() for p in export_schemas(out)}
    stored = {
        p: (CHECKED_IN / p).read_text() if (CHECKED_IN / p).exists() else None for p in written
    }
    assert stored == written, "run `vigil schemas export` and commit schemas/json"


def test_the_checked_in_asyncapi_document_is_current(tmp_path):
    written = export_asyncapi(tmp_path / "asyncapi.yaml").read_text()
    stored = (CHECKED_IN.parent / "asyncapi.yaml").read_text()
    assert stored == written, "run `vigil schemas export` and commit schemas/asyncapi.yaml"


def test_the_asyncapi_document_has_every_topic_and_message_with_who_sends_and_reads_it():
    document = asyncapi_document()
    names = {t.name for t in ALL_TOPICS}
    assert set(document["channels"]) == names == set(SENDERS) == set(RECEIVERS)
    for topic in ALL_TOPICS:
        channel = document["channels"][topic.name]
        assert set(channel["messages"]) == {t.__name__ for t in topic.value_types}
        assert channel["bindings"]["kafka"]["topicConfiguration"]["retention.ms"] == -1
        actions = {
            (op["action"], op["tags"][0]["name"])
            for op in document["operations"].values()
            if op["channel"]["$ref"] == f"#/channels/{topic.name}"
        }
        assert {a for a, _ in actions} == {"send", "receive"}, topic.name
    message = document["components"]["messages"]["ImageReceived"]
    assert "traceparent" in message["headers"]["properties"]
    assert message["bindings"]["kafka"]["key"]["description"] == "the camera_id"
    assert message["payload"] == {"$ref": "#/components/schemas/ImageReceived"}
    assert "trace_id" in document["components"]["schemas"]["ImageReceived"]["properties"]


def test_every_topic_has_a_schema_naming_its_key():
    schemas = topic_schemas()
    assert set(schemas) == {t.name for t in ALL_TOPICS}
    assert {name: s["x-kafka-key"] for name, s in schemas.items()} == {
        t.name: t.key for t in ALL_TOPICS
    }
    assert {t.key for t in ALL_TOPICS} == {"camera_id", "job_id", "model", "name"}


def _image() -> ImageReceived:
    return ImageReceived(
        image_id=image_id_for("cam", "c" * 64),
        camera_id="cam",
        file_path="/cams/cam/a.jpg",
        sha256="c" * 64,
        size_bytes=5,
        file_modified_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def test_schema_accepts_encoded_events():
    schemas = topic_schemas()
    image = _image()
    produced = DetectionsProduced(
        image_id=image.image_id,
        camera_id="cam",
        file_path=image.file_path,
        image_width=10,
        image_height=10,
        detections=(
            Detection(
                label="person", class_id=0, confidence=0.5, bbox=BoundingBox(x1=0, y1=0, x2=1, y2=1)
            ),
        ),
        model_name="centernet",
        model_version="1",
        latency_ms=1.0,
        image_received_at=image.occurred_at,
    )
    jsonschema.validate(json.loads(encode(image)), schemas[IMAGES.name])
    jsonschema.validate(json.loads(encode(produced)), schemas[DETECTIONS.name])


def test_schema_refuses_a_bad_event():
    document = json.loads(encode(_image()))
    document["sha256"] = "not-a-digest"
    with pytest.raises(jsonschema.ValidationError, match="does not match"):
        jsonschema.validate(document, topic_schemas()[IMAGES.name])
