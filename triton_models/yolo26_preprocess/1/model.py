"""Triton Python-backend step: encoded image bytes -> YOLO26 input tensor.

IMAGE (TYPE_STRING, [1]) -> PIXELS (FP32, [1, 3, 640, 640], RGB 0..1, letterboxed
on grey 114), LETTERBOX (FP32, [4]: gain_x, gain_y, pad_x, pad_y) and IMAGE_SIZE
(INT32, [2]: width, height after EXIF orientation).

`decode()` is the same as in `centernet/1/model.py` (Triton model folders cannot
share modules); keep the two in step. Undecodable input gets an INVALID_ARG
error "invalid image: ...", which the ensemble returns to the caller.
"""

from __future__ import annotations

import io
import json

import numpy as np
import triton_python_backend_utils as pb_utils
from PIL import Image, ImageFile, ImageOps

INPUT_SIZE = 640
PAD_VALUE = 114
FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG covers MPO too

ImageFile.LOAD_TRUNCATED_IMAGES = False


class InvalidImage(ValueError):
    pass


def decode(data: bytes, max_pixels: int) -> tuple[Image.Image, tuple[int, int]]:
    """Decode to RGB with EXIF orientation applied; refuse bombs before decoding.

    Returns the image (possibly decoded at reduced scale) and the full-resolution
    (width, height) after orientation, the frame detections are reported in.
    """
    if not data:
        raise InvalidImage("empty payload (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)  # parses the header only
    except Exception as exc:
        raise InvalidImage(f"not a decodable image ({type(exc).__name__}: {exc})") from exc
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidImage(
            f"image too large: {width}x{height} = {width * height} pixels > {max_pixels}"
        )
    try:
        if image.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
            width, height = height, width
        if image.format in ("JPEG", "MPO"):
            # Let libjpeg decode at 1/2..1/8 scale when the image is much larger than the input.
            image.draft("RGB", (INPUT_SIZE, INPUT_SIZE))
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
    except Exception as exc:
        raise InvalidImage(f"corrupt or truncated {image.format} data ({exc})") from exc
    return image, (width, height)


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
        Image.MAX_IMAGE_PIXELS = None  # decode() enforces max_pixels itself

    def execute(self, requests: list) -> list:
        responses = []
        for request in requests:
            try:
                payload = pb_utils.get_input_tensor_by_name(request, "IMAGE").as_numpy()
                data = payload.reshape(-1)[0] if payload.size else b""
                if isinstance(data, str):
                    data = data.encode("latin-1")
                image, size = decode(bytes(data), self.max_pixels)
                pixels, transform = letterbox(image, size)
            except InvalidImage as exc:
                responses.append(_error(f"invalid image: {exc}"))
                continue
            except Exception as exc:  # noqa: BLE001 - one bad request must not fail the model
                responses.append(
                    _error(f"preprocess failed: {type(exc).__name__}: {exc}", internal=True)
                )
                continue
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("PIXELS", pixels),
                        pb_utils.Tensor("LETTERBOX", transform),
                        pb_utils.Tensor("IMAGE_SIZE", np.array(size, dtype=np.int32)),
                    ]
                )
            )
        return responses


def _error(message: str, *, internal: bool = False):
    code = pb_utils.TritonError.INTERNAL if internal else pb_utils.TritonError.INVALID_ARG
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(message, code))
