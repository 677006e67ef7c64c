from __future__ import annotations

from typing import Annotated

from fastapi import Query

from api.commands import request_reprocess
from api.deps import ServicesDep, SessionDep
from api.errors import found
from api.models import (
    EnrichmentList,
    EnrichmentOut,
    EnrichmentsOf,
    EnrichmentStats,
    ReprocessQueued,
)
from api.pagination import BIGINT_MAX, DateRange, Pagination, row_id
from api.queries.enrichment import (
    EnrichmentFilter,
    enrichment_stats,
    find_detection,
    for_detection,
    for_event,
    get_enrichment,
    list_enrichments,
)
from api.security import resource_routers
from schemas.enrichments import DetectionType
from schemas.envelope import utcnow

read, write = resource_routers("/api/enrichment", "enrichment")


@read.get("", response_model=EnrichmentList)
def read_enrichments(
    session: SessionDep,
    page: Pagination,
    dates: DateRange,
    detection_type: DetectionType | None = None,
    camera_id: str | None = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    event_id: Annotated[
        int | None,
        Query(ge=1, le=BIGINT_MAX, description="Only the detections of this event's batch"),
    ] = None,
) -> EnrichmentList:
    filters = EnrichmentFilter(
        detection_type=detection_type,
        camera_id=camera_id,
        start_date=dates.start_date,
        end_date=dates.end_date,
        min_confidence=min_confidence,
        event_id=event_id,
    )
    enrichments, total = list_enrichments(session, filters, page.limit, page.offset)
    return EnrichmentList(
        enrichments=enrichments, count=total, limit=page.limit, offset=page.offset
    )


@read.get("/stats", response_model=EnrichmentStats)
def read_enrichment_stats(session: SessionDep, camera_id: str | None = None) -> EnrichmentStats:
    """Counts (in all, and since midnight UTC), per detection type, mean confidence and
    latency, and the 95th latency percentile (interpolated); over one camera if named."""
    return enrichment_stats(session, utcnow(), camera_id)


@read.get("/detection/{detection_id}", response_model=EnrichmentsOf)
def read_detection_enrichments(
    session: SessionDep, detection_id: Annotated[int, row_id("detection")]
) -> EnrichmentsOf:
    enrichments = found(for_detection(session, detection_id), f"detection {detection_id}")
    return EnrichmentsOf(enrichments=enrichments, count=len(enrichments))


@read.get("/event/{event_id}", response_model=EnrichmentsOf)
def read_event_enrichments(
    session: SessionDep, event_id: Annotated[int, row_id("event")]
) -> EnrichmentsOf:
    enrichments = found(for_event(session, event_id), f"event {event_id}")
    return EnrichmentsOf(enrichments=enrichments, count=len(enrichments))


@write.post(
    "/reprocess/{detection_id}",
    response_model=ReprocessQueued,
    status_code=202,
    responses={404: {"description": "Unknown detection"}},
)
def reprocess(
    session: SessionDep, services: ServicesDep, detection_id: Annotated[int, row_id("detection")]
) -> ReprocessQueued:
    """Queue a new enrichment of the detection; it arrives later as a new enrichment record."""
    detection = found(find_detection(session, detection_id), f"detection {detection_id}")
    return request_reprocess(services.commands, detection)


@read.get("/{enrichment_id}", response_model=EnrichmentOut)
def read_enrichment(
    session: SessionDep, enrichment_id: Annotated[int, row_id("enrichment")]
) -> EnrichmentOut:
    return found(get_enrichment(session, enrichment_id), f"enrichment {enrichment_id}")
