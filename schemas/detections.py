"""Events produced by the object detector."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.envelope import Message


class BoundingBox(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    x1: float
    y1: float
    x2: float
    y2: float


class Detection(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    label: str
    class_id: int = Field(ge=0)
    confidence: float = Field(ge=0, le=1)
    bbox: BoundingBox


class DetectorAnswered(Message):
    """What a detector answered for one image (the base of the two events that carry it)."""

    image_id: str
    camera_id: str
    file_path: str
    image_width: int = Field(gt=0)
    image_height: int = Field(gt=0)
    detections: tuple[Detection, ...]
    model_name: str
    model_version: str
    latency_ms: float = Field(ge=0)


class DetectionsProduced(DetectorAnswered):
    event_type: Literal["DetectionsProduced"] = "DetectionsProduced"

    image_received_at: datetime


class ReprocessDetection(Message):
    """Run one image through a detector again (a `reprocess_detection` job asks for each)."""

    event_type: Literal["ReprocessDetection"] = "ReprocessDetection"

    job_id: str = Field(min_length=1, max_length=64)
    image_id: str
    camera_id: str
    file_path: str
    model_name: str = Field(min_length=1, max_length=64)
    # None: the version Triton serves by default.
    model_version: str | None = Field(default=None, min_length=1, max_length=32)


class DetectionsReprocessed(DetectorAnswered):
    """Another model's (or version's) detections of an image, made for a reprocess job.

    They are kept beside the image's own detections, never in their place, and never go on
    into enrichment or batches."""

    event_type: Literal["DetectionsReprocessed"] = "DetectionsReprocessed"

    job_id: str = Field(min_length=1, max_length=64)
