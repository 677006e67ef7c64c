"""The DLQ's write side: requeue dead letters to their source topics, or clear them for good.

Both act on the letters the read model shows pending, produce through the CommandSender,
and then wait (bounded) until the projection shows those letters gone (read-your-writes).
One request at a time works on a queue, across API replicas (a Postgres advisory lock), so
two calls do not pick the same letters. A call that answered 202 is the exception: its
letters show pending until projected, and a call meanwhile would requeue them again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.commands import (
    CommandSender,
    Delivered,
    NotDelivered,
    Outgoing,
    outgoing,
    wait_for_read_model,
)
from api.errors import DeliveryIncomplete, NotRequeueable, NotYetVisible
from api.models import DLQClearOutcome, DLQRequeueOutcome
from api.queries.dlq import (
    Queue,
    oldest_pending,
    pending_count,
    pending_ids,
    still_pending,
    why_not_requeueable,
)
from projections.tables import DeadLetterRow
from schemas.dead_letters import Stage
from schemas.system import DeadLetterRequeued, DeadLettersCleared
from schemas.topics import DEAD_LETTER_TOPICS

REQUEUE_ALL_LIMIT = 1000
# Ids per DeadLettersCleared, so that clearing a big queue never makes a message too big.
CLEARED_PER_EVENT = 1000


def requeue_value(original: Any) -> bytes:
    """The original message again, from the JSON the letter kept (compact, like the codec)."""
    return json.dumps(original, separators=(",", ":"), ensure_ascii=False).encode()


def cleared_events(
    stage: Stage, pending: Sequence[tuple[str | None, str]], per_event: int = CLEARED_PER_EVENT
) -> list[tuple[str | None, DeadLettersCleared]]:
    """(key, event) to clear these (camera_id, dead_letter_id): one event per camera."""
    by_camera: dict[str | None, list[str]] = {}
    for camera_id, dead_letter_id in pending:
        by_camera.setdefault(camera_id, []).append(dead_letter_id)
    return [
        (camera_id, DeadLettersCleared(stage=stage, dead_letter_ids=tuple(ids[i : i + per_event])))
        for camera_id, ids in by_camera.items()
        for i in range(0, len(ids), per_event)
    ]


@contextmanager
def queue_lock(session: Session, stage: Stage) -> Iterator[None]:
    """Hold the queue's advisory lock for the session's transaction, which ends with the block.

    One connection per request, and the lock goes with the transaction whatever happens.
    """
    session.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"vigil.dlq.{stage}"))))
    try:
        yield
    finally:
        session.rollback()


def _wait_until_gone(session: Session, dead_letter_ids: list[str], wait_s: float) -> bool:
    pending = wait_for_read_model(
        session, lambda: still_pending(session, dead_letter_ids), lambda n: not n, wait_s=wait_s
    )
    return not pending


def requeue_letters(sender: CommandSender, queue: Queue, letters: list[DeadLetterRow]) -> list[str]:
    """Produce each original to its source topic, then record where it went; the ids requeued."""
    sent = sender.deliver(
        [
            Outgoing(
                topic=letter.source_topic or "",
                key=letter.camera_id,
                value=requeue_value(letter.original),
            )
            for letter in letters
        ]
    )
    requeued = [
        (letter, at) for letter, at in zip(letters, sent, strict=True) if isinstance(at, Delivered)
    ]
    recorded = sender.deliver(
        [
            outgoing(
                DEAD_LETTER_TOPICS[queue.stage],
                letter.camera_id,
                DeadLetterRequeued(
                    dead_letter_id=letter.dead_letter_id,
                    stage=queue.stage,
                    source_topic=letter.source_topic or "",
                    requeued_partition=at.partition,
                    requeued_offset=at.offset,
                ),
            )
            for letter, at in requeued
        ]
    )
    refused = [r.reason for r in sent if isinstance(r, NotDelivered)]
    unrecorded = [r.reason for r in recorded if isinstance(r, NotDelivered)]
    if refused or unrecorded:
        problems = []
        if refused:
            problems.append(
                f"{len(refused)} were not acknowledged on their source topic ({refused[0]}) "
                "and stay in the queue"
            )
        if unrecorded:
            problems.append(
                f"{len(unrecorded)} went back to their source topic but DeadLetterRequeued was "
                f"not acknowledged ({unrecorded[0]}): they still show in the queue, and another "
                "requeue would send them again"
            )
        raise DeliveryIncomplete(
            f"requeue of {queue.name}: {len(letters)} letters, {'; '.join(problems)}"
        )
    return [letter.dead_letter_id for letter, _ in requeued]


def _requeue_outcome(
    session: Session, queue: Queue, requeued: list[str], message: str
) -> DLQRequeueOutcome:
    # Letters requeued but not projected yet still count as pending in the read model.
    remaining = pending_count(session, queue.stage) - still_pending(session, requeued)
    return DLQRequeueOutcome(
        queue_name=queue.name,
        requeued=len(requeued),
        dead_letter_ids=requeued,
        remaining=remaining,
        not_requeueable=pending_count(session, queue.stage, requeueable=False),
        message=message,
    )


def _requeued_message(queue: Queue, count: int) -> str:
    return f"requeued {count} {'letter' if count == 1 else 'letters'} of {queue.name}"


Outcome = TypeVar("Outcome", DLQRequeueOutcome, DLQClearOutcome)


def _once_shown(outcome: Outcome, shown: bool) -> Outcome:
    """The outcome, when the queue shows it; otherwise NotYetVisible with it, saying so."""
    if not shown:
        message = f"{outcome.message}; the queue had not caught up yet"
        raise NotYetVisible(outcome.model_copy(update={"message": message}))
    return outcome


def requeue_oldest(
    session: Session, sender: CommandSender, queue: Queue, *, wait_s: float
) -> DLQRequeueOutcome:
    """Requeue the queue's oldest letter, and wait for the queue to show it gone."""
    with queue_lock(session, queue.stage):
        letters = oldest_pending(session, queue.stage, 1)
        if not letters:
            message = f"queue {queue.name} is empty: nothing to requeue"
            return _requeue_outcome(session, queue, [], message)
        reason = why_not_requeueable(letters[0])
        if reason is not None:
            raise NotRequeueable(
                f"the oldest letter of {queue.name} ({letters[0].dead_letter_id}) cannot be "
                f"requeued: {reason}. Clear the queue to drop it; requeue-all skips it."
            )
        requeued = requeue_letters(sender, queue, letters)
        shown = _wait_until_gone(session, requeued, wait_s)
    outcome = _requeue_outcome(session, queue, requeued, _requeued_message(queue, 1))
    return _once_shown(outcome, shown)


def requeue_all(
    session: Session,
    sender: CommandSender,
    queue: Queue,
    *,
    wait_s: float,
    limit: int = REQUEUE_ALL_LIMIT,
) -> DLQRequeueOutcome:
    """Requeue up to `limit` oldest letters that can be; the others stay for a clear."""
    with queue_lock(session, queue.stage):
        letters = oldest_pending(session, queue.stage, limit, requeueable_only=True)
        requeued = requeue_letters(sender, queue, letters) if letters else []
        shown = _wait_until_gone(session, requeued, wait_s)
    outcome = _requeue_outcome(session, queue, requeued, _requeued_message(queue, len(requeued)))
    return _once_shown(outcome, shown)


def clear_queue(
    session: Session, sender: CommandSender, queue: Queue, *, wait_s: float
) -> DLQClearOutcome:
    """Clear every pending letter of the queue, and wait for the queue to show them gone."""
    with queue_lock(session, queue.stage):
        events = cleared_events(queue.stage, pending_ids(session, queue.stage))
        if not events:
            return DLQClearOutcome(
                queue_name=queue.name,
                cleared=0,
                message=f"queue {queue.name} is empty: nothing to clear",
            )
        topic = DEAD_LETTER_TOPICS[queue.stage]
        results = sender.deliver([outgoing(topic, key, event) for key, event in events])
        cleared = [
            dead_letter_id
            for (_, event), result in zip(events, results, strict=True)
            if isinstance(result, Delivered)
            for dead_letter_id in event.dead_letter_ids
        ]
        refused = [r.reason for r in results if isinstance(r, NotDelivered)]
        if refused:
            raise DeliveryIncomplete(
                f"clear of {queue.name}: cleared {len(cleared)} letters, but "
                f"{len(refused)} DeadLettersCleared were not acknowledged ({refused[0]}): "
                "their letters stay in the queue"
            )
        shown = _wait_until_gone(session, cleared, wait_s)
    outcome = DLQClearOutcome(
        queue_name=queue.name,
        cleared=len(cleared),
        message=f"cleared {len(cleared)} letters of {queue.name}",
    )
    return _once_shown(outcome, shown)
