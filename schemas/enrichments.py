"""Events of the enrichment stage: what the vision model says about detected objects."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.detections import Detection, DetectionsProduced
from schemas.envelope import Message

DetectionType = Literal["person", "vehicle", "animal", "object"]

_VEHICLES = frozenset({"bicycle", "car", "motorcycle", "bus", "truck", "train", "boat", "airplane"})
_ANIMALS = frozenset(
    {"bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"}
)
ENRICHED_TYPES: frozenset[str] = frozenset({"person", "vehicle"})


def detection_type(label: str) -> DetectionType:
    if label == "person":
        return "person"
    if label in _VEHICLES:
        return "vehicle"
    if label in _ANIMALS:
        return "animal"
    return "object"


class Enrichment(BaseModel):
    """The vision model's answer for one detection (by its position in the image's detections)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: int = Field(ge=0)
    detection_type: DetectionType
    description: str
    attributes: dict[str, Any]
    confidence: float = Field(ge=0, le=1)


class DetectionsEnriched(Message):
    """An image's detections with the enrichments of those worth describing.

    The batch aggregator consumes this, so every detection reaches a batch, enriched or not;
    `enrichment_error` says why enrichments are missing when the vision model failed.
    """

    event_type: Literal["DetectionsEnriched"] = "DetectionsEnriched"

    image_id: str
    camera_id: str
    file_path: str
    image_width: int = Field(gt=0)
    image_height: int = Field(gt=0)
    detections: tuple[Detection, ...]
    detected_at: datetime
    enrichments: tuple[Enrichment, ...]
    model_name: str | None
    model_version: str | None
    latency_ms: float | None = Field(default=None, ge=0)
    enrichment_error: str | None = None

    @classmethod
    def of(cls, produced: DetectionsProduced, **fields: Any) -> DetectionsEnriched:
        """The enrichment stage's answer to `produced`: its image and detections carried on,
        with `fields` (the enrichments and the model that made them)."""
        carried: dict[str, Any] = {
            "image_id": produced.image_id,
            "camera_id": produced.camera_id,
            "file_path": produced.file_path,
            "image_width": produced.image_width,
            "image_height": produced.image_height,
            "detections": produced.detections,
            "detected_at": produced.occurred_at,
            "trace_id": produced.trace_id,
        }
        return cls(**{**carried, **fields})

    @model_validator(mode="after")
    def _enrichments_name_their_model(self) -> DetectionsEnriched:
        missing = [
            name
            for name in ("model_name", "model_version", "latency_ms")
            if getattr(self, name) is None
        ]
        if self.enrichments and missing:
            raise ValueError(f"enrichments without the model that made them: {missing} unset")
        return self


class EnrichmentReprocessed(Message):
    """A new enrichment of one detection, asked for by a reprocess command; never an overwrite."""

    event_type: Literal["EnrichmentReprocessed"] = "EnrichmentReprocessed"

    request_id: str
    image_id: str
    camera_id: str
    enrichment: Enrichment
    model_name: str
    model_version: str
    latency_ms: float = Field(ge=0)


class ReprocessEnrichment(Message):
    """Command: enrich one detection again."""

    event_type: Literal["ReprocessEnrichment"] = "ReprocessEnrichment"

    request_id: str
    detection_id: int
    image_id: str
    camera_id: str
    file_path: str
    position: int = Field(ge=0)
    detection: Detection
