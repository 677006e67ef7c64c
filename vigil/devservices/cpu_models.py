"""The CPU models configured for the machine they run on.

A CPU model's throughput depends on how its Triton instances and onnxruntime's intra-op
threads share the cores. The checked-in `config.pbtxt` of such a model is a template:
`configured_repository` serves a copy of the model repository (links, except for the
configurations it rewrites) where each model of `CPU_MODELS` has `plan.instances`
instances of `plan.threads` intra-op threads each.

The plan follows the core count (`cpu_plan`): one instance per core, one intra-op thread
each, up to `MAX_INSTANCES` instances (a Python-backend instance is a process of its own
with its own onnxruntime session); past that the cores are shared out as threads. Measured
on this 2-core machine (48 images, 1/2/4/8 requests in flight, best level): 2 instances x 1
thread 25.4 images/s, 1 x 2 threads 20.1, 1 x 1 13.8; one request alone is faster with
1 x 2 (48 ms against 77), but the pipeline keeps several in flight. `TRITON_CPU_INSTANCES`
and `TRITON_CPU_THREADS` override it. `vigil bench` reports the plan it measured.
"""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

# The models whose configuration takes an instance count and an `intra_op_threads` parameter.
CPU_MODELS = ("centernet",)
MAX_INSTANCES = 8

_INSTANCE_COUNT = re.compile(r"(instance_group\s*\[\s*\{\s*count:\s*)\d+")
_INTRA_OP = re.compile(r'(key:\s*"intra_op_threads"\s*value:\s*\{\s*string_value:\s*")\d+(")')


@dataclass(frozen=True)
class CpuPlan:
    cores: int
    instances: int
    threads: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _positive(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{name} must be a whole number of at least 1, not {raw!r}")
    return value


def cpu_plan(cores: int | None = None, env: dict[str, str] | None = None) -> CpuPlan:
    """Instances and intra-op threads for a machine of `cores` cores (default: this one's),
    unless TRITON_CPU_INSTANCES / TRITON_CPU_THREADS (in `env`, default os.environ) say."""
    env = os.environ if env is None else env
    cores = cores or os.cpu_count() or 1
    instances = min(cores, MAX_INSTANCES)
    threads = max(1, cores // instances)
    if raw := env.get("TRITON_CPU_THREADS"):
        threads = _positive("TRITON_CPU_THREADS", raw)
    if raw := env.get("TRITON_CPU_INSTANCES"):
        instances = _positive("TRITON_CPU_INSTANCES", raw)
    return CpuPlan(cores=cores, instances=instances, threads=threads)


def configure(config: str, plan: CpuPlan) -> str:
    """`config` (a CPU model's config.pbtxt) with the plan's instance count and threads."""
    configured, counts = _INSTANCE_COUNT.subn(rf"\g<1>{plan.instances}", config)
    configured, threads = _INTRA_OP.subn(rf"\g<1>{plan.threads}\g<2>", configured)
    if (counts, threads) != (1, 1):
        raise ValueError(
            "a CPU model's configuration needs one instance_group count and one "
            f"intra_op_threads parameter (found {counts} and {threads})"
        )
    return configured


def configured_repository(source: Path, target: Path, plan: CpuPlan) -> Path:
    """`target` made a copy of the model repository `source` for `plan`: every entry a link
    to the source, except the CPU models' configurations, written for the plan."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for entry in sorted(source.iterdir()):
        if entry.name not in CPU_MODELS:
            (target / entry.name).symlink_to(entry.resolve())
            continue
        model = target / entry.name
        model.mkdir()
        for part in sorted(entry.iterdir()):
            if part.name == "config.pbtxt":
                (model / part.name).write_text(configure(part.read_text(), plan))
            else:
                (model / part.name).symlink_to(part.resolve())
    return target
