"""Export YOLO26 to ONNX for the production `yolo26` ensemble (opt-in, needs ultralytics).

    pip install "ultralytics>=8.4"          # pulls torch: keep it out of the runtime venvs
    python triton_models/yolo26/export.py                 # yolo26n.yaml, random weights
    python triton_models/yolo26/export.py --weights yolo26s.pt

Writes `triton_models/yolo26_onnx/1/model.onnx` with `nms=False, dynamic=True`:
input `images` [N, 3, 640, 640] float RGB 0..1, output `output0` [N, 300, 6]
(x1, y1, x2, y2, score, class), which is what `yolo26_onnx/config.pbtxt`,
`yolo26_preprocess` and `yolo26_postprocess` expect. Without a `.pt` file the
model is built from `yolo26n.yaml` with random weights: right interface, useless
detections (pretrained weights cannot be downloaded on the build machines).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

TARGET = Path(__file__).resolve().parents[1] / "yolo26_onnx" / "1" / "model.onnx"
IMAGE_SIZE = 640


def export(weights: str, target: Path = TARGET, opset: int | None = None) -> Path:
    from ultralytics import YOLO  # imported here: ultralytics is an opt-in dependency

    target = target.resolve()
    local = Path(weights).expanduser()
    previous = Path.cwd()
    with tempfile.TemporaryDirectory() as work:
        # ultralytics writes the .onnx next to the .pt (or into the cwd for a .yaml):
        # do both inside a scratch folder to keep the repository clean.
        if local.is_file():
            weights = str(shutil.copyfile(local, Path(work) / local.name))
        os.chdir(work)
        try:
            exported = YOLO(weights).export(
                format="onnx",
                imgsz=IMAGE_SIZE,
                nms=False,
                dynamic=True,
                simplify=True,
                device="cpu",
                **({"opset": opset} if opset else {}),
            )
        finally:
            os.chdir(previous)
        check(Path(work, exported))
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(work, exported), target)
    return target


def check(path: Path) -> None:
    """Fail unless the ONNX file has the tensor names and shapes the Triton configs declare."""
    import onnx

    graph = onnx.load(str(path)).graph

    def dims(value: onnx.ValueInfoProto) -> list[int | str]:
        return [d.dim_value or d.dim_param for d in value.type.tensor_type.shape.dim]

    inputs = {v.name: dims(v) for v in graph.input}
    outputs = {v.name: dims(v) for v in graph.output}
    if list(inputs) != ["images"] or len(inputs["images"]) != 4 or inputs["images"][1] != 3:
        raise SystemExit(f"unexpected inputs {inputs}: want images [N, 3, 640, 640]")
    shape = outputs.get("output0")
    if (
        shape is None
        or len(shape) != 3
        or (shape[1] != 300 and not isinstance(shape[1], str))
        or (shape[2] != 6 and not isinstance(shape[2], str))
    ):
        raise SystemExit(f"unexpected outputs {outputs}: want output0 [N, 300, 6] (end-to-end)")
    if isinstance(inputs["images"][0], int):
        raise SystemExit("the batch dimension is fixed: export with dynamic=True")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="yolo26n.yaml", help=".pt file or model .yaml")
    parser.add_argument("--output", type=Path, default=TARGET)
    parser.add_argument("--opset", type=int, default=None)
    args = parser.parse_args()
    print(export(args.weights, args.output, args.opset))


if __name__ == "__main__":
    main()
