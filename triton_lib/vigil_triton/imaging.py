"""Decoding a request's encoded image: the one decoder every Vigil Triton model uses.

Pure Pillow. `decode_image` refuses what a camera upload must not be (empty, not an
image, a decompression bomb, truncated) with `InvalidImage`, whose text the models
answer as "invalid image: ..." (INVALID_ARG), applies the EXIF orientation and
converts to RGB. A JPEG may be decoded at 1/2..1/8 scale (libjpeg's draft mode) when
the model needs fewer pixels; `DecodedImage` keeps the full-resolution size, the frame
that boxes are reported in.

Importing this module turns off Pillow's own decompression-bomb check
(`Image.MAX_IMAGE_PIXELS`): `decode_image` enforces its caller's `max_pixels` before
decoding, with a clearer message, and Pillow's check would otherwise answer the
largest bombs first ("not a decodable image (DecompressionBombError ...)").
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageFile, ImageOps

FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "TIFF", "GIF")  # JPEG covers MPO too
_ORIENTATION = 0x0112
_ROTATED = (5, 6, 7, 8)  # EXIF orientations that turn the image by 90 or 270 degrees

Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Given a JPEG's stored (width, height), the size libjpeg may reduce it to at the
# least: it picks the smallest 1/2..1/8 scale that keeps both sides at or above it.
Draft = Callable[[tuple[int, int]], tuple[int, int]]


class InvalidImage(ValueError):
    """The IMAGE payload cannot be used; answered as "invalid image: ..."."""


@dataclass(frozen=True)
class DecodedImage:
    image: Image.Image  # RGB, upright (EXIF orientation applied), possibly drafted
    width: int  # full-resolution width after orientation: the frame the boxes are in
    height: int

    @property
    def scale(self) -> tuple[float, float]:
        """Decoded pixels per original pixel, per axis."""
        return self.image.size[0] / self.width, self.image.size[1] / self.height


def min_size(width: int, height: int) -> Draft:
    """Draft a JPEG no smaller than `width` x `height` (a detector's input square)."""
    return lambda _stored: (width, height)


def min_long_side(pixels: int) -> Draft:
    """Draft a JPEG keeping at least `pixels` on its long side (smaller ones stay whole)."""

    def draft(stored: tuple[int, int]) -> tuple[int, int]:
        ratio = min(1.0, pixels / max(stored))
        return math.ceil(stored[0] * ratio), math.ceil(stored[1] * ratio)

    return draft


def decode_image(data: bytes, max_pixels: int, *, draft: Draft | None = None) -> DecodedImage:
    """Decode to RGB with EXIF orientation applied; refuse bombs before decoding.

    A JPEG is decoded at reduced scale as far as `draft` allows (None: always at full
    resolution); other formats always are."""
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
        if image.getexif().get(_ORIENTATION, 1) in _ROTATED:
            width, height = height, width
        if draft is not None and image.format in ("JPEG", "MPO"):
            image.draft("RGB", draft(image.size))
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode != "RGB":
            image = image.convert("RGB")
    except Exception as exc:
        raise InvalidImage(f"corrupt or truncated {image.format} data ({exc})") from exc
    return DecodedImage(image=image, width=width, height=height)
