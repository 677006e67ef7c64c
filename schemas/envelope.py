"""The envelope every event and command carries."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class Message(BaseModel):
    """Base of every event and command on a topic.

    `event_type` names the concrete type on the wire; `schema_version` is the
    version of that type's payload, so consumers can refuse what they cannot read. A type
    whose payload changes declares its new version as this field's default, the one place
    both producers and the codec read it from.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    schema_version: int = 1
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str = "vigil"
    trace_id: str = Field(default_factory=lambda: uuid4().hex)


def version_of(model: type[Message]) -> int:
    """The `schema_version` this code writes and reads of `model`'s type."""
    return model.model_fields["schema_version"].default
