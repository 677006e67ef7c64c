"""Triton Python-backend step: YOLO26 output -> detections in original image pixels.

RAW_DETECTIONS (FP32, [1, 300, 6]: x1, y1, x2, y2 in 640² letterbox pixels, score,
class) + LETTERBOX (FP32, [4]: gain_x, gain_y, pad_x, pad_y) + IMAGE_SIZE (INT32,
[2]) -> DETECTIONS (FP32, [N, 6]) with score >= `min_score`, boxes clipped to the
image, best first, and LABELS (BYTES, [N]) naming each row's class from
`../coco_labels.txt`. YOLO26 is NMS-free, so no suppression happens here.

Its inputs come from the ensemble's own steps, never from a caller, so any failure
here is the ensemble's own: INTERNAL "postprocess failed: ...".
"""

from __future__ import annotations

import json
import os

import numpy as np
import triton_python_backend_utils as pb_utils
from vigil_triton.requests import answer_each


def to_original(
    raw: np.ndarray, transform: np.ndarray, size: np.ndarray, min_score: float
) -> np.ndarray:
    gain_x, gain_y, pad_x, pad_y = (float(v) for v in transform)
    width, height = (float(v) for v in size)
    rows = raw.reshape(-1, 6)
    rows = rows[rows[:, 4] >= min_score].astype(np.float32)
    rows = rows[np.argsort(-rows[:, 4], kind="stable")]
    rows[:, [0, 2]] = np.clip((rows[:, [0, 2]] - pad_x) / gain_x, 0, width)
    rows[:, [1, 3]] = np.clip((rows[:, [1, 3]] - pad_y) / gain_y, 0, height)
    rows[:, 5] = np.round(rows[:, 5])
    return rows[(rows[:, 2] > rows[:, 0]) & (rows[:, 3] > rows[:, 1])].reshape(-1, 6)


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        params = config.get("parameters", {})
        self.min_score = float(params.get("min_score", {}).get("string_value", "0.3"))
        labels_path = os.path.join(args["model_repository"], os.pardir, "coco_labels.txt")
        with open(labels_path, encoding="utf-8") as handle:
            self.labels = [line.strip().encode() for line in handle if line.strip()]

    def answer(self, request: pb_utils.InferenceRequest) -> list[pb_utils.Tensor]:
        raw = pb_utils.get_input_tensor_by_name(request, "RAW_DETECTIONS").as_numpy()
        transform = pb_utils.get_input_tensor_by_name(request, "LETTERBOX").as_numpy()
        size = pb_utils.get_input_tensor_by_name(request, "IMAGE_SIZE").as_numpy()
        detections = to_original(raw, transform, size, self.min_score)
        labels = np.array([self.labels[int(c)] for c in detections[:, 5]], dtype=np.object_)
        return [pb_utils.Tensor("DETECTIONS", detections), pb_utils.Tensor("LABELS", labels)]

    def execute(self, requests: list) -> list:
        # Nothing is refused: the inputs come from the ensemble's own steps.
        return answer_each(requests, self.answer, refused={}, failure="postprocess")
