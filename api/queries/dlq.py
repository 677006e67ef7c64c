"""Read queries for the dead letter queues: a letter with no action yet is pending."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, and_, exists, func, select
from sqlalchemy.orm import Session

from api.models import DLQJob, DLQJobList, DLQStats
from projections.tables import DeadLetterAction, DeadLetterRow
from schemas.dead_letters import Stage
from schemas.topics import DEAD_LETTER_TOPICS, TOPICS_BY_NAME


@dataclass(frozen=True)
class Queue:
    name: str
    stage: Stage

    @property
    def short_name(self) -> str:
        """The name a job carries: `detection_queue` for `dlq:detection_queue`."""
        return self.name.removeprefix("dlq:")


# One queue per dead-letter topic, named as the spec names them (`dlq:detection_queue`).
QUEUES: dict[str, Queue] = {
    f"dlq:{stage}_queue": Queue(f"dlq:{stage}_queue", stage) for stage in DEAD_LETTER_TOPICS
}

PENDING = ~exists().where(DeadLetterAction.dead_letter_id == DeadLetterRow.dead_letter_id)
OLDEST_FIRST = (DeadLetterRow.last_failed_at, DeadLetterRow.dead_letter_id)
# The SQL form of `why_not_requeueable(letter) is None`; never NULL, so `~REQUEUEABLE` holds
# for every other letter.
REQUEUEABLE = and_(
    DeadLetterRow.original_encoding == "json",
    DeadLetterRow.source_topic.is_not(None),
    DeadLetterRow.source_topic.in_(list(TOPICS_BY_NAME)),
)


def why_not_requeueable(letter: DeadLetterRow) -> str | None:
    """Why the letter's original cannot go back to its source topic; None when it can."""
    if letter.source_topic is None:
        return (
            "it was refused before it reached any topic "
            f"({letter.error_type}), so there is nowhere to requeue it to"
        )
    if letter.original_encoding != "json":
        return (
            f"its original message was not JSON (kept as {letter.original_encoding}), "
            "so it is not an event any stage can read"
        )
    if letter.source_topic not in TOPICS_BY_NAME:
        return f"its source topic {letter.source_topic} is not a Vigil topic"
    return None


def _pending(query: Select, stage: Stage) -> Select:
    return query.where(DeadLetterRow.stage == stage, PENDING)


def pending_count(session: Session, stage: Stage, *, requeueable: bool | None = None) -> int:
    query = _pending(select(func.count()).select_from(DeadLetterRow), stage)
    if requeueable is not None:
        query = query.where(REQUEUEABLE if requeueable else ~REQUEUEABLE)
    return session.scalar(query) or 0


def dlq_stats(session: Session) -> DLQStats:
    counts = dict(
        session.execute(
            select(DeadLetterRow.stage, func.count()).where(PENDING).group_by(DeadLetterRow.stage)
        ).all()
    )
    per_queue = {f"{q.stage}_queue_count": counts.get(q.stage, 0) for q in QUEUES.values()}
    return DLQStats(**per_queue, total_count=sum(per_queue.values()))


def _job(queue: Queue, row: DeadLetterRow) -> DLQJob:
    return DLQJob(
        original_job=row.original,
        original_encoding=row.original_encoding,
        error=f"{row.error_type}: {row.error}",
        error_type=row.error_type,
        attempt_count=row.attempt_count,
        first_failed_at=row.first_failed_at,
        last_failed_at=row.last_failed_at,
        queue_name=queue.short_name,
        dead_letter_id=row.dead_letter_id,
        camera_id=row.camera_id,
        source_topic=row.source_topic,
        source_partition=row.source_partition,
        source_offset=row.source_offset,
        context=row.context,
    )


def list_jobs(session: Session, queue: Queue, start: int, limit: int) -> DLQJobList:
    """Pending letters, oldest failure first."""
    rows = session.scalars(
        _pending(select(DeadLetterRow), queue.stage)
        .order_by(*OLDEST_FIRST)
        .offset(start)
        .limit(limit)
    )
    return DLQJobList(
        queue_name=queue.name,
        jobs=[_job(queue, row) for row in rows],
        count=pending_count(session, queue.stage),
    )


def oldest_pending(
    session: Session, stage: Stage, limit: int, *, requeueable_only: bool = False
) -> list[DeadLetterRow]:
    query = _pending(select(DeadLetterRow), stage)
    if requeueable_only:
        query = query.where(REQUEUEABLE)
    return list(session.scalars(query.order_by(*OLDEST_FIRST).limit(limit)))


def pending_ids(session: Session, stage: Stage) -> list[tuple[str | None, str]]:
    """(camera_id, dead_letter_id) of every pending letter, oldest first."""
    rows = session.execute(
        _pending(select(DeadLetterRow.camera_id, DeadLetterRow.dead_letter_id), stage).order_by(
            *OLDEST_FIRST
        )
    )
    return [(camera_id, dead_letter_id) for camera_id, dead_letter_id in rows]


def still_pending(session: Session, dead_letter_ids: Sequence[str]) -> int:
    """How many of these letters the read model does not show requeued or cleared yet."""
    if not dead_letter_ids:
        return 0
    done = session.scalar(
        select(func.count())
        .select_from(DeadLetterAction)
        .where(DeadLetterAction.dead_letter_id.in_(dead_letter_ids))
    )
    return len(set(dead_letter_ids)) - (done or 0)
