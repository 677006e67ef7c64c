"""The FastAPI app factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.routes import detections, system
from api.services import Services
from vigil.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.from_settings(settings)
        try:
            yield
        finally:
            app.state.services.close()

    app = FastAPI(title="Vigil", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.include_router(system.router)
    app.include_router(detections.router)
    return app
