"""Triton Python-backend model `florence-2`: per-box captions from Florence-2 (GPU).

Same contract as `crop-attributes` (inputs, outputs, JSON keys, errors: see
../../crop-attributes/1/model.py); what differs is where the values come from:

  DESCRIPTIONS  the first `description_sentences` sentence(s) of Florence-2's
                `task_prompt` caption (default <MORE_DETAILED_CAPTION>) of the crop
                (box + `crop_margin` context, padded to a square so the processor's
                768x768 resize keeps the aspect), boilerplate such as "The image
                shows" removed
  ATTRIBUTES    `source` = "florence-2"; for persons clothing / carrying / age_group /
                gender_presentation are read from the whole caption (florence_caption.py:
                only words it contains, else [] / "unknown"; clothing falls back to the
                pixel-derived garment colours when the caption names no garment);
                colours, geometry and light are the pixel measurements of
                `vigil_crop`, as in crop-attributes
  CONFIDENCES   the caption's length-normalised likelihood: exp(sequences_scores) with
                beam search, exp(mean token log-probability) with greedy decoding

Weights are read from `weights_path` (a local transformers-format checkpoint,
`local_files_only`, HF_HUB_OFFLINE=1): nothing is downloaded at run time.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import sys
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import torch
import triton_python_backend_utils as pb_utils
from florence_caption import clean_caption, first_sentences, person_fields
from PIL import Image
from transformers import AutoProcessor, Florence2ForConditionalGeneration
from vigil_triton.imaging import InvalidImage, decode_image
from vigil_triton.requests import answer_each, image_bytes

SOURCE = "florence-2"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def _param(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def _resolve(model_dir: str, path: str) -> str:
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(model_dir, path))


def square_crop(image: Image.Image, box: tuple[float, float, float, float], margin: float):
    """The box plus `margin` context (in decoded pixels), centred on a gray square."""
    x1, y1, x2, y2 = box
    dx, dy = (x2 - x1) * margin, (y2 - y1) * margin
    left, top = max(0, math.floor(x1 - dx)), max(0, math.floor(y1 - dy))
    right = min(image.size[0], max(left + 1, math.ceil(x2 + dx)))
    bottom = min(image.size[1], max(top + 1, math.ceil(y2 + dy)))
    crop = image.crop((left, top, right, bottom))
    side = max(crop.size)
    canvas = Image.new("RGB", (side, side), (128, 128, 128))
    canvas.paste(crop, ((side - crop.size[0]) // 2, (side - crop.size[1]) // 2))
    return canvas


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        model_dir = args["model_repository"]
        shared = _resolve(model_dir, _param(config, "vigil_crop_path", "../crop-attributes/1"))
        if not os.path.isdir(os.path.join(shared, "vigil_crop")):
            raise pb_utils.TritonModelException(
                f"florence-2: the shared vigil_crop package is missing under {shared}"
            )
        if shared not in sys.path:
            sys.path.insert(0, shared)
        self.vc = importlib.import_module("vigil_crop")
        self.refused = {self.vc.InvalidRequest: "invalid request", InvalidImage: "invalid image"}

        weights = _resolve(model_dir, _param(config, "weights_path", "/weights/florence-2-large"))
        if not os.path.isfile(os.path.join(weights, "config.json")):
            raise pb_utils.TritonModelException(
                f"florence-2: no checkpoint at weights_path={weights} (config.json missing);"
                " mount a transformers-format Florence-2 checkpoint there"
            )
        on_gpu = args.get("model_instance_kind") == "GPU"
        self.device = torch.device(f"cuda:{args['model_instance_device_id']}" if on_gpu else "cpu")
        self.dtype = DTYPES[_param(config, "dtype", "float16")] if on_gpu else torch.float32
        self.processor = AutoProcessor.from_pretrained(weights, local_files_only=True)
        self.model = Florence2ForConditionalGeneration.from_pretrained(
            weights, local_files_only=True, dtype=self.dtype
        )
        self.model.to(self.device).eval()

        self.task = _param(config, "task_prompt", "<MORE_DETAILED_CAPTION>")
        self.sentences = int(_param(config, "description_sentences", "1"))
        self.max_new_tokens = int(_param(config, "max_new_tokens", "160"))
        self.num_beams = int(_param(config, "num_beams", "3"))
        self.chunk = max(1, int(_param(config, "max_crops_per_batch", "8")))
        self.margin = float(_param(config, "crop_margin", "0.1"))
        self.max_pixels = int(_param(config, "max_pixels", "40000000"))
        self.max_boxes = int(_param(config, "max_boxes", "300"))

    @torch.inference_mode()
    def caption(self, crops: list[Image.Image]) -> list[tuple[str, float]]:
        """(caption, confidence) per crop, generated `self.chunk` crops at a time."""
        results: list[tuple[str, float]] = []
        for start in range(0, len(crops), self.chunk):
            batch = crops[start : start + self.chunk]
            inputs = self.processor(
                text=[self.task] * len(batch), images=batch, return_tensors="pt", padding=True
            ).to(self.device, self.dtype)
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                num_beams=self.num_beams,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
            if self.num_beams > 1:
                scores = out.sequences_scores.float()
            else:
                steps = self.model.compute_transition_scores(
                    out.sequences, out.scores, normalize_logits=True
                ).float()
                valid = torch.isfinite(steps) & (steps != 0)
                scores = (steps * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)
            # Pure-text tasks: special tokens (<s>, </s>, <pad>) carry no content.
            texts = self.processor.batch_decode(out.sequences, skip_special_tokens=True)
            for text, score in zip(texts, scores.exp().clamp(0, 1).tolist(), strict=True):
                results.append((clean_caption(text), float(score)))
        return results

    def enrich(self, data: bytes, boxes: np.ndarray, labels: np.ndarray) -> list:
        vc = self.vc
        vc.check_shapes(boxes, labels, self.max_boxes)  # before paying for the decode
        decoded = decode_image(data, self.max_pixels)  # full resolution: the crops are captioned
        parsed = vc.parse_boxes(boxes, labels, decoded.width, decoded.height, self.max_boxes)
        frame = vc.frame_stats(decoded)
        sx, sy = decoded.scale
        crops = [
            square_crop(decoded.image, (b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy), self.margin)
            for b in parsed
        ]
        captions = self.caption(crops) if crops else []
        descriptions, attributes, confidences = [], [], []
        for box, (text, score) in zip(parsed, captions, strict=True):
            pixels = vc.analyse(decoded, frame, box)
            merged: dict[str, Any] = dict(pixels.attributes, source=SOURCE)
            if merged["kind"] == "person":
                fields = person_fields(text)
                merged.update(fields, clothing=fields["clothing"] or merged["clothing"])
            descriptions.append(
                first_sentences(text, self.sentences) if text else pixels.description
            )
            attributes.append(json.dumps(merged, ensure_ascii=False, separators=(",", ":")))
            confidences.append(score if text else 0.0)
        return [
            pb_utils.Tensor(
                "DESCRIPTIONS", np.array([d.encode() for d in descriptions], dtype=np.object_)
            ),
            pb_utils.Tensor(
                "ATTRIBUTES", np.array([a.encode() for a in attributes], dtype=np.object_)
            ),
            pb_utils.Tensor("CONFIDENCES", np.array(confidences, dtype=np.float32)),
        ]

    def answer(self, request: pb_utils.InferenceRequest) -> list[pb_utils.Tensor]:
        boxes = pb_utils.get_input_tensor_by_name(request, "BOXES").as_numpy()
        labels = pb_utils.get_input_tensor_by_name(request, "LABELS").as_numpy()
        return self.enrich(image_bytes(request), boxes, labels)

    def execute(self, requests: list) -> list:
        return answer_each(requests, self.answer, refused=self.refused, failure="enrichment")

    def finalize(self) -> None:
        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
