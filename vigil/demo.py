"""`vigil up`: the whole local stack, and the sample run that shows it working."""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx

from vigil.devservices.procs import free_port, wait_until
from vigil.devservices.stack import Stack, start_stack

DEMO_CAMERAS = ("front_door", "driveway")


def _say(message: str) -> None:
    print(f"[vigil {time.strftime('%H:%M:%S')}] {message}", flush=True)


def start_apps(stack: Stack, camera_root: Path, api_port: int, **env: str) -> str:
    """Start the worker, the projector, the job runner and the API on `stack`; returns the
    API's base URL. Exports go under the stack's state folder, where runner and API meet."""
    camera_root.mkdir(parents=True, exist_ok=True)
    common = {"CAMERA_ROOT": str(camera_root), "DATA_DIR": str(stack.state_dir / "data"), **env}
    stack.start_app("worker", **common)
    stack.start_app("projector", **common)
    stack.start_app("runner", **common)
    api = stack.start_app("api", API_PORT=str(api_port), **common)
    base = f"http://127.0.0.1:{api_port}"
    wait_until(
        lambda: httpx.get(f"{base}/api/system/health", timeout=2).status_code == 200,
        timeout=60,
        what="API",
        alive=api.alive,
    )
    return base


def drop_samples(camera_root: Path, samples: list[Path]) -> dict[str, list[Path]]:
    dropped: dict[str, list[Path]] = defaultdict(list)
    for index, sample in enumerate(samples):
        camera = DEMO_CAMERAS[index % len(DEMO_CAMERAS)]
        folder = camera_root / camera
        folder.mkdir(parents=True, exist_ok=True)
        # Write under a temporary name and rename, as an FTP server finishing an upload does.
        partial = folder / f".{sample.name}.part"
        shutil.copyfile(sample, partial)
        target = folder / sample.name
        partial.rename(target)
        dropped[camera].append(target)
    return dropped


def wait_for_detections(base: str, dropped: dict[str, list[Path]], timeout: float) -> dict:
    """Poll the API until every dropped file has detections; returns them by file path."""
    wanted = {str(p) for paths in dropped.values() for p in paths}
    found: dict[str, list[dict]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = defaultdict(list)
        for camera in dropped:
            reply = httpx.get(
                f"{base}/api/detections", params={"camera_id": camera, "limit": 1000}, timeout=5
            ).json()
            for detection in reply["detections"]:
                found[detection["file_path"]].append(detection)
        missing = wanted - found.keys()
        if not missing:
            break
        _say(f"waiting for detections: {len(wanted) - len(missing)}/{len(wanted)} images done")
        time.sleep(2)
    return found


def print_detections(found: dict[str, list[dict]]) -> None:
    for path in sorted(found):
        rows = sorted(found[path], key=lambda d: -d["confidence"])
        first = rows[0]
        print(
            f"\n{first['camera_id']}/{Path(path).name}  "
            f"({first['model_name']} v{first['model_version']}, {first['latency_ms']:.0f} ms)"
        )
        for d in rows:
            box = d["bbox"]
            print(
                f"  {d['label']:<14} {d['confidence']:.2f}  "
                f"box=({box['x1']:.0f},{box['y1']:.0f})-({box['x2']:.0f},{box['y2']:.0f})"
            )


def flush_and_wait_for_events(
    base: str, cameras: list[str], timeout: float, api_key: str
) -> list[dict]:
    """Flush the cameras' open batches (as a user can) and wait for their security events."""
    active = httpx.get(f"{base}/api/batches/active", timeout=5).json()["batches"]
    for batch in active:
        if batch["camera_id"] in cameras:
            _say(
                f"flushing {batch['batch_id']} ({batch['camera_id']}, "
                f"{batch['detection_count']} detections)"
            )
            httpx.post(
                f"{base}/api/batches/{batch['batch_id']}/flush",
                headers={"X-API-Key": api_key},
                timeout=30,
            )
    deadline = time.monotonic() + timeout
    events: list[dict] = []
    while time.monotonic() < deadline:
        events = [
            e
            for camera in cameras
            for e in httpx.get(
                f"{base}/api/events", params={"camera_id": camera}, timeout=5
            ).json()["events"]
        ]
        if {e["camera_id"] for e in events} >= set(cameras):
            break
        _say(f"waiting for the risk analysis: {len(events)}/{len(cameras)} events")
        time.sleep(2)
    return events


def print_events(events: list[dict]) -> None:
    for event in events:
        print(
            f"\nevent {event['id']}  {event['camera_id']}  risk {event['risk_score']} "
            f"({event['risk_level']}), {event['detection_count']} detections, "
            f"{event['model_name']} prompt v{event['prompt_version']}"
        )
        print(f"  summary:   {event['summary']}")
        print(f"  reasoning: {event['reasoning']}")


def run_up(state_dir: Path, *, demo: bool, exit_after_demo: bool) -> int:
    from api.security import new_api_key
    from vigil.models import sample_images

    started = time.monotonic()
    _say(f"starting services (state in {state_dir})")
    stack = start_stack(state_dir)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        _say(f"Kafka {stack.kafka_bootstrap}, Postgres ready, Triton {stack.triton_url}")
        camera_root = state_dir / "cameras"
        api_key, digest = new_api_key()
        base = start_apps(stack, camera_root, free_port(), API_KEY_HASHES=digest)
        _say(f"API on {base}  (docs: {base}/docs) in {time.monotonic() - started:.0f}s")
        _say(f"API key for POST/PUT/DELETE (header X-API-Key): {api_key}")
        _say(f"camera folders: {camera_root}/<camera_id>/  (drop JPEG/PNG files there)")
        if demo:
            dropped = drop_samples(camera_root, sample_images())
            _say(
                f"dropped {sum(map(len, dropped.values()))} sample photos into {', '.join(dropped)}"
            )
            found = wait_for_detections(base, dropped, timeout=180)
            print_detections(found)
            events = flush_and_wait_for_events(base, list(dropped), timeout=180, api_key=api_key)
            print_events(events)
            _say(f"live events: ws://{base.removeprefix('http://')}/ws/events")
            total = sum(len(paths) for paths in dropped.values())
            if len(found) < total:
                _say(f"only {len(found)}/{total} images produced detections; see {state_dir}/*.log")
                if exit_after_demo:
                    return 1
        if exit_after_demo:
            return 0
        _say("running; Ctrl-C stops every process started here")
        while not stop.wait(1.0):
            dead = [p.name for p in stack.apps if not p.alive()]
            if dead:
                _say(f"{', '.join(dead)} exited; see {state_dir}/<name>.log. Stopping.")
                return 1
        return 0
    finally:
        _say("stopping")
        stack.stop()
