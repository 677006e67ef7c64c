"""Triton Python-backend step: encoded image bytes -> YOLO26 input tensor.

IMAGE (TYPE_STRING, [1]) -> PIXELS (FP32, [1, 3, 640, 640], RGB 0..1, letterboxed
on grey 114), LETTERBOX (FP32, [4]: gain_x, gain_y, pad_x, pad_y) and IMAGE_SIZE
(INT32, [2]: width, height after EXIF orientation).

Decoding is `vigil_triton.imaging.decode_image`, as in `centernet`. Undecodable
input gets an INVALID_ARG error "invalid image: ...", which the ensemble returns to
the caller.
"""

from __future__ import annotations

import json

import numpy as np
import triton_python_backend_utils as pb_utils
from PIL import Image
from vigil_triton.imaging import InvalidImage, decode_image, min_size
from vigil_triton.requests import answer_each, image_bytes

INPUT_SIZE = 640
PAD_VALUE = 114
# Let libjpeg decode at 1/2..1/8 scale when the image is much larger than the input.
DRAFT = min_size(INPUT_SIZE, INPUT_SIZE)


def letterbox(image: Image.Image, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """CHW 0..1 tensor of the image fitted into INPUT_SIZE², and its mapping to `size`."""
    width, height = image.size
    ratio = min(INPUT_SIZE / width, INPUT_SIZE / height)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    pad_x, pad_y = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
    canvas = np.full((INPUT_SIZE, INPUT_SIZE, 3), PAD_VALUE, dtype=np.uint8)
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = np.asarray(resized)
    pixels = canvas.transpose(2, 0, 1)[None].astype(np.float32) / 255.0
    # Gains relative to the full-resolution image (the JPEG may have been drafted).
    gain_x, gain_y = new_w / size[0], new_h / size[1]
    return pixels, np.array([gain_x, gain_y, pad_x, pad_y], dtype=np.float32)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.max_pixels = int(params.get("max_pixels", {}).get("string_value", "40000000"))

    def answer(self, request: pb_utils.InferenceRequest) -> list[pb_utils.Tensor]:
        decoded = decode_image(image_bytes(request), self.max_pixels, draft=DRAFT)
        size = (decoded.width, decoded.height)
        pixels, transform = letterbox(decoded.image, size)
        return [
            pb_utils.Tensor("PIXELS", pixels),
            pb_utils.Tensor("LETTERBOX", transform),
            pb_utils.Tensor("IMAGE_SIZE", np.array(size, dtype=np.int32)),
        ]

    def execute(self, requests: list) -> list:
        return answer_each(
            requests, self.answer, refused={InvalidImage: "invalid image"}, failure="preprocess"
        )
