"""Event latency benchmark: last image of a burst -> security event on the WebSocket.

Each burst drops a few photos on a fresh camera; the batch closes after the idle
wait, is analysed by the LLM, and the event reaches a WebSocket client of a real
API process. Reported latency is (event received - last image renamed into the
folder) minus the configured idle wait, so it measures the pipeline, not the timer.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import websockets

from vigil.demo import start_apps
from vigil.devservices.procs import free_port
from vigil.devservices.stack import Stack

IDLE_S = 3.0
EVENT_ENV = {
    "BATCH_IDLE_S": str(IDLE_S),
    "BATCH_CHECK_INTERVAL_S": "0.2",
    "FILE_STABLE_S": "0.2",
    "WATCH_INTERVAL_S": "0.1",
}


async def _one_burst(ws_url: str, folder: Path, images: list[bytes], timeout: float) -> float:
    camera = folder.name
    async with websockets.connect(ws_url) as socket:
        folder.mkdir(parents=True)
        last = 0.0
        for index, data in enumerate(images):
            partial = folder / f".{index}.part"
            partial.write_bytes(data)
            partial.rename(folder / f"{index}.jpg")
            last = time.time()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
            if message["event"]["camera_id"] == camera:
                return time.time() - last - IDLE_S
    raise TimeoutError(f"no event for {camera} within {timeout}s")


def _until_idle(base: str, timeout: float) -> None:
    """Wait until what an earlier run left (open batches, which close after the idle wait,
    and their analyses) is done: every stage and the projector at the end of its topics.
    A burst queued behind them would time their analyses, not its own."""
    time.sleep(IDLE_S + 2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            lags = httpx.get(f"{base}/api/system/health", timeout=10).json()["consumer_lag"]
        except (httpx.HTTPError, KeyError, ValueError):
            lags = None
        if lags and not any(n for by_topic in lags.values() for n in by_topic.values()):
            return
        time.sleep(2)
    raise TimeoutError(f"the pipeline was still busy after {timeout}s: {lags}")


def measure(stack: Stack, camera_root: Path, images: list[bytes], bursts: int) -> dict:
    port = free_port()
    base = start_apps(stack, camera_root, port, **EVENT_ENV)
    ws_url = base.replace("http://", "ws://") + "/ws/events"
    _until_idle(base, timeout=900)
    latencies = []
    for n in range(bursts):
        burst = images[n * 3 : n * 3 + 3]
        folder = camera_root / f"burst-{int(time.time())}-{n}"
        latencies.append(asyncio.run(_one_burst(ws_url, folder, burst, timeout=180)))
    ordered = sorted(latencies)
    return {
        "bursts": bursts,
        "images_per_burst": 3,
        "idle_wait_s": IDLE_S,
        "event_latency_minus_idle_p50_s": round(ordered[len(ordered) // 2], 3),
        "event_latency_minus_idle_p99_s": round(
            ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 3
        ),
        "event_latency_minus_idle_max_s": round(ordered[-1], 3),
    }
