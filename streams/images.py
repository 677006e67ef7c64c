"""Reading an image file for the detector, with the checks that need no model."""

from __future__ import annotations

import enum
import re
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


class Completeness(enum.Enum):
    """Whether a file's bytes hold a whole image, read from the format's own structure."""

    COMPLETE = "complete"  # the format's end is there: nothing more can belong to it
    INCOMPLETE = "incomplete"  # a known format whose end is not there (yet)
    UNKNOWN = "unknown"  # a format whose end cannot be told from its bytes (TIFF, not an image)


# After a JPEG scan header: the next marker (0xFF then neither a stuffed 0x00, a restart
# marker nor a fill byte) ends the entropy-coded data.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
_STARTS = (*_SIGNATURES, b"RIFF")


def completeness(data: bytes) -> Completeness:
    """Whether `data` is a whole JPEG, PNG, GIF, BMP or WebP, walked segment by segment (a
    JPEG's embedded thumbnail or a chunk that merely ends in the right bytes does not count);
    UNKNOWN for the formats whose end cannot be told, and for what is no image at all."""
    if any(len(data) < len(start) and start.startswith(data) for start in _STARTS):
        return Completeness.INCOMPLETE  # not even the signature yet
    if data.startswith(b"\xff\xd8"):
        return _jpeg(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png(data)
    if data.startswith((b"GIF87a", b"GIF89a")):
        return _gif(data)
    if data.startswith(b"BM"):
        return _whole_when(len(data) >= 6 and len(data) >= int.from_bytes(data[2:6], "little"))
    if data.startswith(b"RIFF") and (len(data) < 12 or data[8:12] == b"WEBP"):
        return _whole_when(len(data) >= 12 and len(data) >= 8 + int.from_bytes(data[4:8], "little"))
    return Completeness.UNKNOWN


def _whole_when(complete: bool) -> Completeness:
    return Completeness.COMPLETE if complete else Completeness.INCOMPLETE


def _jpeg(data: bytes) -> Completeness:
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return Completeness.UNKNOWN  # not a marker where one must be: not ours to judge
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker == 0xD9:
            return Completeness.COMPLETE
        if marker in _JPEG_STANDALONE:
            at += 2
            continue
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data up to the next marker
            found = _JPEG_MARKER.search(data, at)
            if found is None:
                return Completeness.INCOMPLETE
            at = found.start()
    return _whole_when(data[at : at + 2] == b"\xff\xd9")


def _png(data: bytes) -> Completeness:
    at = 8
    while at + 8 <= len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        at += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return _whole_when(at <= len(data))
    return Completeness.INCOMPLETE


def _gif(data: bytes) -> Completeness:
    at = 13
    if len(data) < at:
        return Completeness.INCOMPLETE
    if data[10] & 0x80:  # global colour table
        at += 3 << ((data[10] & 0x07) + 1)
    while at < len(data):
        block = data[at]
        if block == 0x3B:  # trailer
            return Completeness.COMPLETE
        if block == 0x21:  # extension: label, then sub-blocks
            at += 2
        elif block == 0x2C:  # image descriptor, local colour table, LZW code size, sub-blocks
            if at + 10 > len(data):
                return Completeness.INCOMPLETE
            flags = data[at + 9]
            at += 10 + ((3 << ((flags & 0x07) + 1)) if flags & 0x80 else 0) + 1
        else:
            return Completeness.UNKNOWN
        while at < len(data) and data[at] != 0:  # sub-blocks, each led by its size
            at += 1 + data[at]
        at += 1  # the zero-size block that ends them
    return Completeness.INCOMPLETE
