"""vigil_triton.imaging: the image decoder every Triton model uses, on real encoded files."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from vigil_triton.imaging import (
    DecodedImage,
    InvalidImage,
    decode_image,
    min_long_side,
    min_size,
)

from tests.factories import png_claiming
from vigil.models import sample_image

MAX_PIXELS = 40_000_000
RED, BLUE = (255, 0, 0), (0, 0, 255)
ORIENTATION = 0x0112


def encoded(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def red_left_blue_right(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, width // 2, height))
    return image


def assert_colour(pixel: tuple[int, ...], expected: tuple[int, int, int]) -> None:
    """Within JPEG's error on a flat 8x8-aligned block."""
    assert all(abs(a - b) <= 8 for a, b in zip(pixel, expected, strict=True)), pixel


def test_decode_refuses_zero_bytes() -> None:
    with pytest.raises(InvalidImage) as caught:
        decode_image(b"", MAX_PIXELS)
    assert str(caught.value) == "empty payload (0 bytes)"


NOT_AN_IMAGE = (
    r"^not a decodable image \(UnidentifiedImageError: cannot identify image file"
    r" <_io\.BytesIO object at 0x[0-9a-f]+>\)$"
)


def test_decode_refuses_text() -> None:
    with pytest.raises(InvalidImage, match=NOT_AN_IMAGE):
        decode_image(b"hello, this is not a photo", MAX_PIXELS)


def test_decode_refuses_a_header_without_pixels() -> None:
    # Pillow itself refuses a 0-pixel header, before decode_image's own check.
    with pytest.raises(InvalidImage, match=NOT_AN_IMAGE):
        decode_image(png_claiming(0, 480), MAX_PIXELS)


def test_decode_refuses_truncated_jpeg() -> None:
    data = sample_image("bus.jpg").read_bytes()[:5000]
    with pytest.raises(InvalidImage) as caught:
        decode_image(data, MAX_PIXELS)
    assert str(caught.value) == (
        "corrupt or truncated JPEG data (image file is truncated (61 bytes not processed))"
    )


def test_decode_refuses_bomb_before_decoding() -> None:
    # Far above Pillow's own limit too: its check must not answer first.
    with pytest.raises(InvalidImage) as caught:
        decode_image(png_claiming(100_000, 100_000), MAX_PIXELS)
    assert str(caught.value) == ("image too large: 100000x100000 = 10000000000 pixels > 40000000")


def test_decode_accepts_exactly_max_pixels() -> None:
    data = encoded(Image.new("RGB", (40, 25), RED), "PNG")
    decoded = decode_image(data, max_pixels=1000)
    assert (decoded.width, decoded.height) == (40, 25)
    with pytest.raises(InvalidImage, match=r"^image too large: 40x25 = 1000 pixels > 999$"):
        decode_image(data, max_pixels=999)


def test_decode_bus_photo_at_full_resolution() -> None:
    decoded = decode_image(sample_image("bus.jpg").read_bytes(), MAX_PIXELS)
    assert (decoded.width, decoded.height) == (810, 1080)
    assert decoded.image.size == (810, 1080)
    assert decoded.image.mode == "RGB"
    assert decoded.scale == (1.0, 1.0)


@pytest.mark.parametrize("orientation", [6, 8])
def test_decode_applies_exif_rotation(orientation: int) -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    # Stored 64x32 sideways: red on the left, blue on the right.
    data = encoded(red_left_blue_right(64, 32), "JPEG", quality=95, exif=exif)

    decoded = decode_image(data, MAX_PIXELS)

    assert (decoded.width, decoded.height) == (32, 64)
    assert decoded.image.size == (32, 64)
    # 6: turned 90° clockwise to display, the stored left side is on top; 8: at the bottom.
    top, bottom = (RED, BLUE) if orientation == 6 else (BLUE, RED)
    assert_colour(decoded.image.getpixel((16, 8)), top)
    assert_colour(decoded.image.getpixel((16, 56)), bottom)


@pytest.mark.parametrize(
    ("draft", "decoded_size"),
    [
        (None, (4000, 3000)),
        (min_size(512, 512), (1000, 750)),  # 1/8 would be 500x375: below 512
        (min_long_side(640), (1000, 750)),  # 1/8 would leave 500 on the long side
        (min_long_side(480), (500, 375)),
        (min_long_side(8000), (4000, 3000)),  # a smaller image stays whole
    ],
)
def test_decode_drafts_large_jpeg_and_reports_full_size(
    draft, decoded_size: tuple[int, int]
) -> None:
    data = encoded(red_left_blue_right(4000, 3000), "JPEG", quality=90)

    decoded = decode_image(data, MAX_PIXELS, draft=draft)

    assert decoded.image.size == decoded_size
    assert (decoded.width, decoded.height) == (4000, 3000)
    assert decoded.scale == (decoded_size[0] / 4000, decoded_size[1] / 3000)
    assert decoded.image.mode == "RGB"
    w, h = decoded_size
    assert_colour(decoded.image.getpixel((w // 4, h // 2)), RED)
    assert_colour(decoded.image.getpixel((3 * w // 4, h // 2)), BLUE)


@pytest.mark.parametrize(
    ("stored", "decoded_size"),
    [
        ((1280, 640), (640, 320)),
        # Half of 639 is 319.5: the short side is rounded up, so 1/2 scale is too small.
        ((1280, 639), (1280, 639)),
        ((639, 1280), (639, 1280)),
    ],
)
def test_min_long_side_rounds_the_short_side_up(
    stored: tuple[int, int], decoded_size: tuple[int, int]
) -> None:
    data = encoded(Image.new("RGB", stored, RED), "JPEG")
    decoded = decode_image(data, MAX_PIXELS, draft=min_long_side(640))
    assert decoded.image.size == decoded_size
    assert (decoded.width, decoded.height) == stored


def test_decode_drafts_rotated_jpeg_in_the_upright_frame() -> None:
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    data = encoded(red_left_blue_right(4000, 3000), "JPEG", quality=90, exif=exif)

    decoded = decode_image(data, MAX_PIXELS, draft=min_size(512, 512))

    assert (decoded.width, decoded.height) == (3000, 4000)
    assert decoded.image.size == (750, 1000)
    assert decoded.scale == (0.25, 0.25)
    assert_colour(decoded.image.getpixel((375, 250)), RED)
    assert_colour(decoded.image.getpixel((375, 750)), BLUE)


def test_decode_never_drafts_other_formats() -> None:
    data = encoded(Image.new("RGB", (2000, 1000), RED), "PNG")
    decoded = decode_image(data, MAX_PIXELS, draft=min_size(512, 512))
    assert decoded.image.size == (2000, 1000)
    assert decoded.scale == (1.0, 1.0)


@pytest.mark.parametrize(
    ("image", "fmt", "pixel"),
    [
        (Image.new("RGBA", (8, 8), (10, 20, 30, 255)), "PNG", (10, 20, 30)),
        (Image.new("L", (8, 8), 77), "PNG", (77, 77, 77)),
        (Image.new("RGB", (8, 8), RED).convert("P"), "GIF", RED),
        (Image.new("RGB", (8, 8), (1, 2, 3)), "BMP", (1, 2, 3)),
    ],
    ids=["png-rgba", "png-gray", "gif-palette", "bmp"],
)
def test_decode_converts_to_rgb(image: Image.Image, fmt: str, pixel: tuple[int, int, int]) -> None:
    decoded = decode_image(encoded(image, fmt), MAX_PIXELS)
    assert isinstance(decoded, DecodedImage)
    assert decoded.image.mode == "RGB"
    assert (decoded.width, decoded.height) == (8, 8)
    assert decoded.image.getpixel((4, 4)) == pixel


def test_decode_refuses_truncated_png() -> None:
    data = encoded(Image.effect_noise((64, 64), 50).convert("RGB"), "PNG")
    with pytest.raises(InvalidImage) as caught:
        decode_image(data[: len(data) // 2], MAX_PIXELS)
    assert str(caught.value) == "corrupt or truncated PNG data (image file is truncated)"


def test_decode_refuses_formats_outside_the_list() -> None:
    data = encoded(Image.new("RGB", (8, 8), RED), "PPM")
    with pytest.raises(InvalidImage, match=NOT_AN_IMAGE):
        decode_image(data, MAX_PIXELS)
