"""Reading an image file for the detector, with the checks that need no model."""

from __future__ import annotations

from pathlib import Path

from streams.errors import ImageMissing, InvalidImage

# Leading bytes of the formats the detector decodes.
_SIGNATURES = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",
    b"GIF87a",
    b"GIF89a",
    b"BM",
    b"II*\x00",  # TIFF, little endian
    b"MM\x00*",  # TIFF, big endian
)


def check_image_bytes(data: bytes) -> None:
    if not data:
        raise InvalidImage("invalid image: zero-byte file")
    if data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return
    raise InvalidImage(f"invalid image: not a known image format (starts with {data[:8]!r})")


def read_image(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise InvalidImage(f"invalid image: {size} bytes exceeds the {max_bytes}-byte limit")
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageMissing(f"file not found: {path} (deleted before processing?)") from exc
    check_image_bytes(data)
    return data
