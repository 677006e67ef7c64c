"""The vision model that describes detected people and vehicles, and its Triton client.

Contract of every enrichment model on Triton (the CPU `crop-attributes` here, a
GPU Florence-2 or Qwen-VL in production): inputs `IMAGE` (encoded file bytes),
`BOXES` `[N, 4]` (x1, y1, x2, y2 in pixels), `LABELS` `[N]`; outputs, one row per
box, `DESCRIPTIONS` `[N]`, `ATTRIBUTES` `[N]` (a JSON object each), `CONFIDENCES` `[N]`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import tritonclient.http.aio as triton_http

from schemas.detections import Detection
from streams.errors import InvalidImage, ModelUnavailable
from streams.triton import TritonModel, bytes_input


class EnricherUnavailable(ModelUnavailable):
    error_type = "EnricherUnavailable"


@dataclass(frozen=True)
class CropDescription:
    description: str
    attributes: dict[str, Any]
    confidence: float


@dataclass(frozen=True)
class EnricherResult:
    crops: tuple[CropDescription, ...]
    model_name: str
    model_version: str
    latency_ms: float


class Enricher(Protocol):
    model_name: str

    async def describe(self, image: bytes, detections: Sequence[Detection]) -> EnricherResult: ...

    async def close(self) -> None: ...


class TritonEnricher(TritonModel):
    invalid_input_error = InvalidImage
    unavailable_error = EnricherUnavailable

    async def describe(self, image: bytes, detections: Sequence[Detection]) -> EnricherResult:
        boxes = triton_http.InferInput("BOXES", [len(detections), 4], "FP32")
        boxes.set_data_from_numpy(
            np.array(
                [[d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2] for d in detections],
                dtype=np.float32,
            ).reshape(-1, 4)
        )
        inputs = [
            bytes_input("IMAGE", [image]),
            boxes,
            bytes_input("LABELS", [d.label.encode() for d in detections]),
        ]
        result, version, latency_ms = await self.infer(
            inputs, ("DESCRIPTIONS", "ATTRIBUTES", "CONFIDENCES")
        )
        descriptions = result.as_numpy("DESCRIPTIONS").reshape(-1)
        attributes = result.as_numpy("ATTRIBUTES").reshape(-1)
        confidences = result.as_numpy("CONFIDENCES").reshape(-1)
        if not len(descriptions) == len(attributes) == len(confidences) == len(detections):
            raise EnricherUnavailable(
                f"{self.model_name} answered {len(descriptions)} rows for {len(detections)} boxes"
            )
        crops = tuple(
            CropDescription(
                description=text.decode(),
                attributes=json.loads(attrs),
                confidence=round(min(max(float(conf), 0.0), 1.0), 4),
            )
            for text, attrs, conf in zip(descriptions, attributes, confidences, strict=True)
        )
        return EnricherResult(crops, self.model_name, version, latency_ms)
