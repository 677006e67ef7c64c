from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api.commands import reset_breaker
from api.deps import ServicesDep, SessionDep
from api.health_monitor import has_unhealthy_part
from api.models import BreakerResetOut, CircuitBreakersOut, HealthResponse
from api.queries.breakers import circuit_breakers
from api.security import resource_routers
from vigil.metrics import exposition

read, write = resource_routers("/api/system", "system")
log = logging.getLogger(__name__)


@read.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "strict, and a part is unhealthy"}},
)
async def read_health(
    request: Request,
    strict: Annotated[
        bool, Query(description="Answer 503 when any part is unhealthy (for load balancers)")
    ] = False,
) -> HealthResponse | JSONResponse:
    """Kafka, Postgres and Triton, each stage's lag and the projector's, as the background
    check last saw them (`checked_at`, `age_s`: refreshed every HEALTH_REFRESH_S)."""
    health = await request.app.state.health.current()
    if strict and has_unhealthy_part(health):
        return JSONResponse(status_code=503, content=health.model_dump(mode="json"))
    return health


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


# Outside /api: where Prometheus looks by default.
metrics = APIRouter(tags=["system"])


@metrics.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def read_metrics() -> Response:
    """This API's Prometheus metrics (every worker's, when API_WORKERS > 1): requests and
    their latency by route template and status."""
    body, content_type = exposition()
    return Response(body, media_type=content_type)
