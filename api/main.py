"""The FastAPI app factory."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import Depends, FastAPI

from api import errors
from api.broadcast import JobFeed, SecurityEventFeed, job_lookup, read_model_lookup
from api.health_monitor import HealthMonitor
from api.queries.health import check_all
from api.routes import (
    ai_audit,
    batches,
    console,
    detections,
    dlq,
    enrichment,
    events,
    images,
    jobs,
    system,
    ws,
)
from api.services import Services
from api.text_input import storable_text
from vigil import tracing
from vigil.metrics import HttpMetrics
from vigil.settings import Settings, get_settings

log = logging.getLogger(__name__)

# How long the app's shutdown waits for its feeds and health monitor to stop.
SHUTDOWN_WAIT_S = 6.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    tracing.configure("vigil-api")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = app.state.services = Services.from_settings(settings)
        feed = app.state.event_feed = SecurityEventFeed(
            settings.kafka_bootstrap_servers,
            services.broadcaster,
            read_model_lookup(services.sessions, services.image_links),
            partition_check_s=settings.ws_partition_check_s,
            read_model_wait_s=settings.ws_read_model_wait_s,
        )
        job_feed = app.state.job_feed = JobFeed(
            settings.kafka_bootstrap_servers,
            services.job_broadcaster,
            job_lookup(services.sessions, settings.projector_group),
            partition_check_s=settings.ws_partition_check_s,
            read_model_wait_s=settings.ws_read_model_wait_s,
        )
        health = app.state.health = HealthMonitor(
            partial(check_all, services), settings.health_refresh_s
        )
        checking = asyncio.create_task(health.run(), name="health-monitor")
        feed_tasks = [
            asyncio.create_task(feed.run(), name="security-event-feed"),
            asyncio.create_task(job_feed.run(), name="job-feed"),
            checking,
        ]
        try:
            yield
        finally:
            for task in feed_tasks:
                task.cancel()
            # Bounded: a server stops even when a feed does not (its server waits for it).
            _, stuck = await asyncio.wait(feed_tasks, timeout=SHUTDOWN_WAIT_S)
            for task in stuck:
                log.warning("%s did not stop within %.0f s", task.get_name(), SHUTDOWN_WAIT_S)
            # A cancelled health check returns once the admin call its thread is in returns.
            services.close(admin_in_use=checking in stuck)

    app = FastAPI(
        title="Vigil",
        version="0.1.0",
        lifespan=lifespan,
        dependencies=[Depends(storable_text)],
        # Request spans (vigil.tracing configured the provider); metrics are Prometheus's
        # (vigil.metrics) and logs are logging's.
        telemetry={"metrics": False, "logs": False},
    )
    app.state.settings = settings
    errors.install(app)
    app.add_middleware(HttpMetrics)
    for router in (
        system.read,
        system.write,
        detections.read,
        images.read,
        events.read,
        batches.read,
        batches.write,
        enrichment.read,
        enrichment.write,
        dlq.read,
        dlq.write,
        jobs.read,
        jobs.write,
        jobs.events_write,
        ai_audit.read,
        ai_audit.write,
        ws.router,
        system.metrics,
    ):
        app.include_router(router)
    console.install(app)
    return app
