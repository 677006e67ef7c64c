from __future__ import annotations

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool

from api.commands import reset_breaker
from api.deps import ServicesDep, SessionDep
from api.models import BreakerResetOut, CircuitBreakersOut, HealthResponse
from api.queries import health
from api.queries.breakers import circuit_breakers
from api.security import resource_routers
from schemas.envelope import utcnow
from schemas.topics import EVENT_TOPICS, STAGE_INPUTS

read, write = resource_routers("/api/system", "system")
log = logging.getLogger(__name__)


@read.get("/health", response_model=HealthResponse)
async def read_health(services: ServicesDep, session: SessionDep) -> HealthResponse:
    settings = services.settings
    kafka, postgres, triton = await asyncio.gather(
        run_in_threadpool(health.check_kafka, services.kafka_admin),
        run_in_threadpool(health.check_postgres, session),
        health.check_triton(
            settings.triton_url,
            [settings.detector_model, settings.enricher_model, settings.analyst_model],
        ),
    )
    lag: dict[str, dict[str, int]] = {}
    if kafka.status == "healthy":
        try:
            for group, inputs in STAGE_INPUTS.items():
                lag[group] = await run_in_threadpool(
                    health.group_lag, services.kafka_admin, group, inputs
                )
            if postgres.status == "healthy":
                lag[settings.projector_group] = await run_in_threadpool(
                    health.projector_lag,
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


@read.get("/circuit-breakers", response_model=CircuitBreakersOut)
def read_circuit_breakers(services: ServicesDep, session: SessionDep) -> CircuitBreakersOut:
    """Every model's breaker, combined over the workers that reported recently."""
    return circuit_breakers(session, services.settings.circuit_breaker_stale_s)


@write.post(
    "/circuit-breakers/{name}/reset",
    response_model=BreakerResetOut,
    responses={
        202: {"model": BreakerResetOut, "description": "Reset sent, not every worker closed yet"},
        404: {"description": "Unknown breaker"},
    },
)
def reset_circuit_breaker(name: str, services: ServicesDep, session: SessionDep) -> BreakerResetOut:
    """Tell every worker to close its breaker `name`; answers once all report it closed."""
    return reset_breaker(
        session,
        services.commands,
        name,
        stale_s=services.settings.circuit_breaker_stale_s,
        wait_s=services.read_your_writes_wait_s,
    )
