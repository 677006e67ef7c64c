"""Triton Python-backend model `crop-attributes`: per-box attributes from pixels (CPU).

The CPU stand-in for the GPU vision-language model (`florence-2`), with the same
contract. It measures what pixels support and claims nothing else.

Inputs (one request = one image and its boxes):
  IMAGE   TYPE_STRING [1]      the encoded file (JPEG, PNG, WebP, BMP, TIFF, GIF)
  BOXES   TYPE_FP32   [N, 4]   x1, y1, x2, y2 in pixels of the image as displayed
                               (EXIF orientation applied, as the detectors report them)
  LABELS  TYPE_STRING [N]      COCO label per box ("person", "car", "bus", ...)

Outputs, one row per box, in the order of BOXES (N = 0 gives three empty tensors):
  DESCRIPTIONS TYPE_STRING [N] one sentence, e.g. "Person in a beige upper garment and
                               blue lower garment, about 47% of frame height."
  ATTRIBUTES   TYPE_STRING [N] a JSON object (UTF-8), keys below
  CONFIDENCES  TYPE_FP32   [N] in [0, 1]: how dominant the colour evidence is
                               (share of the main colour; for persons the mean of the
                               upper and lower shares) x min(1, sqrt(decoded box pixels
                               / 4096)) x lighting factor (dark 0.5, dim 0.8, else 1);
                               colour evidence counts as 0.1 when colours are not
                               observable (colors_observable false)

ATTRIBUTES keys. Colour names come from a fixed palette: black, gray, white, red,
pink, orange, brown, beige, yellow, green, blue, purple (rules in vigil_crop/colors.py).
  every box:
    kind            "person" | "vehicle" | "object"
    label           the label sent, stripped and lower-cased
    source          "pixel-statistics" (florence-2 says "florence-2")
    color           main colour, "unknown" when no colour covers 20% of the region
                    or colours are not observable
    colors          main colour first, then others covering >= 12% (at most 3); []
                    when color is "unknown"
    color_shares    {name: share} for colours covering >= 5% of the region ({} when
                    colours are not observable)
    box             [x1, y1, x2, y2] clipped to the image, 0.1 px
    relative_width, relative_height, relative_area   box / frame, 0..1
    aspect_ratio    box width / height
    size            "small" (< 1% of frame area) | "medium" (< 10%) | "large"
    touches_edges   frame edges the box touches: subset of left, top, right, bottom
    brightness      mean L*/100 of the box; frame_brightness: the same for the frame
    lighting        "dark" (< 0.15) | "dim" (< 0.25) | "normal" (< 0.75) | "bright"
    grayscale       the frame carries no colour (IR night mode or B/W camera)
    colors_observable  false when grayscale, or when the frame is too dark even after
                    levelling (an under-exposed frame, 99th-percentile highlight < 200,
                    is scaled by 255/highlight, at most x8, before colours are named)
    night_likely    grayscale or lighting == "dark"
  person (label "person") adds, before the geometry:
    clothing        ["<upper_color> upper garment", "<lower_color> lower garment"],
                    entries with an unknown colour left out
    carrying        [] (not observable from colour statistics)
    age_group       "unknown" (not observable)
    gender_presentation  "unknown" (not observable)
    upper_color, upper_colors, lower_color, lower_colors   as color/colors, for the
                    body above / below the garment boundary (the row where the colour
                    changes most between 35% and 68% of the box height; the middle
                    when it does not change), in the central 60% of the box width,
                    head (top 16%) and feet (bottom 5%) left out (boxes under 8
                    sampled rows: top and bottom halves); color/colors/color_shares
                    cover both parts
  vehicle (bicycle, car, motorcycle, airplane, bus, train, truck, boat) adds:
    vehicle_type    the label
    dark_share      share of dark pixels (L* < 25, no clear colour) in the box; when
                    under 0.6 they are taken for glass, tyres and shadow and left out
                    of color/colors/color_shares, else the vehicle is black
  other labels: the common keys only (colours of the central 80% of the box).

Errors (the other requests of a batch are unaffected), code INVALID_ARG:
  "invalid request: ..."  BOXES/LABELS length mismatch, a non-finite coordinate, a box
                          empty after clipping (< 1 px wide or high), an empty label,
                          more than `max_boxes` boxes
  "invalid image: ..."    empty, undecodable, truncated, or above `max_pixels`
Anything unexpected answers INTERNAL "enrichment failed: ...".

Deterministic: the same request gives byte-identical outputs.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from vigil_crop import InvalidRequest, analyse, check_shapes, frame_stats, parse_boxes
from vigil_triton.imaging import InvalidImage, decode_image, min_long_side
from vigil_triton.requests import answer_each, image_bytes

# JPEGs larger than this (long side) are decoded at 1/2..1/8 scale: colour statistics
# need no more, and the boxes are mapped to the decoded pixels.
DRAFT = min_long_side(640)
REFUSED = {InvalidRequest: "invalid request", InvalidImage: "invalid image"}


def _param(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.max_pixels = int(_param(config, "max_pixels", "40000000"))
        self.max_boxes = int(_param(config, "max_boxes", "300"))

    def enrich(self, data: bytes, boxes: np.ndarray, labels: np.ndarray) -> list:
        check_shapes(boxes, labels, self.max_boxes)  # before paying for the decode
        decoded = decode_image(data, self.max_pixels, draft=DRAFT)
        parsed = parse_boxes(boxes, labels, decoded.width, decoded.height, self.max_boxes)
        frame = frame_stats(decoded)
        results = [analyse(decoded, frame, box) for box in parsed]
        return [
            pb_utils.Tensor(
                "DESCRIPTIONS",
                np.array([r.description.encode("utf-8") for r in results], dtype=np.object_),
            ),
            pb_utils.Tensor(
                "ATTRIBUTES",
                np.array([r.attributes_json().encode("utf-8") for r in results], dtype=np.object_),
            ),
            pb_utils.Tensor(
                "CONFIDENCES", np.array([r.confidence for r in results], dtype=np.float32)
            ),
        ]

    def answer(self, request: pb_utils.InferenceRequest) -> list[pb_utils.Tensor]:
        boxes = pb_utils.get_input_tensor_by_name(request, "BOXES").as_numpy()
        labels = pb_utils.get_input_tensor_by_name(request, "LABELS").as_numpy()
        return self.enrich(image_bytes(request), boxes, labels)

    def execute(self, requests: list) -> list:
        return answer_each(requests, self.answer, refused=REFUSED, failure="enrichment")
