"""Schema compatibility rules: each event type's JSON Schema is kept per `schema_version`
(schemas/json/<topic>/<EventType>.v<N>.schema.json); a change a consumer would notice raises
the version and keeps an upcaster, and every reader decodes older versions through them."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import jsonschema
import pytest
from pydantic import Field, ValidationError, create_model

from bench.seed import history
from schemas.analysis import ReanalyseBatch, ReplayPrompt
from schemas.batches import BatchClosed
from schemas.codec import UndecodableMessage, UnsupportedSchemaVersion, decode
from schemas.compat import changes
from schemas.envelope import Message, version_of
from schemas.evaluation import EvaluateEvent, TestPrompt
from schemas.export import (
    IncompatibleSchemaChange,
    export_schemas,
    kept_versions,
    type_schema,
    version_problems,
)
from schemas.images import ImageReceived
from schemas.topics import ALL_TOPICS, BATCHES, IMAGES, TopicSpec
from schemas.upcasters import UPCASTERS
from tests.factories import carrying, closed_batch, v1_document

CHECKED_IN = Path(__file__).resolve().parents[2] / "schemas" / "json"
AT = datetime(2026, 11, 30, 12, tzinfo=UTC)


class Before(Message):
    event_type: Literal["Sample"] = "Sample"
    camera_id: str = Field(max_length=128)
    label: str | None
    kind: Literal["person", "vehicle", "animal"]
    confidence: float = Field(ge=0, le=1)
    note: str | None = None


class Removed(Message):
    event_type: Literal["Sample"] = "Sample"
    camera_id: str = Field(max_length=128)
    label: str | None
    kind: Literal["person", "vehicle", "animal"]
    confidence: float = Field(ge=0, le=1)


class Renamed(Message):
    event_type: Literal["Sample"] = "Sample"
    camera: str = Field(max_length=128)
    label: str | None
    kind: Literal["person", "vehicle", "animal"]
    confidence: float = Field(ge=0, le=1)
    note: str | None = None


class Narrowed(Message):
    event_type: Literal["Sample"] = "Sample"
    camera_id: str = Field(max_length=64)
    label: str
    kind: Literal["person", "vehicle"]
    confidence: float = Field(ge=0.5, le=1)
    note: str


class Added(Message):
    event_type: Literal["Sample"] = "Sample"
    camera_id: str = Field(max_length=128)
    label: str | None
    kind: Literal["person", "vehicle", "animal"]
    confidence: float = Field(ge=0, le=1)
    note: str | None = None
    zone: str


class Documented(Message):
    """Only the documentation differs."""

    event_type: Literal["Sample"] = "Sample"
    camera_id: str = Field(max_length=128, description="the camera")
    label: str | None = Field(title="Label")
    kind: Literal["person", "vehicle", "animal"]
    confidence: float = Field(ge=0, le=1, examples=[0.5])
    note: str | None = "default changed"


def _changes(new: type[Message]) -> list[str]:
    return [str(c) for c in changes(Before.model_json_schema(), new.model_json_schema(), "Sample")]


def test_the_checker_names_a_removed_and_a_renamed_field():
    assert _changes(Removed) == ["Sample.note: property removed (older messages refused)"]
    assert sorted(_changes(Renamed)) == [
        "Sample.camera: required property added (both)",
        "Sample.camera_id: property removed (both)",
    ]


def test_the_checker_names_narrowed_types_removed_enum_values_and_fields_made_required():
    assert sorted(_changes(Narrowed)) == [
        "Sample.camera_id: maxLength 128 became 64 (older messages refused)",
        "Sample.confidence: minimum 0 became 0.5 (older messages refused)",
        "Sample.kind: enum value(s) ['animal'] removed (older messages refused)",
        "Sample.label: no longer accepts null (older messages refused)",
        "Sample.note: made required (older messages refused)",
        "Sample.note: no longer accepts null (older messages refused)",
    ]


def test_the_checker_names_what_older_readers_would_refuse():
    assert _changes(Added) == ["Sample.zone: required property added (both)"]
    widened = changes(Narrowed.model_json_schema(), Before.model_json_schema(), "Sample")
    assert {c.direction for c in widened} == {"refused by older readers"}
    assert len(widened) == 6


class Counted(Message):
    event_type: Literal["Sample"] = "Sample"
    count: int


class Measured(Message):
    event_type: Literal["Sample"] = "Sample"
    count: float


def test_an_integer_made_a_number_is_a_widening_and_back_a_narrowing():
    integer, number = Counted.model_json_schema(), Measured.model_json_schema()
    assert [str(c) for c in changes(integer, number, "Sample")] == [
        "Sample.count: integer became number (refused by older readers)"
    ]
    assert [str(c) for c in changes(number, integer, "Sample")] == [
        "Sample.count: number became integer (older messages refused)"
    ]


def test_documentation_and_defaults_change_nothing():
    assert _changes(Documented) == []
    assert _changes(Before) == []


def test_the_checker_follows_references_into_nested_types():
    old = json.loads(
        (CHECKED_IN / "vigil.commands.analysis/ReanalyseBatch.v1.schema.json").read_text()
    )
    new = type_schema(
        next(t for t in ALL_TOPICS if ReanalyseBatch in t.value_types), ReanalyseBatch
    )
    assert [str(c) for c in changes(old, new, "ReanalyseBatch")] == [
        "ReanalyseBatch.batch.image_count: required property added (both)"
    ]


def test_the_kept_versions_follow_the_rules():
    assert version_problems(CHECKED_IN) == []


def test_every_type_keeps_its_current_version_and_every_older_one_from_v1():
    for topic in ALL_TOPICS:
        for model in topic.value_types:
            kept = kept_versions(CHECKED_IN, topic, model)
            assert sorted(kept) == list(range(1, version_of(model) + 1)), (topic.name, model)


def _images_topic(model: type[Message]) -> TopicSpec:
    return TopicSpec(name=IMAGES.name, key=IMAGES.key, value_types=(model,), description="")


def _image_received_without_size(version: int) -> type[Message]:
    """ImageReceived (the same name) with its size_bytes removed, at `version`."""
    fields = {
        name: (field.annotation, field)
        for name, field in ImageReceived.model_fields.items()
        if name != "size_bytes"
    }
    fields["schema_version"] = (int, version)
    return create_model("ImageReceived", __base__=Message, **fields)


def test_removing_a_field_without_raising_the_version_breaks_the_rules():
    topic = _images_topic(_image_received_without_size(1))
    assert version_problems(CHECKED_IN, [topic]) == [
        "vigil.images ImageReceived: ImageReceived.size_bytes: property removed (both): raise "
        "schema_version to 2 and keep an upcaster from 1 (schemas/upcasters.py)"
    ]


def test_raising_the_version_needs_an_upcaster_from_every_older_one():
    topic = _images_topic(_image_received_without_size(3))
    assert version_problems(CHECKED_IN, [topic]) == [
        "vigil.images ImageReceived: no upcaster from v1 to v2 (schemas/upcasters.py)",
        "vigil.images ImageReceived: no upcaster from v2 to v3 (schemas/upcasters.py)",
    ]


def test_export_refuses_to_rewrite_a_kept_version_and_writes_nothing(tmp_path):
    kept = tmp_path / "json"
    shutil.copytree(CHECKED_IN, kept)
    path = kept / BATCHES.name / "BatchClosed.v2.schema.json"
    schema = json.loads(path.read_text())
    del schema["properties"]["trigger"]["enum"][-1]  # as if v2 had gone out without it
    path.write_text(json.dumps(schema))
    before = {p: p.read_text() for p in kept.rglob("*.json")}
    with pytest.raises(IncompatibleSchemaChange, match=r"enum value\(s\) \['manual_flush'\] added"):
        export_schemas(kept)
    assert {p: p.read_text() for p in kept.rglob("*.json")} == before


def test_a_v1_batch_closed_is_read_as_v2_with_its_images_counted():
    batch = closed_batch(["person", "person", "car", "dog", "person"], at=AT)
    document = v1_document(batch)
    assert "image_count" not in document and document["schema_version"] == 1
    read = decode(BATCHES, json.dumps(document).encode())
    assert read == batch
    assert (read.schema_version, read.image_count) == (2, 3)


def test_a_command_carrying_a_v1_batch_is_read_with_the_batch_upcast():
    batch = closed_batch(["car", "person"], at=AT)
    command = ReanalyseBatch(
        job_id="j1", batch_id=batch.batch_id, camera_id="back_yard", batch=batch
    )
    topic = next(t for t in ALL_TOPICS if ReanalyseBatch in t.value_types)
    document = v1_document(command)
    assert (document["schema_version"], document["batch"]["schema_version"]) == (1, 1)
    read = decode(topic, json.dumps(document).encode())
    assert read == command
    assert (read.schema_version, read.batch.schema_version, read.batch.image_count) == (2, 2, 1)


def test_an_older_version_the_upcaster_cannot_read_is_undecodable_with_the_reason():
    document = v1_document(closed_batch(["car"], at=AT))
    del document["detections"][0]["image_id"]
    with pytest.raises(
        UndecodableMessage, match="BatchClosed schema_version 1 failed its upcaster"
    ):
        decode(BATCHES, json.dumps(document).encode())


def test_a_version_older_than_any_written_is_unsupported():
    document = v1_document(closed_batch(["car"], at=AT)) | {"schema_version": 0}
    with pytest.raises(UnsupportedSchemaVersion, match="no upcaster from it"):
        decode(BATCHES, json.dumps(document).encode())


def test_a_batch_whose_image_count_disagrees_with_its_detections_is_refused():
    batch = closed_batch(["car", "person", "dog"], at=AT)
    with pytest.raises(ValidationError, match="image_count 5 but the detections come from 2"):
        BatchClosed(**{**batch.model_dump(), "image_count": 5})


def _written_batches() -> list[BatchClosed]:
    """The closed batches of a seeded history (`bench.seed`): 1 to 200 detections each, some
    images with several, enrichments or none."""
    return [
        message
        for _, message in history(3000, cameras=4, days=1, seed=5, end=AT)
        if isinstance(message, BatchClosed)
    ]


def test_every_older_version_written_reads_back_as_the_current_message():
    """Each seeded batch written as v1 (and carried as v1 by each command that carries one) is
    valid under the kept v1 schema, and reads back as exactly the v2 message."""
    batches = _written_batches()
    assert len(batches) >= 20
    for model in (BatchClosed, ReanalyseBatch, ReplayPrompt, EvaluateEvent, TestPrompt):
        topic = next(t for t in ALL_TOPICS if model in t.value_types)
        validator = jsonschema.Draft202012Validator(kept_versions(CHECKED_IN, topic, model)[1])
        for batch in batches:
            current = batch if model is BatchClosed else carrying(model, batch)
            document = v1_document(current)
            validator.validate(document)
            assert decode(topic, json.dumps(document).encode()) == current


def test_every_type_at_a_later_version_has_its_older_writes_tested():
    bumped = {m.__name__ for t in ALL_TOPICS for m in t.value_types if version_of(m) > 1}
    assert bumped == {
        "BatchClosed",
        "ReanalyseBatch",
        "ReplayPrompt",
        "EvaluateEvent",
        "TestPrompt",
    }
    assert {event_type for event_type, _ in UPCASTERS} == bumped
