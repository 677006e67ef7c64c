"""Query parameters shared by every list endpoint, and the bounds of ids and offsets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query

from api.errors import invalid_query

# Ids, offsets and counts are Postgres bigints: a number past this names no row and could not
# even be compared with one, so it is refused (422) before any query.
BIGINT_MAX = 2**63 - 1


def row_id(what: str) -> Any:
    """A path parameter that is the id of a row: 1 to BIGINT_MAX."""
    return Path(ge=1, le=BIGINT_MAX, description=f"The {what}'s id")


@dataclass(frozen=True)
class PageParams:
    limit: int
    offset: int


async def page_params(
    limit: Annotated[int, Query(ge=1, le=1000, description="Max results (1-1000)")] = 50,
    offset: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Results to skip")] = 0,
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


async def date_range(
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
