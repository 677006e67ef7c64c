"""The CenterNet detector served by a real tritonserver (Python backend, CPU).

No mocks: the model is converted by `ensure_models()`, the server is started by
the project's launcher, and requests go through `tritonclient.http`.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient
from PIL import Image, ImageOps
from tritonclient.utils import InferenceServerException

from tests.factories import png_claiming
from vigil.devservices.triton import TritonService, start_triton
from vigil.models import ensure_models, sample_image

pytestmark = pytest.mark.services

MODEL = "centernet"
PERSON, BUS = 0, 5


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonService]:
    ensure_models()
    service = start_triton(tmp_path_factory.mktemp("triton"), [MODEL])
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
def bus() -> Path:
    return sample_image("bus.jpg")


COCO = (Path(__file__).resolve().parents[2] / "triton_models" / "coco_labels.txt").read_text()
COCO_LABELS = COCO.splitlines()


def infer(
    client: httpclient.InferenceServerClient, data: bytes, model: str = MODEL
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """DETECTIONS, LABELS (decoded) and IMAGE_SIZE for one encoded image."""
    image = httpclient.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([data], dtype=np.object_))
    outputs = [httpclient.InferRequestedOutput(n) for n in ("DETECTIONS", "LABELS", "IMAGE_SIZE")]
    result = client.infer(model, [image], outputs=outputs)
    labels = [label.decode() for label in result.as_numpy("LABELS").reshape(-1)]
    detections = result.as_numpy("DETECTIONS")
    assert labels == [COCO_LABELS[int(c)] for c in detections[:, 5]]
    return detections, labels, result.as_numpy("IMAGE_SIZE")


def detect(client: httpclient.InferenceServerClient, data: bytes) -> tuple[np.ndarray, np.ndarray]:
    detections, _, size = infer(client, data)
    return detections, size


def rejection(client: httpclient.InferenceServerClient, data: bytes) -> str:
    with pytest.raises(InferenceServerException) as caught:
        detect(client, data)
    return caught.value.message()


def assert_bus_scene(detections: np.ndarray, width: int, height: int) -> None:
    assert detections.ndim == 2 and detections.shape[1] == 6
    assert detections.dtype == np.float32
    scores = detections[:, 4]
    assert np.all(scores >= 0.3) and np.all(scores <= 1.0)
    assert np.all(np.diff(scores) <= 0), "rows are sorted by score, highest first"
    classes = detections[:, 5]
    assert np.all(classes == np.round(classes)) and np.all((classes >= 0) & (classes < 80))
    x1, y1, x2, y2 = detections[:, 0], detections[:, 1], detections[:, 2], detections[:, 3]
    assert np.all((x1 >= 0) & (y1 >= 0) & (x2 <= width) & (y2 <= height))
    assert np.all((x2 > x1) & (y2 > y1))

    people = detections[classes == PERSON]
    assert len(people) >= 2
    for x1_, y1_, x2_, y2_, *_ in people:
        # Standing people: taller than wide, and a real part of the frame.
        assert (y2_ - y1_) > (x2_ - x1_)
        assert (y2_ - y1_) > 0.2 * height

    buses = detections[classes == BUS]
    assert len(buses) >= 1
    bx1, by1, bx2, by2 = buses[0, :4]
    assert (bx2 - bx1) > 0.6 * width, "the bus spans most of the width"
    assert 0.2 * height < (by2 - by1) < 0.8 * height


def test_bus_photo_has_people_and_a_bus(client, bus: Path) -> None:
    detections, labels, size = infer(client, bus.read_bytes())
    with Image.open(bus) as image:
        assert tuple(size.tolist()) == image.size
    assert size.dtype == np.int32
    assert_bus_scene(detections, *image.size)
    assert {"person", "bus"} <= set(labels)


def test_labels_file_is_coco80_in_yolo_order() -> None:
    assert len(COCO_LABELS) == 80
    assert COCO_LABELS[:6] == ["person", "bicycle", "car", "motorcycle", "airplane", "bus"]
    assert COCO_LABELS[79] == "toothbrush"


def test_image_without_objects_gives_no_rows(client) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (640, 480), (128, 128, 128)).save(buffer, format="PNG")
    detections, labels, size = infer(client, buffer.getvalue())
    assert detections.shape == (0, 6) and labels == []
    assert tuple(size.tolist()) == (640, 480)


def test_exif_rotated_jpeg_is_reported_upright(client, bus: Path) -> None:
    """Stored sideways with EXIF orientation 6: sizes and boxes are in the upright frame."""
    with Image.open(bus) as image:
        upright = image.convert("RGB")
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=92, exif=exif)
    data = buffer.getvalue()
    with Image.open(io.BytesIO(data)) as reopened:
        assert reopened.size == (upright.height, upright.width)
        assert ImageOps.exif_transpose(reopened).size == upright.size

    detections, size = detect(client, data)
    assert tuple(size.tolist()) == upright.size
    assert_bus_scene(detections, *upright.size)


def test_png_input(client, bus: Path) -> None:
    buffer = io.BytesIO()
    with Image.open(bus) as image:
        image.save(buffer, format="PNG")
        expected_size = image.size
    detections, size = detect(client, buffer.getvalue())
    assert tuple(size.tolist()) == expected_size
    assert_bus_scene(detections, *expected_size)


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("truncated", "truncated"),
        ("empty", "empty payload"),
        ("text", "not a decodable image"),
        ("bomb", "too large"),
    ],
)
def test_bad_input_is_rejected_and_the_model_keeps_serving(
    client, bus: Path, case: str, expected: str
) -> None:
    good = bus.read_bytes()
    payloads = {
        "truncated": good[: int(len(good) * 0.3)],
        "empty": b"",
        "text": b"camera 7 says hello\nthis is not an image\n" * 20,
        "bomb": png_claiming(30000, 30000),
    }
    message = rejection(client, payloads[case])
    assert message.startswith("invalid image:"), message
    assert expected in message, message

    detections, _ = detect(client, good)
    assert_bus_scene(detections, 810, 1080)


# --- The production `yolo26` ensemble, wired exactly as in triton_models/ ---------------
# Only `yolo26_onnx` needs the GPU onnxruntime backend, which this tritonserver lacks.
# It is replaced by a Python-backend stand-in with the same config (batching, tensor
# names and dims), so the ensemble and the real pre/postprocess steps are exercised.

STAND_IN = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Pretends to be YOLO26: one box around the non-padding content, one half its size."""

    def execute(self, requests):
        responses = []
        for request in requests:
            images = pb_utils.get_input_tensor_by_name(request, "images").as_numpy()
            out = np.zeros((images.shape[0], 300, 6), dtype=np.float32)
            for i, image in enumerate(images):
                content = np.any(np.abs(image - 114 / 255) > 1e-3, axis=0)
                ys, xs = np.nonzero(content)
                x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                w, h = x2 - x1, y2 - y1
                out[i, 0] = (x1, y1, x2, y2, 0.9, 5)
                out[i, 1] = (x1 + w / 4, y1 + h / 4, x2 - w / 4, y2 - h / 4, 0.6, 0)
                out[i, 2] = (x1, y1, x2, y2, 0.2, 2)  # below min_score
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("output0", out)]))
        return responses
'''


@pytest.fixture(scope="module")
def yolo26_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = Path(__file__).resolve().parents[2] / "triton_models"
    repo = tmp_path_factory.mktemp("yolo26-repo")
    shutil.copyfile(source / "coco_labels.txt", repo / "coco_labels.txt")
    for name in ("yolo26", "yolo26_preprocess", "yolo26_postprocess"):
        shutil.copytree(source / name, repo / name)
        step_config = repo / name / "config.pbtxt"
        # One CPU instance per step is plenty here and starts and stops faster.
        step_config.write_text(re.sub(r"count: \d+", "count: 1", step_config.read_text()))
    config = (source / "yolo26_onnx" / "config.pbtxt").read_text()
    assert 'platform: "onnxruntime_onnx"' in config and "kind: KIND_GPU" in config
    config = config.replace('platform: "onnxruntime_onnx"', 'backend: "python"')
    (repo / "yolo26_onnx" / "1").mkdir(parents=True)
    (repo / "yolo26_onnx" / "config.pbtxt").write_text(config.replace("KIND_GPU", "KIND_CPU"))
    (repo / "yolo26_onnx" / "1" / "model.py").write_text(STAND_IN)
    return repo


@pytest.fixture(scope="module")
def yolo26_client(
    tmp_path_factory: pytest.TempPathFactory, yolo26_repository: Path
) -> Iterator[httpclient.InferenceServerClient]:
    service = start_triton(
        tmp_path_factory.mktemp("triton-yolo26"), ["yolo26"], model_repository=yolo26_repository
    )
    client = httpclient.InferenceServerClient(service.http_url, network_timeout=60)
    try:
        yield client
    finally:
        client.close()
        service.stop()


def solid_jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="JPEG", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("width", "height", "orientation", "upright"),
    [
        (1000, 600, 1, (1000, 600)),
        (600, 1000, 1, (600, 1000)),
        (3000, 2000, 1, (3000, 2000)),  # decoded at reduced scale (JPEG draft)
        (1000, 600, 6, (600, 1000)),  # stored sideways, EXIF says rotate
    ],
)
def test_yolo26_ensemble_maps_boxes_back_to_original_pixels(
    yolo26_client, width: int, height: int, orientation: int, upright: tuple[int, int]
) -> None:
    data = solid_jpeg(width, height, orientation)
    detections, labels, size = infer(yolo26_client, data, "yolo26")

    assert tuple(size.tolist()) == upright
    w, h = upright
    tolerance = 2 * max(w, h) / 640  # one letterbox pixel, either side
    assert detections.shape == (2, 6)
    np.testing.assert_allclose(detections[0], [0, 0, w, h, 0.9, 5], atol=tolerance)
    np.testing.assert_allclose(
        detections[1], [w / 4, h / 4, 3 * w / 4, 3 * h / 4, 0.6, 0], atol=tolerance
    )
    assert labels == ["bus", "person"]


def test_yolo26_ensemble_rejects_bad_images(yolo26_client, bus: Path) -> None:
    image = httpclient.InferInput("IMAGE", [1], "BYTES")
    image.set_data_from_numpy(np.array([bus.read_bytes()[:5000]], dtype=object))
    with pytest.raises(InferenceServerException) as caught:
        yolo26_client.infer("yolo26", [image])
    assert "invalid image: corrupt or truncated JPEG" in caught.value.message()
