"""API benchmark (so far the health probe; the list endpoints on seeded data are to come).

Starts Kafka, Postgres and Triton, serves `vigil api` as a process of its own, and beside it
the floor: a bare Starlette app under the same uvicorn answering the same health JSON as a
constant. Each is loaded at 1 and 16 connections (`bench.http_load`, its own process) and
reported with requests/s, p50, p99 and errors, and the API's p99 over the floor's.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.http_load import measure
from vigil.devservices.procs import free_port, start_process
from vigil.devservices.stack import start_stack

CONNECTIONS = (1, 16)
DURATION_S = 10.0
HEALTH = "/api/system/health"


def floor_app():
    """The floor: the body in FLOOR_BODY as a constant, under uvicorn like the API."""
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    body = os.environ["FLOOR_BODY"].encode()

    async def constant(_request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route(HEALTH, constant)])


def _get(url: str) -> tuple[int, bytes]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as reply:
            return reply.status, reply.read()
    except OSError:
        return 0, b""


def _wait_healthy(url: str, timeout_s: float = 120.0) -> bytes:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = _get(url)
        if status == 200 and json.loads(body)["status"] == "healthy":
            return body
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer healthy within {timeout_s:g} s")


def main(state_dir: Path) -> dict[str, Any]:
    stack = start_stack(state_dir)
    processes = []
    try:
        api_port, floor_port = free_port(), free_port()
        processes.append(stack.start_app("api", name="bench-api", API_PORT=str(api_port)))
        health = f"http://127.0.0.1:{api_port}{HEALTH}"
        body = _wait_healthy(health)
        processes.append(
            start_process(
                "bench-floor",
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "bench.api:floor_app",
                    "--port",
                    str(floor_port),
                    "--log-level",
                    "warning",
                ],
                state_dir=state_dir,
                env={**os.environ, "FLOOR_BODY": body.decode()},
            )
        )
        floor = f"http://127.0.0.1:{floor_port}{HEALTH}"
        _wait_healthy(floor)
        report: dict[str, Any] = {"duration_s": DURATION_S, "health": [], "floor": []}
        for connections in CONNECTIONS:
            report["health"].append(measure(health, connections, DURATION_S))
            report["floor"].append(measure(floor, connections, DURATION_S))
        report["health_p99_over_floor"] = [
            round(h["p99_ms"] / max(f["p99_ms"], 0.01), 2)
            for h, f in zip(report["health"], report["floor"], strict=True)
        ]
        print(json.dumps(report, indent=1))
        return report
    finally:
        for process in processes:
            process.stop()
        stack.stop()
