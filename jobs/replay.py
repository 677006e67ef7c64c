"""What the reprocessing jobs share: reading a time range of a topic back, and fanning its
items out to the workers as commands, chunk by chunk.

`schemas.reading.read_range` reads the range back (by message time).
`fan_out` sends the commands of one chunk, waits until the projector shows every item of
the chunk done or failed (`job_items`), then sends the next: an abort stops between
chunks, and a new attempt after a crash sends only the items not done yet.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.context import Aborted, JobContext, Outgoing
from projections.tables import JobItemRow
from schemas.batches import BatchClosed
from schemas.reading import Read, read_range
from schemas.topics import BATCHES, TopicSpec

CHUNK = 20
# A chunk with no item finished for this long fails the attempt (the next one resumes).
STALL_S = 300.0


class ItemsStalled(TimeoutError):
    """The workers finished none of the chunk's items for STALL_S."""


class EveryItemFailed(RuntimeError):
    """Not one item could be done; the dead letters say why."""


class TimeRange(BaseModel):
    """A job's range: `start` and `end` with their time zone, end after start."""

    model_config = ConfigDict(extra="forbid")

    camera_id: str | None = Field(default=None, min_length=1, max_length=128)
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Any:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def holds(self, camera_id: str, at: datetime) -> bool:
        return (self.camera_id is None or camera_id == self.camera_id) and (
            self.start <= at <= self.end
        )

    def describe(self) -> str:
        scope = f"camera {self.camera_id}" if self.camera_id else "every camera"
        return f"{scope} from {self.start.isoformat()} to {self.end.isoformat()}"


def batches_by_id(
    bootstrap_servers: str, batch_ids: set[str], start: datetime, end: datetime
) -> dict[str, BatchClosed]:
    """The `BatchClosed` of each of `batch_ids` that `vigil.batches` holds around [start,
    end] (message time); the read stops once all are found."""
    found: dict[str, BatchClosed] = {}
    messages = read_range(bootstrap_servers, BATCHES, start, end, Read())
    try:
        for message in messages:
            if isinstance(message, BatchClosed) and message.batch_id in batch_ids:
                found.setdefault(message.batch_id, message)
                if len(found) == len(batch_ids):
                    break
    finally:
        messages.close()
    return found


def in_range(
    context: JobContext,
    topic: TopicSpec,
    time_range: TimeRange,
    item: Callable[[Any], tuple[str, str, datetime] | None],
) -> list[Any]:
    """The messages of `topic` whose item (id, camera, time: what `item` says of a message,
    None to pass it by) falls in the range, each item once, in topic order per partition."""
    read = Read()
    found: dict[str, Any] = {}
    for message in read_range(
        context.bootstrap_servers, topic, time_range.start, time_range.end, read
    ):
        named = item(message)
        if named is not None and time_range.holds(named[1], named[2]):
            found.setdefault(named[0], message)
    if read.undecodable:
        context.log("WARNING", f"{read.undecodable} messages on {topic.name} could not be read")
    return list(found.values())


def closed_batches(context: JobContext, time_range: TimeRange) -> list[BatchClosed]:
    """The batches of `vigil.batches` that closed and started in the range (of its camera)."""
    return in_range(
        context,
        BATCHES,
        time_range,
        lambda m: (m.batch_id, m.camera_id, m.started_at) if isinstance(m, BatchClosed) else None,
    )


def items_of(context: JobContext) -> dict[str, str]:
    """The job's items the projector shows: item id -> done | failed."""
    with Session(context.engine) as session:
        rows = session.execute(
            select(JobItemRow.item_id, JobItemRow.status).where(JobItemRow.job_id == context.job_id)
        )
        return dict(rows.all())


def fan_out(
    context: JobContext, commands: Sequence[tuple[str, Outgoing]], what: str, chunk: int = CHUNK
) -> int:
    """Send `commands` (item id, command) in chunks of `chunk`, each once the previous one's
    items are all done or failed; the items an earlier attempt finished are not sent again. Returns
    how many failed; raises EveryItemFailed when all did."""
    total = len(commands)
    finished = items_of(context)
    todo = [(item, command) for item, command in commands if item not in finished]
    if len(todo) < total:
        context.log("INFO", f"{total - len(todo)} {what} were done by an earlier attempt")
    try:
        for first in range(0, len(todo), chunk):
            context.check()
            sent = todo[first : first + chunk]
            context.publish([command for _, command in sent])
            _wait_for(context, {item for item, _ in sent}, total, what)
    except Aborted:
        done = len(items_of(context))
        context.log("WARNING", f"Aborted after {done} of {total} {what}; what was done stays")
        raise
    finished = items_of(context) if total else {}
    failed = sum(1 for item, _ in commands if finished.get(item) == "failed")
    if total and failed == total:
        raise EveryItemFailed(f"all {total} {what} failed; their dead letters say why")
    if failed:
        context.log("WARNING", f"{failed} of {total} {what} failed (dead-lettered)")
    context.progress(total, total, f"Done with {total} {what}")
    return failed


def _wait_for(context: JobContext, ids: set[str], total: int, what: str) -> None:
    """Until every one of `ids` is done or failed; reports progress and checks for abort."""
    last_change, seen = time.monotonic(), -1
    while True:
        items = items_of(context)
        if len(items) != seen:
            last_change, seen = time.monotonic(), len(items)
        context.progress(len(items), total, f"{len(items)} of {total} {what} done")
        if ids <= items.keys():
            return
        if time.monotonic() - last_change > STALL_S:
            raise ItemsStalled(f"none of the chunk's {what} finished for {STALL_S:.0f} s")
        time.sleep(0.2)
