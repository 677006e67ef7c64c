"""Closed-loop load: `connections` clients, each with one connection of its own, sending
requests back to back for `duration_s`; requests/s, p50, p99 and the errors.

A client is either HTTP (one keep-alive connection, a GET to a URL; a 5xx counts as an
error) or bare SQL (one psycopg connection in autocommit, its statements prepared on the
server, a request being the given statements run one after the other, every row fetched).

It runs in a process of its own (`python -m bench.load`, the target pickled on stdin, one
JSON line out) so that it shares no interpreter with the server it loads.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import re
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg

Send = Callable[[], Awaitable[None]]


class LoadError(Exception):
    """A request that failed: its status or the exception's type."""


@dataclass(frozen=True)
class Http:
    url: str

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Send]:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(limits=limits, timeout=10, trust_env=False) as client:

            async def send() -> None:
                try:
                    reply = await client.get(self.url)
                except httpx.HTTPError as exc:
                    raise LoadError(type(exc).__name__) from exc
                if reply.status_code >= 500:
                    raise LoadError(str(reply.status_code))

            yield send


@dataclass(frozen=True)
class Sql:
    """The statements (with their parameters) one API request runs, run bare."""

    dsn: str
    statements: tuple[tuple[str, Any], ...]

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[Send]:
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:

            async def send() -> None:
                for statement, parameters in self.statements:
                    cursor = await conn.execute(statement, parameters, prepare=True)
                    if cursor.description is not None:
                        await cursor.fetchall()

            yield send


Target = Http | Sql


async def _client(target: Target, until: float, latencies: list[float], errors: list[str]):
    async with target.connect() as send:
        while time.perf_counter() < until:
            started = time.perf_counter()
            try:
                await send()
            except LoadError as exc:
                errors.append(str(exc))
                continue
            latencies.append(time.perf_counter() - started)


def summary(latencies: list[float], errors: int, seconds: float) -> dict[str, Any]:
    """requests/s, p50 and p99 (ms) of `latencies` (seconds) over `seconds`, and errors."""
    quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / seconds, 1),
        "p50_ms": round(quantiles[49] * 1000, 2),
        "p99_ms": round(quantiles[98] * 1000, 2),
        "errors": errors,
    }


async def _load(target: Target, connections: int, duration_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    until = time.perf_counter() + duration_s
    await asyncio.gather(*(_client(target, until, latencies, errors) for _ in range(connections)))
    return {"connections": connections, **summary(latencies, len(errors), duration_s)}


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def measure_wrk(url: str, connections: int, duration_s: float) -> dict[str, Any]:
    """The same closed-loop HTTP load by wrk (Debian's, installed when missing): written in C,
    it takes a fraction of the CPU the Python client needs per request, which on a machine
    whose cores the server shares is CPU the server gets back. A non-2xx answer or a socket
    error counts as an error."""
    from vigil.devservices.debian import ensure_programs

    wrk = ensure_programs(["wrk"], ["wrk"])["wrk"]
    out = subprocess.run(
        [str(wrk), "-t", str(min(connections, 2)), "-c", str(connections),
         "-d", f"{duration_s:g}s", "--latency", url],
        check=True, capture_output=True, text=True, timeout=duration_s + 60,
    )  # fmt: skip
    return {"connections": connections, **wrk_summary(out.stdout, duration_s)}


def wrk_summary(report: str, seconds: float) -> dict[str, Any]:
    """`summary`'s figures from the text `wrk --latency` prints."""
    latency = {
        found["percent"]: float(found["value"]) * _WRK_UNITS[found["unit"]]
        for found in re.finditer(
            r"^\s+(?P<percent>50|99)(?:\.0+)?%\s+(?P<value>[\d.]+)(?P<unit>us|ms|s|m)\s*$",
            report,
            re.MULTILINE,
        )
    }
    requests = re.search(r"^\s*(\d+) requests in ", report, re.MULTILINE)
    if requests is None or set(latency) != {"50", "99"}:
        raise ValueError(f"not a wrk --latency report:\n{report}")
    socket = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", report
    )
    refused = re.search(r"Non-2xx or 3xx responses: (\d+)", report)
    errors = sum(map(int, socket.groups() if socket else ())) + int(refused[1] if refused else 0)
    return {
        "requests": int(requests[1]),
        "requests_per_s": round(int(requests[1]) / seconds, 1),
        "p50_ms": round(latency["50"], 2),
        "p99_ms": round(latency["99"], 2),
        "errors": errors,
    }


def measure(target: Target, connections: int, duration_s: float) -> dict[str, Any]:
    """Load `target` from a process of its own and return what it measured."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        input=pickle.dumps((target, connections, duration_s)),
        check=True,
        capture_output=True,
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


if __name__ == "__main__":
    loaded = pickle.loads(sys.stdin.buffer.read())
    print(json.dumps(asyncio.run(_load(*loaded))))
