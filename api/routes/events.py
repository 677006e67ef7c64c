from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ImageLinksDep, SessionDep
from api.errors import found
from api.models import EventDetail, EventList
from api.pagination import DateRange, Pagination, row_id
from api.queries.events import EventFilter, get_event, list_events
from schemas.analysis import RiskLevel

read = APIRouter(prefix="/api/events", tags=["events"])


@read.get("", response_model=EventList)
def read_events(
    session: SessionDep,
    links: ImageLinksDep,
    page: Pagination,
    dates: DateRange,  # on started_at
    camera_id: str | None = None,
    risk_level: RiskLevel | None = None,
    min_risk: Annotated[int | None, Query(ge=0, le=100, description="Minimum risk_score")] = None,
) -> EventList:
    filters = EventFilter(
        camera_id=camera_id,
        risk_level=risk_level,
        min_risk=min_risk,
        start_date=dates.start_date,
        end_date=dates.end_date,
    )
    events, total = list_events(session, filters, page.limit, page.offset, links)
    return EventList(events=events, count=total, limit=page.limit, offset=page.offset)


@read.get("/{event_id}", response_model=EventDetail)
def read_event(
    session: SessionDep, links: ImageLinksDep, event_id: Annotated[int, row_id("event")]
) -> EventDetail:
    """The event with its batch, its detections (each with its enrichments) and every
    analysis version, newest first."""
    return found(get_event(session, event_id, links), f"event {event_id}")
