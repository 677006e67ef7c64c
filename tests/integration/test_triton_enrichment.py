"""The `crop-attributes` enrichment model served by a real tritonserver (Python backend, CPU).

No mocks: the server is started by the project's launcher and requests go through
`tritonclient.http`. The bus.jpg boxes are CenterNet's detections for that photo,
checked by eye on a crop: the left man wears a cream (beige) teddy coat and dark
blue jeans, the middle man a black coat over a red shirt and blue jeans, the right
man is cut off by the frame's right edge, and the bus is blue and white.
"""

from __future__ import annotations

import io
import json
import statistics
import time
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image, ImageDraw, ImageEnhance
from tritonclient.utils import InferenceServerException

from vigil.devservices.triton import TritonService, start_triton
from vigil.models import sample_image

pytestmark = pytest.mark.services

MODEL = "crop-attributes"
PALETTE = {
    "black", "gray", "white", "red", "pink", "orange",
    "brown", "beige", "yellow", "green", "blue", "purple",
}  # fmt: skip
COMMON_KEYS = {
    "kind", "label", "source", "color", "colors", "color_shares", "box",
    "relative_width", "relative_height", "relative_area", "aspect_ratio", "size",
    "touches_edges", "brightness", "frame_brightness", "lighting", "grayscale",
    "colors_observable", "night_likely",
}  # fmt: skip
PERSON_KEYS = COMMON_KEYS | {
    "clothing", "carrying", "age_group", "gender_presentation",
    "upper_color", "upper_colors", "lower_color", "lower_colors",
}  # fmt: skip
VEHICLE_KEYS = COMMON_KEYS | {"vehicle_type", "dark_share"}

PERSON_LEFT = (49.4, 399.2, 216.9, 907.6)
PERSON_MIDDLE = (213.7, 410.1, 346.7, 852.1)
PERSON_RIGHT = (679.2, 348.8, 810.0, 877.7)
BUS = (15.8, 222.6, 789.5, 735.6)
BUS_SCENE = [
    (PERSON_LEFT, "person"),
    (BUS, "bus"),
    (PERSON_MIDDLE, "person"),
    (PERSON_RIGHT, "person"),
    ((0.0, 548.0, 48.0, 872.0), "person"),  # the man cut off by the left edge
    ((60.0, 400.0, 210.0, 650.0), "person"),  # the left man's upper body only
]


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonService]:
    service = start_triton(tmp_path_factory.mktemp("triton-enrichment"), [MODEL])
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def client(triton: TritonService) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(triton.http_url, network_timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def bus() -> bytes:
    return sample_image("bus.jpg").read_bytes()


Result = tuple[list[str], list[dict], np.ndarray]


def enrich(
    client: httpclient.InferenceServerClient,
    data: bytes,
    boxes: list[tuple[float, float, float, float]],
    labels: list[str],
) -> Result:
    image = httpclient.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([data], dtype=np.object_))
    box_array = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    box_input = httpclient.InferInput("BOXES", list(box_array.shape), "FP32")
    box_input.set_data_from_numpy(box_array)
    label_array = np.array([label.encode() for label in labels], dtype=np.object_)
    label_input = httpclient.InferInput("LABELS", [len(labels)], "BYTES")
    label_input.set_data_from_numpy(label_array)
    result = client.infer(
        MODEL,
        [image, box_input, label_input],
        outputs=[
            httpclient.InferRequestedOutput(name)
            for name in ("DESCRIPTIONS", "ATTRIBUTES", "CONFIDENCES")
        ],
    )
    descriptions = [d.decode() for d in result.as_numpy("DESCRIPTIONS").reshape(-1)]
    attributes = [json.loads(a) for a in result.as_numpy("ATTRIBUTES").reshape(-1)]
    confidences = result.as_numpy("CONFIDENCES")
    assert len(descriptions) == len(attributes) == len(confidences) == len(boxes)
    assert confidences.dtype == np.float32
    assert np.all((confidences >= 0) & (confidences <= 1))
    return descriptions, attributes, confidences


def enrich_scene(client, data: bytes, scene) -> Result:
    return enrich(client, data, [box for box, _ in scene], [label for _, label in scene])


def rejection(client, data: bytes, boxes, labels) -> str:
    with pytest.raises(InferenceServerException) as caught:
        enrich(client, data, boxes, labels)
    return caught.value.message()


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def assert_contract(attributes: dict) -> None:
    kind = attributes["kind"]
    keys = {"person": PERSON_KEYS, "vehicle": VEHICLE_KEYS}.get(kind, COMMON_KEYS)
    assert set(attributes) == keys, set(attributes) ^ keys
    assert attributes["source"] == "pixel-statistics"
    assert attributes["size"] in {"small", "medium", "large"}
    assert attributes["lighting"] in {"dark", "dim", "normal", "bright"}
    assert set(attributes["touches_edges"]) <= {"left", "top", "right", "bottom"}
    assert set(attributes["colors"]) <= PALETTE
    assert set(attributes["color_shares"]) <= PALETTE
    assert (attributes["color"] == "unknown") == (attributes["colors"] == [])
    if attributes["colors"]:
        assert attributes["color"] == attributes["colors"][0]
    if kind == "person":
        # Not observable from pixels: never invented.
        assert attributes["carrying"] == []
        assert attributes["age_group"] == "unknown"
        assert attributes["gender_presentation"] == "unknown"
        for part in ("upper", "lower"):
            colors = attributes[f"{part}_colors"]
            assert set(colors) <= PALETTE
            assert attributes[f"{part}_color"] == (colors[0] if colors else "unknown")


def test_bus_photo_people_and_bus(client, bus: bytes) -> None:
    descriptions, attributes, confidences = enrich_scene(client, bus, BUS_SCENE)
    for item in attributes:
        assert_contract(item)

    left, vehicle, middle, right = attributes[:4]
    assert (left["upper_color"], left["lower_color"]) == ("beige", "blue")
    assert left["clothing"] == ["beige upper garment", "blue lower garment"]
    assert (middle["upper_color"], middle["lower_color"]) == ("black", "blue")
    for person in (left, middle, right):
        assert person["upper_color"] in PALETTE and person["lower_color"] in PALETTE
        assert 0.35 < person["relative_height"] < 0.55
        assert person["size"] == "medium"
    assert right["touches_edges"] == ["right"]
    assert attributes[4]["touches_edges"] == ["left"]
    assert descriptions[0] == (
        "Person in a beige upper garment and blue lower garment, about 47% of frame height."
    )

    assert vehicle["vehicle_type"] == "bus"
    assert vehicle["color"] == "blue"
    assert vehicle["size"] == "large"
    assert 0 < vehicle["dark_share"] < 0.6
    assert descriptions[1].startswith("Blue and ")
    assert descriptions[1].endswith(" bus, large in frame (about 45% of frame area).")
    assert vehicle["box"] == [15.8, 222.6, 789.5, 735.6]
    assert all(a["lighting"] == "normal" and not a["night_likely"] for a in attributes)
    assert np.all(confidences[:4] > 0.2)


def test_red_rectangle_on_white_is_red(client) -> None:
    canvas = Image.new("RGB", (320, 240), (255, 255, 255))
    ImageDraw.Draw(canvas).rectangle((80, 60, 239, 179), fill=(220, 30, 30))
    scene = [
        ((80, 60, 240, 180), "car"),
        ((80, 60, 240, 180), "backpack"),
        ((0, 0, 60, 240), "person"),  # white background only
    ]
    descriptions, attributes, confidences = enrich_scene(client, png(canvas), scene)
    car, backpack, blank = attributes
    for item in attributes:
        assert_contract(item)
    assert (car["kind"], car["color"], car["colors"]) == ("vehicle", "red", ["red"])
    assert car["color_shares"] == {"red": 1.0}
    assert car["dark_share"] == 0.0
    assert (backpack["kind"], backpack["color"], backpack["colors"]) == ("object", "red", ["red"])
    assert descriptions[0] == "Red car, large in frame (about 25% of frame area)."
    assert descriptions[1] == "Red backpack, large in frame (about 25% of frame area)."
    assert (blank["upper_color"], blank["lower_color"]) == ("white", "white")
    assert confidences[0] == pytest.approx(1.0)


def test_person_split_into_upper_and_lower_garment(client) -> None:
    """Green above, blue below a boundary at 55% of the box: found exactly."""
    canvas = Image.new("RGB", (200, 400), (128, 128, 128))
    draw = ImageDraw.Draw(canvas)
    draw.rectangle((50, 20, 149, 217), fill=(40, 160, 60))  # 20 + 0.55 * 360 = 218
    draw.rectangle((50, 218, 149, 379), fill=(30, 60, 200))
    _, [person], _ = enrich(client, png(canvas), [(50, 20, 150, 380)], ["person"])
    assert_contract(person)
    assert (person["upper_colors"], person["lower_colors"]) == (["green"], ["blue"])
    assert person["clothing"] == ["green upper garment", "blue lower garment"]


def test_grayscale_frame_makes_no_colour_claims(client, bus: bytes) -> None:
    with Image.open(io.BytesIO(bus)) as image:
        gray = png(image.convert("L"))
    descriptions, attributes, confidences = enrich_scene(client, gray, BUS_SCENE[:2])
    person, vehicle = attributes
    assert vehicle["dark_share"] > 0
    for item in attributes:
        assert_contract(item)
        assert item["grayscale"] and item["night_likely"] and not item["colors_observable"]
        assert (item["color"], item["colors"], item["color_shares"]) == ("unknown", [], {})
    assert person["clothing"] == [] and person["upper_color"] == "unknown"
    assert "colours not observable" in descriptions[0]
    assert np.all(confidences <= 0.1)


def darkened(bus: bytes, factor: float) -> bytes:
    with Image.open(io.BytesIO(bus)) as image:
        return png(ImageEnhance.Brightness(image.convert("RGB")).enhance(factor))


def test_dark_frame_is_levelled_flagged_and_trusted_less(client, bus: bytes) -> None:
    """At 15% exposure the colours are still there once levelled, with less confidence."""
    _, day, day_confidences = enrich_scene(client, bus, BUS_SCENE[:2])
    descriptions, night, confidences = enrich_scene(client, darkened(bus, 0.15), BUS_SCENE[:2])
    for item, daylight in zip(night, day, strict=True):
        assert_contract(item)
        assert (item["lighting"], item["night_likely"]) == ("dark", True)
        assert item["colors_observable"] and not item["grayscale"]
        assert item["frame_brightness"] < 0.15 < daylight["frame_brightness"]
        assert item["brightness"] < daylight["brightness"]
    assert (night[0]["upper_color"], night[0]["lower_color"]) == ("beige", "blue")
    assert night[1]["color"] == "blue"
    assert all(d.endswith(" (dark lighting: colours less certain).") for d in descriptions)
    assert np.all(confidences < day_confidences)


def test_too_dark_frame_makes_no_colour_claims(client, bus: bytes) -> None:
    descriptions, attributes, confidences = enrich_scene(client, darkened(bus, 0.04), BUS_SCENE[:2])
    for item in attributes:
        assert_contract(item)
        assert not item["colors_observable"] and not item["grayscale"]
        assert (item["color"], item["colors"], item["color_shares"]) == ("unknown", [], {})
    assert attributes[0]["clothing"] == []
    assert all(d.endswith(" (too dark: colours not observable).") for d in descriptions)
    assert np.all(confidences <= 0.1)


def test_boxes_are_clipped_to_the_image(client, bus: bytes) -> None:
    _, [item], _ = enrich(client, bus, [(-50.0, 900.0, 900.0, 1500.0)], ["car"])
    assert item["box"] == [0.0, 900.0, 810.0, 1080.0]
    assert item["touches_edges"] == ["left", "right", "bottom"]


def test_no_boxes_gives_empty_outputs(client, bus: bytes) -> None:
    descriptions, attributes, confidences = enrich(client, bus, [], [])
    assert (descriptions, attributes, confidences.shape) == ([], [], (0,))


@pytest.mark.parametrize(
    ("case", "prefix", "expected"),
    [
        ("mismatch", "invalid request:", "BOXES has 2 rows but LABELS has 1 entries"),
        ("degenerate", "invalid request:", "box 1 (300, 400, 300, 600) is empty after clipping"),
        ("outside", "invalid request:", "box 0 (900, 100, 1000, 200) is empty after clipping"),
        ("nan", "invalid request:", "box 0 has a non-finite coordinate"),
        ("empty label", "invalid request:", "label 0 is empty"),
        ("truncated jpeg", "invalid image:", "truncated"),
        ("garbage", "invalid image:", "not a decodable image"),
        ("empty image", "invalid image:", "empty payload"),
    ],
)
def test_bad_requests_are_rejected_and_the_model_keeps_serving(
    client, bus: bytes, case: str, prefix: str, expected: str
) -> None:
    person = (PERSON_LEFT, "person")
    requests = {
        "mismatch": (bus, [PERSON_LEFT, BUS], ["person"]),
        "degenerate": (bus, [PERSON_LEFT, (300, 400, 300, 600)], ["person", "person"]),
        "outside": (bus, [(900, 100, 1000, 200)], ["car"]),
        "nan": (bus, [(float("nan"), 0, 10, 10)], ["car"]),
        "empty label": (bus, [PERSON_LEFT], ["  "]),
        "truncated jpeg": (bus[: len(bus) // 3], [PERSON_LEFT], ["person"]),
        "garbage": (b"not an image at all\n" * 50, [PERSON_LEFT], ["person"]),
        "empty image": (b"", [PERSON_LEFT], ["person"]),
    }
    message = rejection(client, *requests[case])
    assert message.startswith(prefix), message
    assert expected in message, message

    descriptions, attributes, _ = enrich_scene(client, bus, [person])
    assert attributes[0]["upper_color"] == "beige"
    assert descriptions[0].startswith("Person in a beige upper garment")


def test_deterministic(client, bus: bytes) -> None:
    first = enrich_scene(client, bus, BUS_SCENE)
    second = enrich_scene(client, bus, BUS_SCENE)
    assert first[0] == second[0] and first[1] == second[1]
    assert first[2].tobytes() == second[2].tobytes()


def test_latency_bus_six_boxes(client, bus: bytes) -> None:
    enrich_scene(client, bus, BUS_SCENE)  # warm-up
    timings = []
    for _ in range(20):
        start = time.perf_counter()
        enrich_scene(client, bus, BUS_SCENE)
        timings.append(time.perf_counter() - start)
    median_ms = statistics.median(timings) * 1000
    print(f"\ncrop-attributes, bus.jpg with 6 boxes: median {median_ms:.1f} ms over 20 requests")
    assert median_ms < 1000
