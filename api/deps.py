"""FastAPI dependencies: settings, database sessions and the service clients."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.images import ImageLinks
from api.services import Services
from vigil.settings import Settings


async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_image_links(request: Request) -> ImageLinks:
    return request.app.state.services.image_links


def get_session(services: Annotated[Services, Depends(get_services)]) -> Iterator[Session]:
    with services.sessions() as session:
        yield session


ServicesDep = Annotated[Services, Depends(get_services)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(get_session)]
ImageLinksDep = Annotated[ImageLinks, Depends(get_image_links)]
