"""Detection benchmark: Triton alone vs the whole path, measured in one run.

Baseline: the detector called directly through Triton at its best: the same images sent
with 1, 2, 4 and 8 requests in flight, each level reported, and the fastest taken (with the
CPU models' instances and intra-op threads as the project configures them for this machine,
reported beside it). Whole path, with the worker on its default settings: files dropped
into a camera folder -> watcher -> Kafka -> detection agent -> Triton -> Kafka ->
projector -> Postgres, timed from each file's arrival (its rename into the folder) to its
first detection row: once with every file at once (throughput), once with the files
arriving at half Triton's best rate (the latency the path adds beside the detector's own),
and once more at once with a second worker in the group. The clock starts after a first
image per partition went through (the path's start-up is not its throughput). The whole
path runs every stage on its defaults: the enrichment model and the batching share the
machine with the detector, as they do for a user.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from pathlib import Path

from sqlalchemy import text

from bench import cpu
from bench.event_latency import measure
from projections.db import make_engine
from schemas.topics import partition_for
from streams.detector import TritonDetector
from vigil.devservices.stack import Stack, start_stack


def _variants(samples: list[Path], count: int, run: str = "") -> list[bytes]:
    """`count` distinct files: sample photos with a counter appended after the image data."""
    blobs = [p.read_bytes() for p in samples]
    return [blobs[i % len(blobs)] + f"\n#vigil-bench-{run}{i}".encode() for i in range(count)]


IN_FLIGHT = (1, 2, 4, 8)


async def _triton_at(detector: TritonDetector, images: list[bytes], in_flight: int) -> dict:
    """Every image through the detector with `in_flight` requests outstanding at a time."""
    queue = list(reversed(images))
    latencies: list[float] = []

    async def sender() -> None:
        while queue:
            image = queue.pop()
            started = time.perf_counter()
            await detector.detect(image)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    return {
        "in_flight": in_flight,
        "images_per_s": round(len(images) / elapsed, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
    }


async def _triton_alone(stack: Stack, model: str, images: list[bytes]) -> list[dict]:
    detector = TritonDetector(stack.triton_url, model)
    try:
        await asyncio.gather(*(detector.detect(image) for image in images[:8]))  # warm-up
        return [await _triton_at(detector, images, n) for n in IN_FLIGHT]
    finally:
        await detector.close()


def _cameras(partitions: int) -> list[str]:
    """New camera ids, one on each partition of the keyed topics (Kafka's default
    partitioner: murmur2 of the key), so that every worker of the group gets a share."""
    by_partition: dict[int, str] = {}
    while len(by_partition) < partitions:
        camera = f"bench-{uuid.uuid4().hex[:8]}"
        by_partition.setdefault(partition_for(camera, partitions), camera)
    return [by_partition[p] for p in range(partitions)]


def _whole_path(
    stack: Stack,
    images: list[bytes],
    camera_root: Path,
    timeout: float,
    rate: float | None = None,
) -> dict:
    """Drop `images` into new camera folders, one per partition in turn, all at once or
    `rate` per second, and wait for their detection rows. Per file: arrival (its rename into
    the folder) -> its first detection row, and the same minus the detector's own latency
    (`latency_ms`)."""
    cameras = _cameras(stack.settings().topic_partitions)
    for camera in cameras:
        (camera_root / camera).mkdir(parents=True)
    engine = make_engine(stack.database_url)
    arrived: dict[str, float] = {}
    started = time.time()
    for index, data in enumerate(images):
        if rate is not None:
            time.sleep(max(0.0, started + index / rate - time.time()))
        folder = camera_root / cameras[index % len(cameras)]
        partial = folder / f".{index}.part"
        partial.write_bytes(data)
        target = folder / f"img-{index:05d}.jpg"
        partial.rename(target)
        arrived[str(target)] = time.time()
    deadline = time.monotonic() + timeout
    done: dict[str, tuple[float, float]] = {}
    while time.monotonic() < deadline and len(done) < len(images):
        with engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT file_path, extract(epoch FROM min(created_at)), max(latency_ms) "
                    "FROM detections WHERE camera_id = ANY(:cameras) GROUP BY file_path"
                ),
                {"cameras": cameras},
            ).all()
        done = {path: (float(at), float(model_ms) / 1000) for path, at, model_ms in rows}
        time.sleep(0.2)
    engine.dispose()
    return {
        "completed": len(done),
        "elapsed_s": (max(at for at, _ in done.values()) - started) if done else None,
        "latencies_s": sorted(at - arrived[p] for p, (at, _) in done.items()),
        "beside_detector_s": sorted(at - model - arrived[p] for p, (at, model) in done.items()),
    }


def _rate(run: dict) -> float:
    """Images per second of a `_whole_path` run, from the first arrival to the last row."""
    return run["completed"] / run["elapsed_s"] if run["elapsed_s"] else 0.0


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(values: list[float], q: float) -> float | None:
    return round(_percentile(values, q) * 1000, 1) if values else None


def run(state_dir: Path, count: int = 60, bursts: int = 8) -> dict:
    from vigil.models import sample_images

    stack = start_stack(state_dir)
    try:
        samples = [p for p in sample_images() if p.suffix.lower() in {".jpg", ".jpeg"}]
        images = _variants(samples, count)
        model = stack.settings().detector_model
        # None when the stack uses a Triton of its own (TRITON_URL), configured as it is.
        stack_plan = (
            stack.triton.cpu_plan.as_dict() if stack.triton and stack.triton.cpu_plan else None
        )
        alone = asyncio.run(_triton_alone(stack, model, images))
        camera_root = state_dir / "cameras"
        camera_root.mkdir(parents=True, exist_ok=True)
        # The worker on its defaults (FILE_STABLE_S, WATCH_INTERVAL_S ... as a user has them).
        worker = stack.start_app("worker", CAMERA_ROOT=str(camera_root))
        projector = stack.start_app("projector")
        # The clock starts once the path is up: a first image of each camera partition
        # through it (the worker joined its group, the watcher read back what was announced).
        warm_up = _whole_path(stack, _variants(samples, 3, "warm-up"), camera_root, 300)
        # The services this run started (one given by its URL is not on this machine's books).
        services = {"triton": stack.triton, "kafka": stack.kafka, "postgres": stack.postgres}
        roots = {name: s.process.pid for name, s in services.items() if s is not None}
        roots |= {"worker": worker.pid, "projector": projector.pid}
        before = cpu.snapshot()
        path = _whole_path(stack, images, camera_root, timeout=300)
        spent = cpu.split(before, cpu.snapshot(), roots)
        # Arrivals at half Triton's best rate: the latency the pipeline adds to the detector.
        paced_rate = max(alone, key=lambda level: level["images_per_s"])["images_per_s"] / 2
        paced = _whole_path(stack, images, camera_root, timeout=300, rate=paced_rate)
        # Scale-out: a second worker joins the group and takes a share of the partitions.
        second = stack.start_app("worker", name="worker-2", CAMERA_ROOT=str(camera_root))
        time.sleep(15)  # the group rebalances onto both
        _whole_path(stack, _variants(samples, 3, "warm-up-2"), camera_root, 300)
        two_workers = _whole_path(stack, _variants(samples, count, "two"), camera_root, 300)
        for process in (projector, second, worker):
            process.stop()
            stack.apps.remove(process)
        events = measure(stack, state_dir / "event-cameras", _variants(samples, bursts * 3), bursts)
    finally:
        stack.stop()
    best = max(alone, key=lambda level: level["images_per_s"])
    alone_rate = best["images_per_s"]
    path_rate, two_rate = _rate(path), _rate(two_workers)
    latencies = path["latencies_s"] or [float("nan")]
    return {
        "images": count,
        "warm_up_completed": warm_up["completed"],
        "detector_model": model,
        "triton_cpu_plan": stack_plan,
        "triton_alone": alone,
        "triton_alone_best_images_per_s": alone_rate,
        "triton_alone_best_in_flight": best["in_flight"],
        "whole_path_images_per_s": round(path_rate, 2),
        "whole_path_completed": path["completed"],
        "ratio_whole_path_to_triton_best": round(path_rate / alone_rate, 3),
        # Where the CPU went in the whole-path run, per image completed (the detector alone
        # needs about cores / triton_alone_best_images_per_s).
        "whole_path_cpu_ms_per_image": {
            name: round(seconds * 1000 / max(path["completed"], 1), 1)
            for name, seconds in spent.items()
        },
        "two_workers_images_per_s": round(two_rate, 2),
        "two_workers_completed": two_workers["completed"],
        "ratio_two_workers_to_triton_best": round(two_rate / alone_rate, 3),
        "burst_latency_p50_s": round(_percentile(latencies, 0.5), 3),
        "burst_latency_p99_s": round(_percentile(latencies, 0.99), 3),
        "paced_images_per_s": round(paced_rate, 2),
        "paced_completed": paced["completed"],
        "paced_latency_beside_detector_p50_ms": _ms(paced["beside_detector_s"], 0.5),
        "paced_latency_beside_detector_p99_ms": _ms(paced["beside_detector_s"], 0.99),
        **events,
    }


def main(state_dir: Path, count: int) -> None:
    print(json.dumps(run(state_dir, count), indent=2))
