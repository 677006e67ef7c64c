"""Every topic Vigil owns, declared once: name, key, value type and partitions.

Agents, projections, the API and the JSON Schema export all import from here;
no topic name is written anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from schemas.dead_letters import DeadLettered
from schemas.detections import DetectionsProduced
from schemas.envelope import Message
from schemas.images import ImageReceived


@dataclass(frozen=True, eq=False)
class TopicSpec:
    name: str
    key: str
    value_types: tuple[type[Message], ...]
    description: str
    # None means "the configured default" (TOPIC_PARTITIONS).
    partitions: int | None = None

    @cached_property
    def adapter(self) -> TypeAdapter[Any]:
        if len(self.value_types) == 1:
            return TypeAdapter(self.value_types[0])
        union = Union[self.value_types]  # noqa: UP007 - built at run time
        return TypeAdapter(Annotated[union, Field(discriminator="event_type")])


IMAGES = TopicSpec(
    name="vigil.images",
    key="camera_id",
    value_types=(ImageReceived,),
    description="An image file arrived complete in a camera folder.",
)
DETECTIONS = TopicSpec(
    name="vigil.detections",
    key="camera_id",
    value_types=(DetectionsProduced,),
    description="The object detector's answer for one image.",
)
DLQ_DETECTION = TopicSpec(
    name="vigil.dlq.detection",
    key="camera_id",
    value_types=(DeadLettered,),
    description="Images the detection stage gave up on, with the reason.",
)

ALL_TOPICS: tuple[TopicSpec, ...] = (IMAGES, DETECTIONS, DLQ_DETECTION)
