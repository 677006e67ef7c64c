"""Health probes for Kafka, Postgres and Triton, and consumer lag per group; `check_all`
runs them all (the API's health monitor calls it in the background)."""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, TypeVar

import httpx
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.models import HealthResponse, ServiceHealth, TritonHealth
from projections.tables import ProjectionOffset
from schemas.envelope import utcnow
from schemas.reading import GroupOffsets
from schemas.topics import EVENT_TOPICS, STAGE_INPUTS, TopicSpec

if TYPE_CHECKING:
    from api.services import Services

log = logging.getLogger(__name__)

_TIMEOUT_S = 3.0
# How long an answer to a request about offsets is waited for.
ANSWER_TIMEOUT_S = 2 * _TIMEOUT_S

T = TypeVar("T")


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def check_postgres(session: Session) -> ServiceHealth:
    started = time.perf_counter()
    try:
        session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure is reported, not raised
        return ServiceHealth(status="unhealthy", error=f"{type(exc).__name__}: {exc}")
    return ServiceHealth(status="healthy", latency_ms=_elapsed_ms(started))


def check_kafka(admin: AdminClient) -> ServiceHealth:
    started = time.perf_counter()
    # Hands librdkafka's queued log lines to logging (the client's "logger"): they would
    # otherwise pile up while the broker is away.
    admin.poll(0)
    try:
        metadata = admin.list_topics(timeout=_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001
        return ServiceHealth(status="unhealthy", error=f"{type(exc).__name__}: {exc}")
    if not metadata.brokers:
        return ServiceHealth(status="unhealthy", error="no brokers in cluster metadata")
    return ServiceHealth(status="healthy", latency_ms=_elapsed_ms(started))


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS context of the Triton checks, built once: httpx builds one for every new client,
    reading the CA bundle, which blocked the event loop for tens of ms at each check."""
    return httpx.create_ssl_context()


async def check_triton(url: str, models: Sequence[str]) -> TritonHealth:
    started = time.perf_counter()
    base = url if url.startswith("http") else f"http://{url}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=_TIMEOUT_S, verify=_tls()) as client:
            server = await client.get("/v2/health/ready")
            states = {}
            for model in models:
                reply = await client.get(f"/v2/models/{model}/ready")
                states[model] = "ready" if reply.status_code == 200 else "unavailable"
    except httpx.HTTPError as exc:
        return TritonHealth(status="unhealthy", error=f"{type(exc).__name__}: {exc}")
    healthy = server.status_code == 200 and all(s == "ready" for s in states.values())
    return TritonHealth(
        status="healthy" if healthy else "unhealthy",
        latency_ms=_elapsed_ms(started),
        models=states,
        error=None if healthy else "server or model not ready",
    )


def _answer(future: Future[T]) -> T:
    """An admin request's answer, waited for no longer than its own timeout allows. The
    admin client's futures have been seen never to resolve across a broker restart: a wait
    without a bound held a health-check thread for good, and the answers went stale."""
    return future.result(timeout=ANSWER_TIMEOUT_S)


def _end_offsets(admin: AdminClient, topics: Sequence[TopicSpec]) -> dict[tuple[str, int], int]:
    metadata = admin.list_topics(timeout=_TIMEOUT_S)
    requests = {
        TopicPartition(t.name, p): OffsetSpec.latest()
        for t in topics
        if t.name in metadata.topics
        for p in metadata.topics[t.name].partitions
    }
    if not requests:
        return {}
    futures = admin.list_offsets(requests, request_timeout=_TIMEOUT_S)
    return {(tp.topic, tp.partition): _answer(f).offset for tp, f in futures.items()}


def _lag_by_topic(
    ends: dict[tuple[str, int], int], done: dict[tuple[str, int], int], topics: Sequence[TopicSpec]
) -> dict[str, int]:
    lag = {t.name: 0 for t in topics}
    for (topic, partition), end in ends.items():
        if topic in lag:
            lag[topic] += max(end - done.get((topic, partition), 0), 0)
    return lag


def projector_lag(
    admin: AdminClient, session: Session, consumer: str, topics: Sequence[TopicSpec]
) -> dict[str, int]:
    ends = _end_offsets(admin, topics)
    rows = session.execute(
        select(ProjectionOffset).where(ProjectionOffset.consumer == consumer)
    ).scalars()
    done = {(r.topic, r.partition): r.next_offset for r in rows}
    return _lag_by_topic(ends, done, topics)


def group_lag(
    admin: AdminClient, offsets: GroupOffsets, group: str, topics: Sequence[TopicSpec]
) -> dict[str, int]:
    ends = _end_offsets(admin, topics)
    committed = offsets.committed(group, [TopicPartition(t, p) for t, p in ends], ANSWER_TIMEOUT_S)
    done = {(tp.topic, tp.partition): max(tp.offset, 0) for tp in committed}
    return _lag_by_topic(ends, done, topics)


async def check_all(services: Services) -> HealthResponse:
    """Every service's health, each stage's lag and the projector's; the overall status is
    unhealthy when Kafka or Postgres is, degraded when only Triton is."""
    settings = services.settings
    with services.sessions() as session:
        kafka, postgres, triton = await asyncio.gather(
            run_in_threadpool(check_kafka, services.kafka_admin),
            run_in_threadpool(check_postgres, session),
            check_triton(
                settings.triton_url,
                [settings.detector_model, settings.enricher_model, settings.analyst_model],
            ),
        )
        lag: dict[str, dict[str, int]] = {}
        if kafka.status == "healthy":
            try:
                for group, inputs in STAGE_INPUTS.items():
                    lag[group] = await run_in_threadpool(
                        group_lag, services.kafka_admin, services.group_offsets, group, inputs
                    )
                if postgres.status == "healthy":
                    lag[settings.projector_group] = await run_in_threadpool(
                        projector_lag,
                        services.kafka_admin,
                        session,
                        settings.projector_group,
                        EVENT_TOPICS,
                    )
            except Exception:
                log.exception("consumer lag unavailable")
    states = [kafka.status, postgres.status, triton.status]
    if all(s == "healthy" for s in states):
        overall = "healthy"
    elif kafka.status == "unhealthy" or postgres.status == "unhealthy":
        overall = "unhealthy"
    else:
        overall = "degraded"
    return HealthResponse(
        status=overall,
        services={"kafka": kafka, "postgres": postgres, "triton": triton},
        consumer_lag=lag,
        checked_at=utcnow(),
    )
