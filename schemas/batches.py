"""Events and commands of the batch aggregator (the spec's batch lifecycle)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.detections import BoundingBox
from schemas.enrichments import Enrichment
from schemas.envelope import Message

Trigger = Literal["time_window", "idle_timeout", "max_size", "manual_flush"]


class BatchDetection(BaseModel):
    """One detection inside a batch, with its enrichment when it has one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    image_id: str
    position: int = Field(ge=0)
    file_path: str
    label: str
    confidence: float = Field(ge=0, le=1)
    bbox: BoundingBox
    detected_at: datetime
    enrichment: Enrichment | None = None
    enrichment_model: str | None = None


class BatchOpened(Message):
    event_type: Literal["BatchOpened"] = "BatchOpened"

    batch_id: str
    camera_id: str
    started_at: datetime


class DetectionsBatched(Message):
    """An image's detections joined the camera's open batch."""

    event_type: Literal["DetectionsBatched"] = "DetectionsBatched"

    batch_id: str
    camera_id: str
    image_id: str
    added: int = Field(ge=0)
    detection_count: int = Field(ge=0)
    last_activity_at: datetime


def images_in(detections: Iterable[BatchDetection]) -> int:
    """How many images a batch's detections came from."""
    return len({detection.image_id for detection in detections})


class BatchClosed(Message):
    """A camera's batch closed, with every detection it gathered.

    v2 added `image_count` (v1 messages are read through `schemas.upcasters`)."""

    event_type: Literal["BatchClosed"] = "BatchClosed"
    schema_version: int = 2

    batch_id: str
    camera_id: str
    started_at: datetime
    closed_at: datetime
    last_activity_at: datetime
    trigger: Trigger
    detections: tuple[BatchDetection, ...]
    # The images the detections came from (each image once).
    image_count: int = Field(ge=0)

    @model_validator(mode="after")
    def _counts_its_images(self) -> BatchClosed:
        if self.image_count != images_in(self.detections):
            raise ValueError(
                f"image_count {self.image_count} but the detections come from "
                f"{images_in(self.detections)} image(s)"
            )
        return self


class FlushBatch(Message):
    """Command: close the camera's open batch now (an API flush, or a timer that expired)."""

    event_type: Literal["FlushBatch"] = "FlushBatch"

    batch_id: str
    camera_id: str
    trigger: Trigger = "manual_flush"
