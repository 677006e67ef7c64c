"""Checking the boxes and labels that come with the request image, and cropping them.

The image itself is decoded by `vigil_triton.imaging.decode_image`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image
from vigil_triton.imaging import DecodedImage


class InvalidRequest(ValueError):
    """BOXES/LABELS are inconsistent or unusable; answered as "invalid request: ..."."""


@dataclass(frozen=True)
class Box:
    index: int
    label: str  # stripped, lower-case
    x1: float  # clipped to the frame, original pixels
    y1: float
    x2: float
    y2: float

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


def _label(raw: object, index: int) -> str:
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest(f"label {index} is not UTF-8 ({exc})") from exc
    label = str(raw).strip().lower()
    if not label:
        raise InvalidRequest(f"label {index} is empty")
    return label


def check_shapes(boxes: np.ndarray, labels: np.ndarray, max_boxes: int) -> None:
    """What can be checked before the image is decoded."""
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidRequest(f"BOXES must have shape [N, 4], got {list(boxes.shape)}")
    if labels.ndim != 1:
        raise InvalidRequest(f"LABELS must have shape [N], got {list(labels.shape)}")
    if boxes.shape[0] != labels.shape[0]:
        raise InvalidRequest(
            f"BOXES has {boxes.shape[0]} rows but LABELS has {labels.shape[0]} entries"
        )
    if boxes.shape[0] > max_boxes:
        raise InvalidRequest(f"too many boxes: {boxes.shape[0]} > {max_boxes}")
    bad = np.flatnonzero(~np.isfinite(boxes).all(axis=1))
    if bad.size:
        raise InvalidRequest(f"box {int(bad[0])} has a non-finite coordinate")


def parse_boxes(
    boxes: np.ndarray, labels: np.ndarray, width: int, height: int, max_boxes: int
) -> list[Box]:
    """Clip x1,y1,x2,y2 boxes to the frame; any box left empty (< 1 px) is an error."""
    check_shapes(boxes, labels, max_boxes)
    parsed = []
    for index, (row, raw_label) in enumerate(zip(boxes.astype(np.float64), labels, strict=True)):
        x1, y1, x2, y2 = (float(v) for v in row)
        cx1, cx2 = min(max(x1, 0.0), width), min(max(x2, 0.0), width)
        cy1, cy2 = min(max(y1, 0.0), height), min(max(y2, 0.0), height)
        if cx2 - cx1 < 1.0 or cy2 - cy1 < 1.0:
            raise InvalidRequest(
                f"box {index} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) is empty after clipping"
                f" to the {width}x{height} image (x1 < x2 and y1 < y2 by at least 1 px)"
            )
        parsed.append(Box(index, _label(raw_label, index), cx1, cy1, cx2, cy2))
    return parsed


def crop_pixels(decoded: DecodedImage, box: Box, max_samples: int) -> np.ndarray:
    """The box's pixels as uint8 [h, w, 3], box-filtered down to about `max_samples` pixels."""
    sx, sy = decoded.scale
    image_w, image_h = decoded.image.size
    left = min(math.floor(box.x1 * sx), image_w - 1)
    top = min(math.floor(box.y1 * sy), image_h - 1)
    right = max(math.ceil(box.x2 * sx), left + 1)
    bottom = max(math.ceil(box.y2 * sy), top + 1)
    crop = decoded.image.crop((left, top, min(right, image_w), min(bottom, image_h)))
    w, h = crop.size
    ratio = min(1.0, math.sqrt(max_samples / (w * h)))
    if ratio < 1.0:
        size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
        crop = crop.resize(size, Image.Resampling.BOX)
    return np.asarray(crop, dtype=np.uint8)
