from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query

from api.commands import request_reprocess
from api.deps import ServicesDep, SessionDep
from api.models import (
    EnrichmentList,
    EnrichmentOut,
    EnrichmentsOf,
    EnrichmentStats,
    ReprocessQueued,
)
from api.pagination import DateRange, Pagination
from api.queries.enrichment import (
    EnrichmentFilter,
    enrichment_stats,
    find_detection,
    for_detection,
    for_event,
    get_enrichment,
    list_enrichments,
)
from api.security import require_api_key
from schemas.enrichments import DetectionType
from schemas.envelope import utcnow

router = APIRouter(prefix="/api/enrichment", tags=["enrichment"])


@router.get("", response_model=EnrichmentList)
def read_enrichments(
    session: SessionDep,
    page: Pagination,
    dates: DateRange,
    detection_type: DetectionType | None = None,
    camera_id: str | None = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    event_id: Annotated[
        int | None, Query(description="Only the detections of this event's batch")
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


@router.get("/stats", response_model=EnrichmentStats)
def read_enrichment_stats(session: SessionDep, camera_id: str | None = None) -> EnrichmentStats:
    """Counts (in all, and since midnight UTC), per detection type, mean confidence and
    latency, and the 95th latency percentile (interpolated); over one camera if named."""
    return enrichment_stats(session, utcnow(), camera_id)


@router.get("/detection/{detection_id}", response_model=EnrichmentsOf)
def read_detection_enrichments(session: SessionDep, detection_id: int) -> EnrichmentsOf:
    enrichments = for_detection(session, detection_id)
    if enrichments is None:
        raise HTTPException(status_code=404, detail=f"detection {detection_id} not found")
    return EnrichmentsOf(enrichments=enrichments, count=len(enrichments))


@router.get("/event/{event_id}", response_model=EnrichmentsOf)
def read_event_enrichments(session: SessionDep, event_id: int) -> EnrichmentsOf:
    enrichments = for_event(session, event_id)
    if enrichments is None:
        raise HTTPException(status_code=404, detail=f"event {event_id} not found")
    return EnrichmentsOf(enrichments=enrichments, count=len(enrichments))


@router.post(
    "/reprocess/{detection_id}",
    response_model=ReprocessQueued,
    dependencies=[Depends(require_api_key)],
    status_code=202,
    responses={
        401: {"description": "Missing or invalid X-API-Key (once keys are configured)"},
        404: {"description": "Unknown detection"},
        503: {"description": "Kafka did not acknowledge the command"},
    },
)
def reprocess(session: SessionDep, services: ServicesDep, detection_id: int) -> ReprocessQueued:
    """Queue a new enrichment of the detection; it arrives later as a new enrichment record."""
    detection = find_detection(session, detection_id)
    if detection is None:
        raise HTTPException(status_code=404, detail=f"detection {detection_id} not found")
    return request_reprocess(services.commands, detection)


@router.get("/{enrichment_id}", response_model=EnrichmentOut)
def read_enrichment(session: SessionDep, enrichment_id: int) -> EnrichmentOut:
    enrichment = get_enrichment(session, enrichment_id)
    if enrichment is None:
        raise HTTPException(status_code=404, detail=f"enrichment {enrichment_id} not found")
    return enrichment
