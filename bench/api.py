"""API benchmark on seeded read models (`vigil bench api`): every read endpoint a user
filters on, against the same SQL run bare, and the health probe against a constant.

Starts Kafka, Postgres and Triton (or adopts those named in the environment); when the read
models hold no detections, seeds N detections' history (`bench.seed`) and projects it
(`bench.replay.project`), so a second run reuses the first one's data. Then:

- for each case, the SQL statements the API runs to answer it, captured from the app
  itself (an SQLAlchemy listener, one request in this process), are the baseline: run bare
  through psycopg, prepared, in autocommit, on the same database;
- `vigil api`, a process of its own, is loaded over HTTP with the same request;
- `GET /api/system/health` is loaded beside its floor: a bare Starlette app under the same
  uvicorn answering the same health JSON as a constant.

Each is loaded at 1 and 16 connections (`bench.load`, a process of its own) and reported
with requests/s, p50, p99 and errors; each case with the API's p99 over bare SQL's.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Engine, event, text

from bench.load import Http, Sql, measure, measure_wrk
from bench.replay import partition_ends, project, row_counts
from bench.seed import DETECTOR, publish
from projections.db import make_engine
from vigil.devservices.procs import free_port, start_process
from vigil.devservices.stack import Stack, start_stack

CONNECTIONS = (1, 16)
DURATION_S = 5.0
HEALTH_DURATION_S = 10.0
HEALTH = "/api/system/health"
# The API is served by a process per core: one process holds the GIL while it answers.
API_WORKERS = min(os.cpu_count() or 1, 4)


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


def wait_answering(url: str, timeout_s: float = 120.0) -> bytes:
    """The body of `url`'s first 200 answer. (Health is 200 whatever it reports: served for
    the seeded detector, which Triton here does not serve, it reports the detector down.)"""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status, body = _get(url)
        if status == 200:
            return body
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout_s:g} s")


def seed_read_models(stack: Stack, engine: Engine, detections: int) -> dict[str, Any]:
    """Seed `detections` unless the read models already hold some, and project the topics
    as the deployment's projector (PROJECTOR_GROUP) up to their end: a projector started
    later goes on from there, and an earlier run cut short is finished."""
    consumer = stack.settings().projector_group
    with engine.connect() as connection:
        held = connection.execute(text("SELECT count(*) FROM detections")).scalar_one()
    seeded = None if held else publish(stack.kafka_bootstrap, detections)
    ends = partition_ends(stack.kafka_bootstrap)
    handed = bool(held) and _hand_offsets(engine, consumer, ends)
    projected = project(engine, stack.kafka_bootstrap, ends, consumer=consumer)
    return {
        "reused": bool(held),
        "seed_seconds": seeded.seconds if seeded else None,
        "offsets_handed_to_projector": handed,
        "projector": projected,
    }


def _hand_offsets(engine: Engine, consumer: str, ends: dict[tuple[str, int], int]) -> bool:
    """When `consumer` has no offsets but the read models hold rows (built by another
    consumer, as `vigil bench replay` does): the end of every topic, so the projector goes
    on from there rather than applying the history a second time."""
    with engine.begin() as connection:
        if connection.execute(
            text("SELECT count(*) FROM projection_offsets WHERE consumer = :c"), {"c": consumer}
        ).scalar_one():
            return False
        connection.execute(
            text(
                "INSERT INTO projection_offsets (consumer, topic, partition, next_offset) "
                "VALUES (:c, :t, :p, :o)"
            ),
            [{"c": consumer, "t": t, "p": p, "o": end} for (t, p), end in ends.items()],
        )
    return True


def cases(engine: Engine) -> dict[str, str]:
    """Name -> the request: the filters a user uses, with values the seeded data holds."""
    with engine.connect() as connection:
        newest = connection.execute(text("SELECT max(detected_at) FROM detections")).scalar_one()
        camera = connection.execute(
            text("SELECT camera_id FROM detections ORDER BY id LIMIT 1")
        ).scalar_one()
    week = {"start_date": (newest - timedelta(days=7)).isoformat(), "end_date": newest.isoformat()}
    day = {"start_date": (newest - timedelta(days=1)).isoformat(), "end_date": newest.isoformat()}

    def get(path: str, **query: Any) -> str:
        return f"{path}?{urlencode({**query})}" if query else path

    return {
        "detections": get("/api/detections", limit=50),
        "detections by camera": get("/api/detections", camera_id=camera, limit=50),
        "detections by label": get("/api/detections", label="person", limit=50),
        "detections by camera, label, week": get(
            "/api/detections", camera_id=camera, label="person", limit=50, **week
        ),
        "detections by label, day, page 20": get(
            "/api/detections", label="car", limit=50, offset=1000, **day
        ),
        "events": get("/api/events", limit=50),
        "events by risk level": get("/api/events", risk_level="high", limit=50),
        "events by camera, week": get("/api/events", camera_id=camera, limit=50, **week),
        "enrichment": get("/api/enrichment", limit=50),
        "enrichment by type": get("/api/enrichment", detection_type="person", limit=50),
        "enrichment by type, confidence": get(
            "/api/enrichment", detection_type="vehicle", min_confidence=0.8, limit=50
        ),
        "enrichment stats": get("/api/enrichment/stats"),
        "batches": get("/api/batches", limit=50),
        "batches by status": get("/api/batches", status="completed", limit=50),
        "batches by camera": get("/api/batches", camera_id=camera, limit=50),
        "batch stats": get("/api/batches/stats"),
        "active batches": get("/api/batches/active"),
        "ai-audit": get("/api/ai-audit", limit=50),
        "ai-audit stats": get("/api/ai-audit/stats", days=7),
        "ai-audit leaderboard": get("/api/ai-audit/leaderboard", days=7),
        "dlq stats": get("/api/dlq/stats"),
        "dlq jobs": get("/api/dlq/jobs/dlq:detection_queue", start=0, limit=50),
        "jobs": get("/api/jobs", limit=50),
        "job stats": get("/api/jobs/stats"),
    }


@dataclass(frozen=True)
class Captured:
    statements: tuple[tuple[str, Any], ...]
    answered: dict[str, int]


def _shape(body: Any) -> dict[str, int]:
    """How much an answer holds: each list's length and the count it gives, if any."""
    if not isinstance(body, dict):
        return {"items": len(body)}
    shape = {key: len(value) for key, value in body.items() if isinstance(value, list)}
    return shape | {key: body[key] for key in ("count", "total") if isinstance(body.get(key), int)}


def captured_sql(stack: Stack, requests: dict[str, str]) -> dict[str, Captured]:
    """The statements (and parameters) the app runs to answer each request, from the app in
    this process; a request that does not answer 200 is an error in the benchmark."""
    from fastapi.testclient import TestClient

    from api.main import create_app

    statements: list[tuple[str, Any]] = []

    def record(_conn, _cursor, statement, parameters, _context, _executemany) -> None:
        statements.append((statement, parameters))

    captured = {}
    event.listen(Engine, "before_cursor_execute", record)
    try:
        with TestClient(create_app(stack.settings(detector_model=DETECTOR))) as client:
            for name, request in requests.items():
                client.get(request)  # the first one also runs the app's own checks
                statements.clear()
                reply = client.get(request)
                if reply.status_code != 200:
                    raise RuntimeError(f"{request} answered {reply.status_code}: {reply.text}")
                captured[name] = Captured(tuple(statements), _shape(reply.json()))
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return captured


def start_api(stack: Stack) -> str:
    """`vigil api` on a free port, in API_WORKERS processes, listing the seeded detector's
    detections; its base URL."""
    port = free_port()
    stack.start_app(
        "api", name="bench-api", API_PORT=str(port), DETECTOR_MODEL=DETECTOR,
        API_WORKERS=str(API_WORKERS),
    )  # fmt: skip
    return f"http://127.0.0.1:{port}"


def _start_floor(state_dir: Path, body: bytes):
    port = free_port()
    floor = start_process(
        "bench-floor",
        [sys.executable, "-m", "uvicorn", "--factory", "bench.api:floor_app",
         "--port", str(port), "--log-level", "warning"],
        state_dir=state_dir,
        env={**os.environ, "FLOOR_BODY": body.decode()},
    )  # fmt: skip
    return floor, f"http://127.0.0.1:{port}{HEALTH}"


def _ratio(api: dict[str, Any], baseline: dict[str, Any]) -> float:
    return round(api["p99_ms"] / max(baseline["p99_ms"], 0.01), 2)


def main(state_dir: Path, detections: int, only_health: bool = False) -> dict[str, Any]:
    stack = start_stack(state_dir)
    try:
        engine = make_engine(stack.database_url)
        try:
            seeding = seed_read_models(stack, engine, detections)
            requests = cases(engine)
            rows = row_counts(engine)
        finally:
            engine.dispose()
        sql = captured_sql(stack, requests)
        dsn = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
        base = start_api(stack)
        body = wait_answering(base + HEALTH)
        floor, floor_url = _start_floor(state_dir, body)
        stack.apps.append(floor)
        wait_answering(floor_url)
        report: dict[str, Any] = {
            "rows": rows, "seeding": seeding, "api_workers": API_WORKERS, "duration_s": DURATION_S
        }  # fmt: skip
        report["endpoints"] = endpoints = []
        for name, request in requests.items() if not only_health else ():
            for connections in CONNECTIONS:
                api = measure(Http(base + request), connections, DURATION_S)
                bare = measure(Sql(dsn, sql[name].statements), connections, DURATION_S)
                endpoints.append(
                    {"case": name, "request": request, "answered": sql[name].answered,
                     "statements": len(sql[name].statements), "connections": connections,
                     "api": api, "bare_sql": bare, "p99_over_bare_sql": _ratio(api, bare)}
                )  # fmt: skip
                print(
                    f"{name:38s} {connections:2d} conn  api p50 {api['p50_ms']:7.2f} "
                    f"p99 {api['p99_ms']:7.2f}  sql p50 {bare['p50_ms']:7.2f} "
                    f"p99 {bare['p99_ms']:7.2f}  x{_ratio(api, bare)}",
                    flush=True,
                )
        report["health"] = health = []
        for loader, load in (
            ("python", lambda url, n: measure(Http(url), n, HEALTH_DURATION_S)),
            ("wrk", lambda url, n: measure_wrk(url, n, HEALTH_DURATION_S)),
        ):
            for connections in CONNECTIONS:
                api, floor_load = load(base + HEALTH, connections), load(floor_url, connections)
                health.append(
                    {
                        "loader": loader,
                        "connections": connections,
                        "api": api,
                        "floor": floor_load,
                        "p99_over_floor": _ratio(api, floor_load),
                    }
                )
                print(
                    f"health ({loader:6s}) {connections:2d} conn  api p50 {api['p50_ms']:6.2f} "
                    f"p99 {api['p99_ms']:6.2f}  floor p50 {floor_load['p50_ms']:6.2f} "
                    f"p99 {floor_load['p99_ms']:6.2f}",
                    flush=True,
                )  # fmt: skip
        print(json.dumps(report, indent=1, default=str))
        return report
    finally:
        stack.stop()
