import pytest

from streams.errors import ImageMissing, InvalidImage
from streams.images import check_image_bytes, read_image


def test_check_accepts_jpeg_and_png_signatures():
    check_image_bytes(b"\xff\xd8\xff\xe0rest")
    check_image_bytes(b"\x89PNG\r\n\x1a\nrest")
    check_image_bytes(b"RIFF\x00\x00\x00\x00WEBPVP8 ")


def test_check_refuses_zero_bytes():
    with pytest.raises(InvalidImage, match="zero-byte file"):
        check_image_bytes(b"")


def test_check_refuses_text():
    with pytest.raises(InvalidImage, match="not a known image format"):
        check_image_bytes(b"hello, this is not a photo")


def test_read_refuses_oversize_before_reading(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(b"\xff\xd8\xff" + b"\0" * 100)
    with pytest.raises(InvalidImage, match="exceeds the 50-byte limit"):
        read_image(path, max_bytes=50)


def test_read_missing_file_is_permanent(tmp_path):
    with pytest.raises(ImageMissing, match="file not found"):
        read_image(tmp_path / "gone.jpg", max_bytes=100)
