"""The one codec: pydantic models as UTF-8 JSON on every topic."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ValidationError

from schemas.topics import TopicSpec
from schemas.upcasters import UPCASTERS


class UndecodableMessage(ValueError):
    """A message that is not a valid event of the type its topic carries."""

    def __init__(self, reason: str, error_type: str = "UndecodableMessage") -> None:
        super().__init__(reason)
        self.error_type = error_type


class UnsupportedSchemaVersion(UndecodableMessage):
    def __init__(self, reason: str) -> None:
        super().__init__(reason, error_type="UnsupportedSchemaVersion")


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode()


def decode(topic: TopicSpec, raw: bytes | None) -> Any:
    """Parse one message, raising UndecodableMessage with a reason a person can act on."""
    if raw is None or raw == b"":
        raise UndecodableMessage("empty message value")
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UndecodableMessage(f"message is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UndecodableMessage(f"message is a JSON {type(document).__name__}, not an object")
    supported = topic.versions
    event_type = document.get("event_type")
    if event_type not in supported:
        raise UndecodableMessage(
            f"event_type {event_type!r} is not one of {sorted(supported)} carried by {topic.name}"
        )
    version = document.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool):
        if version > supported[event_type]:
            raise UnsupportedSchemaVersion(
                f"{event_type} schema_version {version} is newer than the supported "
                f"{supported[event_type]}"
            )
        document = upcast(document, event_type, version, supported[event_type])
    try:
        return topic.adapter.validate_python(document)
    except ValidationError as exc:
        raise UndecodableMessage(
            f"{event_type} failed its schema: {exc.error_count()} error(s): "
            + "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
            )
        ) from exc


def upcast(document: dict[str, Any], event_type: str, version: int, current: int) -> dict[str, Any]:
    """`document`, written under `version` of its type, as `current` (`schemas.upcasters`)."""
    while version < current:
        step = UPCASTERS.get((event_type, version))
        if step is None:
            raise UnsupportedSchemaVersion(
                f"{event_type} schema_version {version} cannot be read: no upcaster from it "
                f"(the supported version is {current})"
            )
        try:
            document = {**step(document), "schema_version": version + 1}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise UndecodableMessage(
                f"{event_type} schema_version {version} failed its upcaster to {version + 1}: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        version += 1
    return document
