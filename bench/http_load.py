"""A closed-loop HTTP load: `connections` clients, each with one keep-alive connection,
sending GETs back to back for `duration_s`; requests/s, p50, p99 and the errors.

It runs in a process of its own (`python -m bench.http_load URL CONNECTIONS SECONDS`,
printing one JSON line) so that it shares no interpreter with the server it loads."""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx


async def _client(url: str, until: float, latencies: list[float], errors: list[str]) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                reply = await client.get(url)
            except httpx.HTTPError as exc:
                errors.append(type(exc).__name__)
                continue
            if reply.status_code >= 500:
                errors.append(str(reply.status_code))
                continue
            latencies.append(time.perf_counter() - started)


async def _load(url: str, connections: int, duration_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.perf_counter() + duration_s
    await asyncio.gather(*(_client(url, until, latencies, errors) for _ in range(connections)))
    latencies.sort()
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "connections": connections,
        "requests_per_s": round(len(latencies) / duration_s, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
        "errors": len(errors),
    }


def measure(url: str, connections: int, duration_s: float) -> dict[str, Any]:
    """Load `url` from a process of its own and return what it measured."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.http_load", url, str(connections), str(duration_s)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    target, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    print(json.dumps(asyncio.run(_load(target, clients, seconds))))
