from __future__ import annotations

from api.commands import flush_batch
from api.deps import ServicesDep, SessionDep
from api.errors import found
from api.models import (
    ActiveBatchList,
    BatchDetail,
    BatchList,
    BatchStats,
    BatchStatus,
    FlushOutcome,
)
from api.pagination import DateRange, Pagination
from api.queries.batches import (
    BatchFilter,
    active_batches,
    batch_state,
    batch_stats,
    get_batch,
    list_batches,
)
from api.security import resource_routers
from schemas.envelope import utcnow

read, write = resource_routers("/api/batches", "batches")


@read.get("", response_model=BatchList)
def read_batches(
    session: SessionDep,
    page: Pagination,
    dates: DateRange,
    camera_id: str | None = None,
    status: BatchStatus | None = None,
) -> BatchList:
    filters = BatchFilter(
        camera_id=camera_id, status=status, start_date=dates.start_date, end_date=dates.end_date
    )
    batches, total = list_batches(session, filters, page.limit, page.offset)
    return BatchList(batches=batches, count=total, limit=page.limit, offset=page.offset)


# /stats and /active are declared before /{batch_id}, which would otherwise take them.
@read.get("/stats", response_model=BatchStats)
def read_batch_stats(session: SessionDep, camera_id: str | None = None) -> BatchStats:
    """Batch processing statistics, over every camera or the one named.

    - `total_batches`: batches in any status.
    - `by_status`: count per status; every status is present, 0 when none.
    - `by_trigger`: closed batches per trigger (time_window, idle_timeout, max_size,
      manual_flush); every trigger is present.
    - `active_count`: batches still aggregating.
    - `avg_detections_per_batch`: mean detections of closed (completed or failed) batches,
      null when there are none; open batches are left out as they are still growing.
    - `avg_duration_seconds`: mean seconds from `started_at` to `completed_at` of completed
      batches, null when there are none.
    """
    return batch_stats(session, camera_id)


@read.get("/active", response_model=ActiveBatchList)
def read_active_batches(session: SessionDep, camera_id: str | None = None) -> ActiveBatchList:
    """Batches still aggregating, oldest first; ages are seconds from now."""
    batches = active_batches(session, utcnow(), camera_id)
    return ActiveBatchList(batches=batches, count=len(batches))


@read.get("/{batch_id}", response_model=BatchDetail)
def read_batch(session: SessionDep, batch_id: str) -> BatchDetail:
    return found(get_batch(session, batch_id), f"batch {batch_id}")


@write.post(
    "/{batch_id}/flush",
    response_model=FlushOutcome,
    responses={
        202: {"model": FlushOutcome, "description": "Flush requested, batch not closed yet"},
        404: {"description": "Unknown batch"},
        409: {"description": "The batch is not aggregating"},
    },
)
def flush(session: SessionDep, services: ServicesDep, batch_id: str) -> FlushOutcome:
    """Close an aggregating batch now; answers once the batch shows closed, or 202 meanwhile."""
    state = found(batch_state(session, batch_id), f"batch {batch_id}")
    return flush_batch(session, services.commands, state, wait_s=services.read_your_writes_wait_s)
