"""Prometheus metrics: what each process counts, and how it is read (`/metrics`).

Names follow Prometheus's conventions: the `vigil_` prefix, `_total` for counters, `_seconds`
for durations. The API served by several uvicorn workers counts in each of them: `vigil api`
then points PROMETHEUS_MULTIPROC_DIR at a fresh folder before the workers start, and
`/metrics` adds up every worker's files (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from vigil.devservices.procs import pid_alive

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter(
    "vigil_http_requests_total",
    "HTTP requests answered, by method, route template and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "vigil_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

PROJECTED = Counter(
    "vigil_projector_records_total",
    "Records the projector applied (committed with their offsets), by topic",
    ["topic"],
)
PROJECTOR_REJECTS = Counter(
    "vigil_projector_rejects_total", "Records kept as rejects, by topic", ["topic"]
)
PROJECTOR_TRANSACTION = Histogram(
    "vigil_projector_transaction_seconds",
    "Time to apply one batch of records and its offsets in one transaction",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
PROJECTOR_LAG = Gauge(
    "vigil_projector_lag_records",
    "Records on a partition beyond what the projector has applied (at its last poll)",
    ["topic", "partition"],
    multiprocess_mode="livemax",
)


STAGE_MESSAGES = Counter(
    "vigil_stage_messages_total",
    "Messages a worker's stage took in (in), published (out) and dead-lettered",
    ["stage", "direction"],
)
STAGE_IN_FLIGHT = Gauge(
    "vigil_stage_in_flight",
    "Messages a stage's handlers are working on",
    ["stage"],
    multiprocess_mode="livesum",
)
STAGE_DECISIONS = Histogram(
    "vigil_stage_decision_seconds",
    "Time from a stage taking a message in to its outcome being decided (model calls and "
    "retries included; publishing not)",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MODEL_CALLS = Histogram(
    "vigil_model_call_seconds",
    "Time of a call to a model on Triton, by model and outcome (ok, bad_input: the model "
    "refused the input, error, circuit_open: not called)",
    ["model", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
BREAKER_STATE = Gauge(
    "vigil_circuit_breaker_state",
    "A model's circuit breaker in this worker: 0 closed, 1 half-open, 2 open",
    ["model"],
    multiprocess_mode="livemax",
)
BREAKER_STATES = {"closed": 0, "half_open": 1, "open": 2}
BATCH_DETECTIONS = Histogram(
    "vigil_batch_detections",
    "Detections in a batch when it closed, by what closed it",
    ["trigger"],
    buckets=(1, 2, 5, 10, 25, 50, 100, 200, 500),
)


WATCHER_FILES = Counter(
    "vigil_watcher_files_total",
    "Files the watcher decided on: reported (a complete upload to announce; again after a "
    "failed publish), duplicate (content its camera already announced: ignored), refused "
    "(outside the camera root)",
    ["outcome"],
)


def exposition() -> tuple[bytes, str]:
    """This process's metrics (or every API worker's, in multiprocess mode) in the text
    format, and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def fresh_multiprocess_dir(path: Path) -> None:
    """Point the multiprocess mode at `path`, emptied (files of an earlier run would add to
    this one's counts). To be called before prometheus-client is imported by the workers.
    Its siblings named by the pid of a server no longer running (one killed outright) go."""
    if path.parent.is_dir():
        for sibling in path.parent.iterdir():
            if sibling.name.isdigit() and not pid_alive(int(sibling.name)):
                shutil.rmtree(sibling, ignore_errors=True)
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)


Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Scope]]
Send = Callable[[Scope], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class HttpMetrics:
    """ASGI middleware counting every HTTP request by its route's template (not its path, so
    ids make no series of their own); a request that matched no route is `unmatched`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"]
        status = 500
        recorded = False

        def record() -> None:
            nonlocal recorded
            recorded = True
            route = getattr(scope.get("route"), "path", "unmatched")
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)

        async def sending(message: Scope) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                # Before the last of the body goes: a client that has its answer finds it
                # counted, whichever worker it asks next.
                record()
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if not recorded:  # no answer went out (the app raised, the client left)
                record()
