from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ImageLinksDep, SessionDep, SettingsDep
from api.errors import found
from api.models import DetectionList, DetectionOut
from api.pagination import DateRange, Pagination, row_id
from api.queries.detections import DetectionFilter, get_detection, list_detections

read = APIRouter(prefix="/api/detections", tags=["detections"])


@read.get("", response_model=DetectionList)
def read_detections(
    session: SessionDep,
    settings: SettingsDep,
    links: ImageLinksDep,
    page: Pagination,
    dates: DateRange,
    camera_id: str | None = None,
    label: Annotated[str | None, Query(description="COCO class name, e.g. person")] = None,
    min_confidence: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    model_name: Annotated[
        str | None,
        Query(
            min_length=1,
            description="The detector whose detections to list (default: the configured one, "
            "DETECTOR_MODEL); a reprocess job's model lists the detections it made",
        ),
    ] = None,
    model_version: Annotated[str | None, Query(min_length=1)] = None,
) -> DetectionList:
    filters = DetectionFilter(
        camera_id=camera_id,
        model_name=model_name or settings.detector_model,
        model_version=model_version,
        label=label,
        min_confidence=min_confidence,
        start_date=dates.start_date,
        end_date=dates.end_date,
    )
    detections, total = list_detections(session, filters, page.limit, page.offset, links)
    return DetectionList(detections=detections, count=total, limit=page.limit, offset=page.offset)


@read.get("/{detection_id}", response_model=DetectionOut)
def read_detection(
    session: SessionDep, links: ImageLinksDep, detection_id: Annotated[int, row_id("detection")]
) -> DetectionOut:
    return found(get_detection(session, detection_id, links), f"detection {detection_id}")
