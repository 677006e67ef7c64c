from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Depends, HTTPException
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.commands import wait_for_read_model
from api.deps import ServicesDep, SessionDep
from api.models import BreakerResetOut, CircuitBreakersOut, HealthResponse
from api.queries import health
from api.queries.breakers import circuit_breakers
from api.security import require_api_key
from schemas.envelope import utcnow
from schemas.system import ResetCircuitBreaker
from schemas.topics import EVENT_TOPICS, IMAGES, SYSTEM_COMMANDS, WORKER_GROUP

router = APIRouter(prefix="/api/system", tags=["system"])
log = logging.getLogger(__name__)


@router.get("/health", response_model=HealthResponse)
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
            lag[WORKER_GROUP] = await run_in_threadpool(
                health.group_lag, services.kafka_admin, WORKER_GROUP, [IMAGES]
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


@router.get("/circuit-breakers", response_model=CircuitBreakersOut)
def read_circuit_breakers(services: ServicesDep, session: SessionDep) -> CircuitBreakersOut:
    """Every model's breaker, combined over the workers that reported recently."""
    return circuit_breakers(session, services.settings.circuit_breaker_stale_s)


@router.post(
    "/circuit-breakers/{name}/reset",
    response_model=BreakerResetOut,
    dependencies=[Depends(require_api_key)],
    responses={202: {"model": BreakerResetOut}, 404: {"description": "Unknown breaker"}},
)
def reset_circuit_breaker(name: str, services: ServicesDep, session: SessionDep):
    """Tell every worker to close its breaker `name`; answers once all report it closed."""
    stale_s = services.settings.circuit_breaker_stale_s
    wait_s = services.read_your_writes_wait_s
    known = circuit_breakers(session, stale_s).circuit_breakers
    if name not in known:
        raise HTTPException(
            status_code=404,
            detail=f"circuit breaker {name!r} not found; known: {sorted(known)}",
        )
    services.commands.send(SYSTEM_COMMANDS, name, ResetCircuitBreaker(name=name))
    state = wait_for_read_model(
        session,
        lambda: circuit_breakers(session, stale_s).circuit_breakers[name].state,
        lambda state: state == "closed",
        wait_s=wait_s,
    )
    if state == "closed":
        return BreakerResetOut(
            name=name, status="reset", state=state, message="Circuit breaker reset"
        )
    body = BreakerResetOut(
        name=name,
        status="queued",
        state=state,
        message=f"Reset sent; not every worker reported it closed after {wait_s:g}s",
    )
    return JSONResponse(status_code=202, content=body.model_dump())
