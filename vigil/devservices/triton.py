"""A real Triton Inference Server on 127.0.0.1, from the `nvidia-pytriton` wheel.

The wheel ships `tritonserver` (2.51) with only the Python backend, so each model
in `triton_models/` that runs here is a Python-backend `model.py` (ONNX through
onnxruntime). Everything runs from a private venv in the cache:

- the Python backend stub is built per Python version and must sit beside
  `libtriton_python.so` as `triton_python_backend_stub` (pytriton copies it there
  at run time; we do it once when the venv is built);
- the stub embeds libpython and finds its interpreter through PATH, so the venv's
  `bin` goes first on PATH, and LD_LIBRARY_PATH starts with the LIBDIR of the
  venv's base Python; otherwise the stub can load a different libpython3.x (the
  system's) than the interpreter it runs, and models fail with
  "'_thread.RLock' object has no attribute '_recursion_count'";
- what the models share (`vigil_triton`: image decoding, error responses) is
  this checkout's `triton_lib/`, made importable by a `.pth` file in the venv's
  site-packages rather than installed, so a change to it needs no venv rebuild
  (production installs it into its image: `triton_lib/Dockerfile`). The file is
  rewritten on every start, so a moved checkout heals; checkouts sharing one
  cache (VIGIL_CACHE_DIR) serve the `triton_lib/` of the one that started last.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from vigil.devservices.cpu_models import CpuPlan, configured_repository, cpu_plan
from vigil.devservices.procs import (
    REPO_ROOT,
    ManagedProcess,
    cache_dir,
    free_port,
    start_process,
    wait_until,
)
from vigil.devservices.triton_llm import ensure_llm_packages
from vigil.models import ensure_venv

log = logging.getLogger(__name__)

TRITON_REQUIREMENTS = (
    "nvidia-pytriton==0.7.0",
    "numpy==1.26.4",
    "onnxruntime==1.20.1",
    "pillow==13.0.0",
)
MODEL_REPOSITORY = REPO_ROOT / "triton_models"
TRITON_LIB = REPO_ROOT / "triton_lib"  # the `vigil_triton` package the models import
READY_TIMEOUT = 120.0
_LAYOUT_FILE = "vigil-triton.json"
_PROBE = (
    "import json, sys, sysconfig, pytriton, pathlib;"
    "print(json.dumps({'libdir': sysconfig.get_config_var('LIBDIR'),"
    " 'python': f'{sys.version_info[0]}.{sys.version_info[1]}',"
    " 'pytriton': str(pathlib.Path(pytriton.__file__).parent)}))"
)


@dataclass(frozen=True)
class TritonLayout:
    venv: Path
    server: Path
    backends: Path
    lib_path: list[str]


def _layout(venv: Path) -> TritonLayout:
    """Where the server, backends and libraries are inside the venv (probed once, then cached)."""
    cached = venv / _LAYOUT_FILE
    if cached.exists():
        info = json.loads(cached.read_text())
    else:
        probe = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _PROBE], capture_output=True, text=True, check=True
        )
        info = json.loads(probe.stdout)
        dist = Path(info["pytriton"]) / "tritonserver"
        stub = dist / "python_backend_stubs" / info["python"] / "triton_python_backend_stub"
        if not stub.exists():
            raise RuntimeError(f"pytriton ships no Python backend stub for Python {info['python']}")
        target = dist / "backends" / "python" / "triton_python_backend_stub"
        target.write_bytes(stub.read_bytes())
        target.chmod(0o755)
        cached.write_text(json.dumps(info))
    dist = Path(info["pytriton"]) / "tritonserver"
    return TritonLayout(
        venv=venv,
        server=dist / "bin" / "tritonserver",
        backends=dist / "backends",
        lib_path=[info["libdir"], str(Path(info["pytriton"]).parent / "nvidia_pytriton.libs")],
    )


def ensure_triton_venv() -> Path:
    """The cached venv holding tritonserver and the models' Python dependencies."""
    venv = ensure_venv(cache_dir() / "triton-venv", TRITON_REQUIREMENTS)
    _layout(venv)
    ensure_llm_packages(venv)  # the nemotron model's llama.cpp and SmolLM2 weights
    _link_triton_lib(venv)
    return venv


def _link_triton_lib(venv: Path) -> None:
    """Put TRITON_LIB on the venv's sys.path (atomically: other sessions may be starting)."""
    python = f"python{sys.version_info.major}.{sys.version_info.minor}"  # ensure_venv's own
    pth = venv / "lib" / python / "site-packages" / "vigil_triton.pth"
    tmp = pth.with_name(f"{pth.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{TRITON_LIB}\n")
    tmp.replace(pth)


_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # ignore *_proxy


def _ready(url: str) -> bool:
    with _LOOPBACK.open(url, timeout=2) as response:
        return response.status == 200


@dataclass
class TritonService:
    http_url: str
    grpc_url: str
    metrics_url: str
    models: list[str]
    argv: list[str] = field(repr=False)
    env: dict[str, str] = field(repr=False)
    state_dir: Path
    # How the CPU models share the cores (None: a repository of the caller's, served as is).
    cpu_plan: CpuPlan | None = None
    timeout: float = READY_TIMEOUT
    process: ManagedProcess | None = None

    def start(self) -> None:
        """Start the server (again: same ports, same models) and wait until it is ready."""
        process = start_process("tritonserver", self.argv, state_dir=self.state_dir, env=self.env)
        base = f"http://{self.http_url}"
        try:
            wait_until(
                lambda: (
                    _ready(f"{base}/v2/health/ready")
                    and all(_ready(f"{base}/v2/models/{name}/ready") for name in self.models)
                ),
                timeout=self.timeout,
                what=f"tritonserver ({', '.join(self.models)})",
                interval=0.25,
                alive=process.alive,
            )
        except (TimeoutError, RuntimeError) as exc:
            tail = process.log_tail(60)
            process.stop()
            raise RuntimeError(f"{exc}\n--- {process.log_path} ---\n{tail}") from exc
        except BaseException:
            process.stop()
            raise
        self.process = process
        log.info("tritonserver ready on %s serving %s", base, self.models)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines) if self.process is not None else ""


def start_triton(
    state_dir: Path,
    models: list[str] | None = None,
    *,
    model_repository: Path = MODEL_REPOSITORY,
    extra_repositories: tuple[Path, ...] = (),
    timeout: float = READY_TIMEOUT,
    cpu: CpuPlan | None = None,
) -> TritonService:
    """Start tritonserver serving `models` (default: centernet) and wait until they are ready.

    The project's own repository is served with its CPU models configured for `cpu`
    (default: `cpu_plan()`, from this machine's cores and the TRITON_CPU_* variables)."""
    models = list(models or ["centernet"])
    layout = _layout(ensure_triton_venv())
    state_dir.mkdir(parents=True, exist_ok=True)
    if model_repository == MODEL_REPOSITORY:
        cpu = cpu or cpu_plan()
        model_repository = configured_repository(
            MODEL_REPOSITORY, state_dir / "model-repository", cpu
        )
    else:
        cpu = None
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    argv = [
        str(layout.server),
        f"--model-repository={model_repository}",
        *(f"--model-repository={path}" for path in extra_repositories),
        f"--backend-directory={layout.backends}",
        # Distinct /dev/shm names so several servers on one host never share a region.
        f"--backend-config=python,shm-region-prefix-name=vigil{os.getpid()}p{http_port}_",
        "--model-control-mode=explicit",
        *(f"--load-model={name}" for name in models),
        "--http-address=127.0.0.1",
        f"--http-port={http_port}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={grpc_port}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--allow-gpu-metrics=false",
        "--pinned-memory-pool-byte-size=0",
        "--exit-on-error=true",
        "--exit-timeout-secs=5",
    ]
    env = {
        "LD_LIBRARY_PATH": ":".join(
            [*layout.lib_path, *filter(None, [os.environ.get("LD_LIBRARY_PATH")])]
        ),
        "PATH": f"{layout.venv / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "VIRTUAL_ENV": str(layout.venv),
        # Empty means unset to Python: keep the caller's interpreter settings out of the stub.
        "PYTHONHOME": "",
        "PYTHONPATH": "",
        "PYTHONNOUSERSITE": "1",
    }
    service = TritonService(
        http_url=f"127.0.0.1:{http_port}",
        grpc_url=f"127.0.0.1:{grpc_port}",
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
        models=models,
        argv=argv,
        env=env,
        state_dir=state_dir,
        cpu_plan=cpu,
        timeout=timeout,
    )
    service.start()
    return service
