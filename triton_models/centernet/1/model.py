"""Triton Python-backend model: encoded image bytes -> COCO detections (CenterNet, CPU).

IMAGE (TYPE_STRING, [1]): the raw file bytes (JPEG, PNG, WebP, BMP, TIFF, GIF).
DETECTIONS (FP32, [N, 6]): x1, y1, x2, y2, score, class_id in pixels of the image
as displayed (EXIF orientation applied), class ids in the 80-class COCO order of
`../coco_labels.txt`, score >= `min_score`, sorted by score descending.
LABELS (BYTES, [N]): the class name of each row, from `../coco_labels.txt`.
IMAGE_SIZE (INT32, [2]): width, height of that same image.

A request that cannot be decoded gets an INVALID_ARG error "invalid image: ...";
the other requests of the batch are unaffected.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils
from PIL import Image
from vigil_triton.imaging import InvalidImage, decode_image, min_size
from vigil_triton.requests import answer_each, image_bytes

INPUT_SIZE = 512
ONNX_INPUT = "images"
ONNX_OUTPUT = "detections"
# Let libjpeg decode at 1/2..1/8 scale when the image is much larger than the input.
DRAFT = min_size(INPUT_SIZE, INPUT_SIZE)


def _param(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def letterbox(image: Image.Image) -> tuple[np.ndarray, float, int, int]:
    """Fit into INPUT_SIZE² keeping aspect, centred on black (as the model was trained)."""
    width, height = image.size
    ratio = min(INPUT_SIZE / width, INPUT_SIZE / height)
    new_w, new_h = max(1, round(width * ratio)), max(1, round(height * ratio))
    canvas = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype=np.float32)
    dx, dy = (INPUT_SIZE - new_w) // 2, (INPUT_SIZE - new_h) // 2
    resized = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    canvas[0, dy : dy + new_h, dx : dx + new_w] = np.asarray(resized, dtype=np.float32)
    return canvas, ratio, dx, dy


def nms(rows: np.ndarray, iou_threshold: float, *, per_class: bool) -> np.ndarray:
    """Greedy NMS over `rows` sorted by score descending; keeps that order."""
    boxes = rows[:, :4]
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    alive = np.ones(len(rows), dtype=bool)
    for i in range(len(rows)):
        if not alive[i]:
            continue
        xx1 = np.maximum(boxes[i, 0], boxes[:, 0])
        yy1 = np.maximum(boxes[i, 1], boxes[:, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[:, 2])
        yy2 = np.minimum(boxes[i, 3], boxes[:, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        iou = inter / np.maximum(areas[i] + areas - inter, 1e-9)
        suppress = iou > iou_threshold
        if per_class:
            suppress &= rows[:, 5] == rows[i, 5]
        suppress[: i + 1] = False
        alive &= ~suppress
    return rows[alive]


def labels_of(detections: np.ndarray, labels: list[bytes]) -> np.ndarray:
    return np.array([labels[int(c)] for c in detections[:, 5]], dtype=np.object_)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.min_score = float(_param(config, "min_score", "0.3"))
        self.iou_threshold = float(_param(config, "iou_threshold", "0.5"))
        self.duplicate_iou = float(_param(config, "duplicate_iou", "0.9"))
        self.max_pixels = int(_param(config, "max_pixels", "40000000"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(_param(config, "intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        labels_path = os.path.join(args["model_repository"], os.pardir, "coco_labels.txt")
        with open(labels_path, encoding="utf-8") as handle:
            self.labels = [line.strip().encode() for line in handle if line.strip()]
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        if not os.path.exists(path):
            raise pb_utils.TritonModelException(
                f"{path} is missing: run vigil.models.ensure_models() to build it"
            )
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    def detect(self, data: bytes) -> tuple[np.ndarray, np.ndarray]:
        decoded = decode_image(data, self.max_pixels, draft=DRAFT)
        image, width, height = decoded.image, decoded.width, decoded.height
        batch, ratio, dx, dy = letterbox(image)
        raw = self.session.run([ONNX_OUTPUT], {ONNX_INPUT: batch})[0][0]
        rows = raw[raw[:, 4] >= self.min_score].astype(np.float32)
        rows = rows[np.argsort(-rows[:, 4], kind="stable")]
        rows[:, 5] = np.round(rows[:, 5])
        # Letterbox coordinates -> decoded image -> original image (the JPEG may be drafted).
        sx, sy = width / image.size[0], height / image.size[1]
        rows[:, [0, 2]] = np.clip((rows[:, [0, 2]] - dx) / ratio * sx, 0, width)
        rows[:, [1, 3]] = np.clip((rows[:, [1, 3]] - dy) / ratio * sy, 0, height)
        rows = rows[(rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])]
        rows = nms(rows, self.iou_threshold, per_class=True)
        # One CenterNet peak can score several classes with the very same box: keep the best.
        rows = nms(rows, self.duplicate_iou, per_class=False)
        return rows.reshape(-1, 6), np.array([width, height], dtype=np.int32)

    def answer(self, request: pb_utils.InferenceRequest) -> list[pb_utils.Tensor]:
        detections, size = self.detect(image_bytes(request))
        return [
            pb_utils.Tensor("DETECTIONS", detections),
            pb_utils.Tensor("LABELS", labels_of(detections, self.labels)),
            pb_utils.Tensor("IMAGE_SIZE", size),
        ]

    def execute(self, requests: list) -> list:
        return answer_each(
            requests, self.answer, refused={InvalidImage: "invalid image"}, failure="detection"
        )
