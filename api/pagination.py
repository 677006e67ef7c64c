"""Query parameters shared by every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Query

from api.errors import invalid_query


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


def page_params(
    limit: Annotated[int, Query(ge=1, le=1000, description="Max results (1-1000)")] = 50,
    offset: Annotated[int, Query(ge=0, description="Results to skip")] = 0,
) -> PageParams:
    return PageParams(limit=limit, offset=offset)


@dataclass(frozen=True)
class DateRangeParams:
    start_date: datetime | None
    end_date: datetime | None


def as_utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # a timestamp without zone is taken as UTC
    return value


def date_range(
    start_date: Annotated[datetime | None, Query(description="Only after this time")] = None,
    end_date: Annotated[datetime | None, Query(description="Only before this time")] = None,
) -> DateRangeParams:
    start, end = as_utc(start_date), as_utc(end_date)
    if start is not None and end is not None and start > end:
        raise invalid_query(
            "start_date",
            f"start_date {start.isoformat()} is after end_date {end.isoformat()}",
            "value_error.date_range",
        )
    return DateRangeParams(start_date=start, end_date=end)


Pagination = Annotated[PageParams, Depends(page_params)]
DateRange = Annotated[DateRangeParams, Depends(date_range)]
