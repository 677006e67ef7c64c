"""Camera images over the API: the file a read-model row records, served by the image's id,
as it is or with its detections drawn, optionally shrunk.

Camera images are the most private data here. With API keys configured, an image needs the
key or a signed URL: an HMAC-SHA256, under a server-side secret, over the image id, the
variant and an expiry. Detection responses carry such URLs, so a browser's `<img>` can load
them without a header. Expiries are rounded up to a whole `ROUND_S`, so the URLs of one image
stay the same for minutes and a browser's cache keeps working.

A file is served only from under CAMERA_ROOT, and only while its bytes still hash to what
the watcher recorded: a file removed (a cleanup) or replaced at its path is gone (410).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import math
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont, UnidentifiedImageError

from vigil.settings import Settings

Variant = Literal["original", "annotated"]
ROUND_S = 300
THUMBNAIL_WIDTH = 320
SECRET_FILE = "image-url.secret"

# Box colours by label, so the same label looks the same in every image.
_PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
            "#bfef45", "#fabed4", "#469990")  # fmt: skip


def url_secret(settings: Settings) -> bytes:
    """IMAGE_URL_SECRET, or else one made once and kept in DATA_DIR (readable by this user
    only), so every API process, and the next start, signs alike."""
    if settings.image_url_secret:
        return settings.image_url_secret.encode()
    path = settings.data_dir / SECRET_FILE
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    secret = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    return secret


@dataclass(frozen=True)
class ImageLinks:
    """Makes and checks the images' URLs. `secret` None: keys are not configured, and the
    URLs need no signature."""

    secret: bytes | None
    ttl_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLinks:
        secret = url_secret(settings) if settings.api_key_digests else None
        return cls(secret=secret, ttl_s=settings.image_url_ttl_s)

    def signature(self, image_id: str, variant: Variant, expires: int) -> str:
        assert self.secret is not None
        message = f"{image_id}\n{variant}\n{expires}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    def url(self, image_id: str, variant: Variant, now: float | None = None) -> str:
        path = f"/api/images/{image_id}" + ("/annotated" if variant == "annotated" else "")
        if self.secret is None:
            return path
        now = time.time() if now is None else now
        expires = math.ceil((now + self.ttl_s) / ROUND_S) * ROUND_S
        return f"{path}?expires={expires}&signature={self.signature(image_id, variant, expires)}"

    def thumbnail_url(self, image_id: str, now: float | None = None) -> str:
        """The annotated image, `THUMBNAIL_WIDTH` wide."""
        url = self.url(image_id, "annotated", now)
        return f"{url}{'&' if '?' in url else '?'}max_width={THUMBNAIL_WIDTH}"

    def signed_validly(
        self, image_id: str, variant: Variant, expires: int, signature: str
    ) -> Literal["valid", "expired", "invalid"]:
        if self.secret is None:
            return "valid"
        expected = self.signature(image_id, variant, expires)
        if not hmac.compare_digest(expected, signature.lower()):
            return "invalid"
        return "expired" if expires < time.time() else "valid"


class FileGone(Exception):
    """The recorded file is no longer there, or no longer holds this image."""


class FileOutsideCameras(Exception):
    """The read model records a file outside CAMERA_ROOT: never served."""


def read_recorded(file_path: str, sha256: str | None, camera_root: Path) -> bytes:
    """The bytes of the file the read model records for an image, if they are still its."""
    path = Path(file_path).resolve()
    if not path.is_relative_to(camera_root):
        raise FileOutsideCameras(f"the recorded file {file_path} is outside CAMERA_ROOT")
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        raise FileGone(f"the file {file_path} is gone") from exc
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise FileGone(f"the file at {file_path} is no longer this image (its bytes changed)")
    return data


@dataclass(frozen=True)
class Box:
    label: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True)
class Rendered:
    data: bytes
    media_type: str


_MEDIA = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif",
          "BMP": "image/bmp"}  # fmt: skip


def render(data: bytes, boxes: Sequence[Box] | None, max_width: int | None) -> Rendered:
    """The image as it is (`boxes` None, no `max_width`: the file's own bytes), or decoded,
    with `boxes` drawn and shrunk to `max_width` (never enlarged), as JPEG (PNG if the
    file was PNG)."""
    try:
        image = PILImage.open(io.BytesIO(data))
        source_format = image.format or "JPEG"
        if boxes is None and (max_width is None or image.width <= max_width):
            return Rendered(data, _MEDIA.get(source_format, "application/octet-stream"))
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise FileGone(f"the file is no longer a readable image: {exc}") from exc
    image = image.convert("RGB")
    if boxes:
        _draw(image, boxes)
    if max_width is not None and image.width > max_width:
        height = max(1, round(image.height * max_width / image.width))
        image = image.resize((max_width, height), PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    if source_format == "PNG":
        image.save(out, "PNG")
        return Rendered(out.getvalue(), "image/png")
    image.save(out, "JPEG", quality=85)
    return Rendered(out.getvalue(), "image/jpeg")


def box_colour(label: str) -> str:
    return _PALETTE[int(hashlib.sha256(label.encode()).hexdigest(), 16) % len(_PALETTE)]


def _draw(image: PILImage.Image, boxes: Sequence[Box]) -> None:
    draw = ImageDraw.Draw(image)
    width = max(2, round(min(image.size) / 200))
    font = ImageFont.load_default(size=max(12, round(min(image.size) / 30)))
    for box in boxes:
        colour = box_colour(box.label)
        corners = (round(box.x1), round(box.y1), round(box.x2), round(box.y2))
        draw.rectangle(corners, outline=colour, width=width)
        caption = f"{box.label} {box.confidence:.2f}"
        left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
        text_y = corners[1] - (bottom - top) - 2 * width
        if text_y < 0:  # no room above the box: inside it
            text_y = corners[1] + width
        draw.rectangle(
            (corners[0], text_y, corners[0] + right - left + 2 * width, text_y + bottom + width),
            fill=colour,
        )
        draw.text((corners[0] + width, text_y), caption, fill="white", font=font)
