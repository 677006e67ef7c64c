"""The object detector the pipeline talks to, and its Triton implementation.

Every detector model served by Triton answers one contract: input `IMAGE`
(the encoded file bytes), outputs `DETECTIONS` `[N, 6]` (x1, y1, x2, y2,
score, class_id in original pixels), `LABELS` `[N]` (class names) and
`IMAGE_SIZE` `[2]` (width, height). Decoding and resizing happen in Triton.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from schemas.detections import BoundingBox, Detection
from streams.errors import InvalidImage, ModelUnavailable
from streams.triton import TritonModel, bytes_input


class DetectorUnavailable(ModelUnavailable):
    error_type = "DetectorUnavailable"


@dataclass(frozen=True)
class DetectorResult:
    detections: tuple[Detection, ...]
    image_width: int
    image_height: int
    model_name: str
    model_version: str
    latency_ms: float


class Detector(Protocol):
    model_name: str

    async def detect(self, image: bytes) -> DetectorResult: ...

    async def close(self) -> None: ...


class TritonDetector(TritonModel):
    invalid_input_error = InvalidImage
    unavailable_error = DetectorUnavailable

    async def detect(self, image: bytes) -> DetectorResult:
        result, version, latency_ms = await self.infer(
            [bytes_input("IMAGE", [image])], ("DETECTIONS", "LABELS", "IMAGE_SIZE")
        )
        rows = result.as_numpy("DETECTIONS").reshape(-1, 6)
        labels = [label.decode() for label in result.as_numpy("LABELS").reshape(-1)]
        width, height = (int(v) for v in result.as_numpy("IMAGE_SIZE").reshape(-1)[:2])
        return DetectorResult(
            detections=tuple(
                _detection(row, label) for row, label in zip(rows, labels, strict=True)
            ),
            image_width=width,
            image_height=height,
            model_name=self.model_name,
            model_version=version,
            latency_ms=latency_ms,
        )


def _detection(row: np.ndarray, label: str) -> Detection:
    x1, y1, x2, y2, score, class_id = (float(v) for v in row)
    return Detection(
        label=label,
        class_id=int(class_id),
        confidence=round(min(max(score, 0.0), 1.0), 4),
        bbox=BoundingBox(x1=round(x1, 1), y1=round(y1, 1), x2=round(x2, 1), y2=round(y2, 1)),
    )
