from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query

from api.dead_letters import REQUEUE_ALL_LIMIT, clear_queue, requeue_all, requeue_oldest
from api.deps import ServicesDep, SessionDep
from api.errors import NotFound
from api.models import DLQClearOutcome, DLQJobList, DLQRequeueOutcome, DLQStats
from api.pagination import BIGINT_MAX
from api.queries.dlq import QUEUES, Queue, dlq_stats, list_jobs
from api.security import resource_routers

read, write = resource_routers("/api/dlq", "dlq")


def queue_named(queue_name: str) -> Queue:
    queue = QUEUES.get(queue_name)
    if queue is None:
        raise NotFound(f"unknown queue {queue_name!r}: the queues are {', '.join(QUEUES)}")
    return queue


QueueDep = Annotated[Queue, Depends(queue_named)]
_UNKNOWN_QUEUE: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown queue name"}}
_WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_UNKNOWN_QUEUE,
    202: {"description": "Done on Kafka; the queue did not show it yet"},
}


@read.get("/stats", response_model=DLQStats)
def read_dlq_stats(session: SessionDep) -> DLQStats:
    """Pending letters per queue (neither requeued nor cleared)."""
    return dlq_stats(session)


@read.get("/jobs/{queue_name}", response_model=DLQJobList, responses=_UNKNOWN_QUEUE)
def read_dlq_jobs(
    session: SessionDep,
    queue: QueueDep,
    start: Annotated[int, Query(ge=0, le=BIGINT_MAX, description="Start index (0-based)")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="Max jobs (1-1000)")] = 100,
) -> DLQJobList:
    """The queue's pending letters, oldest failure (`last_failed_at`) first; `count` is
    every pending letter of the queue."""
    return list_jobs(session, queue, start, limit)


@write.post(
    "/requeue/{queue_name}",
    response_model=DLQRequeueOutcome,
    responses={**_WRITE_RESPONSES, 409: {"description": "The oldest letter cannot be requeued"}},
)
def requeue_one(session: SessionDep, services: ServicesDep, queue: QueueDep) -> DLQRequeueOutcome:
    """Send the oldest letter's original message back to its source topic.

    An empty queue answers 200 with `requeued: 0`. When the oldest letter's original was
    not JSON, or never reached a topic, the answer is 409 and the letter stays: clear the
    queue to drop it (requeue-all skips such letters).
    """
    return requeue_oldest(
        session, services.commands, queue, wait_s=services.read_your_writes_wait_s
    )


@write.post(
    "/requeue-all/{queue_name}", response_model=DLQRequeueOutcome, responses=_WRITE_RESPONSES
)
def requeue_every(session: SessionDep, services: ServicesDep, queue: QueueDep) -> DLQRequeueOutcome:
    """Send up to 1000 of the oldest letters back to their source topics, oldest first.

    Letters that cannot be requeued are skipped and counted in `not_requeueable`;
    `remaining` is every letter still pending: call again while it exceeds
    `not_requeueable`.
    """
    return requeue_all(
        session,
        services.commands,
        queue,
        wait_s=services.read_your_writes_wait_s,
        limit=REQUEUE_ALL_LIMIT,
    )


@write.delete("/{queue_name}", response_model=DLQClearOutcome, responses=_WRITE_RESPONSES)
def clear(session: SessionDep, services: ServicesDep, queue: QueueDep) -> DLQClearOutcome:
    """Delete every pending letter of the queue for good (one event names them all)."""
    return clear_queue(session, services.commands, queue, wait_s=services.read_your_writes_wait_s)
