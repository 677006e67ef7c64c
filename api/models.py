"""Request and response models of the API, separate from the ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict


class BoundingBoxOut(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class DetectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: str
    camera_id: str
    file_path: str
    label: str
    class_id: int
    confidence: float
    bbox: BoundingBoxOut
    image_width: int
    image_height: int
    model_name: str
    model_version: str
    latency_ms: float
    detected_at: datetime
    created_at: datetime


class DetectionList(BaseModel):
    detections: list[DetectionOut]
    count: int
    limit: int
    offset: int


ServiceStatus = Literal["healthy", "unhealthy"]


class ServiceHealth(BaseModel):
    status: ServiceStatus
    latency_ms: float | None = None
    error: str | None = None


class TritonHealth(ServiceHealth):
    models: dict[str, str] = {}


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: dict[str, ServiceHealth | TritonHealth]
    # consumer group -> topic -> messages not yet processed
    consumer_lag: dict[str, dict[str, int]]
    checked_at: datetime
