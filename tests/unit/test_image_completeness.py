import io

import pytest
from PIL import Image

from streams.images import Completeness, completeness
from tests.factories import image_file_bytes

WHOLE_FORMATS = [
    ("JPEG", {}),
    ("JPEG", {"progressive": True}),
    ("PNG", {}),
    ("GIF", {}),
    ("BMP", {}),
    ("WEBP", {}),
]


@pytest.mark.parametrize(("fmt", "save"), WHOLE_FORMATS)
def test_a_whole_image_is_complete_and_every_cut_of_it_is_not(fmt, save):
    data = image_file_bytes(fmt, size=(96, 64), **save)
    assert completeness(data) is Completeness.COMPLETE
    judged = {completeness(data[:n]) for n in range(len(data))}
    assert judged == {Completeness.INCOMPLETE}


def test_bytes_after_a_jpeg_end_do_not_make_it_incomplete():
    assert completeness(image_file_bytes() + b"\x00" * 16) is Completeness.COMPLETE


def test_a_jpeg_cut_just_after_its_embedded_thumbnail_is_incomplete():
    """EXIF thumbnails are whole JPEGs, end marker included, inside the APP1 segment: a file
    cut right after one ends in FF D9 but is far from whole."""
    thumbnail = image_file_bytes("JPEG", size=(16, 12), seed=3)
    exif = Image.Exif()
    exif[0x010F] = "Vigil test camera"
    photo = Image.open(io.BytesIO(image_file_bytes("PNG")))
    buffer = io.BytesIO()
    photo.save(buffer, format="JPEG", exif=exif.tobytes() + thumbnail)
    data = buffer.getvalue()
    end_of_thumbnail = data.index(thumbnail) + len(thumbnail)
    assert data[:end_of_thumbnail].endswith(b"\xff\xd9")
    assert completeness(data[:end_of_thumbnail]) is Completeness.INCOMPLETE
    assert completeness(data) is Completeness.COMPLETE


@pytest.mark.parametrize(
    ("data", "judged"),
    [
        (b"", Completeness.INCOMPLETE),
        (b"\x89PN", Completeness.INCOMPLETE),
        (b"this is a text file, not a photo\n", Completeness.UNKNOWN),
        (b"II*\x00" + b"\x00" * 64, Completeness.UNKNOWN),  # TIFF: its end is not in its bytes
    ],
)
def test_what_cannot_be_judged(data, judged):
    assert completeness(data) is judged
