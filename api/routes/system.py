from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import ServicesDep, SessionDep
from api.models import HealthResponse
from api.queries import health
from projections.runner import PROJECTED_TOPICS
from schemas.envelope import utcnow
from schemas.topics import IMAGES
from streams.app import WORKER_GROUP

router = APIRouter(prefix="/api/system", tags=["system"])
log = logging.getLogger(__name__)


@router.get("/health", response_model=HealthResponse)
async def read_health(services: ServicesDep, session: SessionDep) -> HealthResponse:
    settings = services.settings
    kafka, postgres, triton = await asyncio.gather(
        run_in_threadpool(health.check_kafka, services.kafka_admin),
        run_in_threadpool(health.check_postgres, session),
        health.check_triton(settings.triton_url, [settings.detector_model]),
    )
    lag: dict[str, dict[str, int]] = {}
    if kafka.status == "healthy":
        try:
            lag[WORKER_GROUP] = await run_in_threadpool(
                health.group_lag, services.kafka_admin, WORKER_GROUP, [IMAGES]
            )
            if postgres.status == "healthy":
                lag[settings.projector_group] = await run_in_threadpool(
                    health.projector_lag,
                    services.kafka_admin,
                    session,
                    settings.projector_group,
                    PROJECTED_TOPICS,
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
