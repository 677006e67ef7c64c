"""Batch aggregator: enrichments and flush commands in, the batch lifecycle out.

The handlers take a camera's `CameraBatches` (its open batch and the images recently
batched) and return the events to publish and the camera's new state: `on_detections`
opens a batch, adds an image's detections and closes it at the maximum size; `on_flush`
closes it on a manual flush or a timer's command. `due_flushes` is the timer's decision.

`register` runs them as a transactional stage (`streams.transactional`) whose state is
keyed by camera: each event, the camera's new state and the input's offset are committed
together, so a worker killed mid-batch leaves the open batch to the next owner of the
camera's partition, which closes it once, with every detection in it. Timers never touch
the state: they send a `FlushBatch` command, and the stage applies it in its turn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched, FlushBatch
from schemas.enrichments import DetectionsEnriched
from schemas.envelope import Message, utcnow
from schemas.topics import BATCH_COMMANDS, BATCH_GROUP, BATCHES, ENRICHMENTS
from streams.batching import (
    BatchLimits,
    CameraBatches,
    OpenBatch,
    PendingFlushes,
    add_detections,
    flush,
)
from streams.stage import Handle, Outcome, Publish, Stage
from streams.transactional import TransactionalStage
from streams.wiring import Wiring

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchDeps:
    limits: BatchLimits
    producer: str


def on_detections(
    enriched: DetectionsEnriched, state: CameraBatches, now: datetime, deps: BatchDeps
) -> Outcome:
    camera_id = enriched.camera_id
    result = add_detections(state, enriched, now, deps.limits)
    if result.duplicate:
        log.info("image %s already batched; skipping", enriched.image_id)
        return Outcome()
    if result.added == 0:
        return Outcome()
    events: list[Message] = []
    if result.opened is not None:
        events.append(
            BatchOpened(
                batch_id=result.opened.batch_id,
                camera_id=camera_id,
                started_at=result.opened.started_at,
                producer=deps.producer,
            )
        )
    batch = result.state.open or result.closed
    assert batch is not None  # detections were added: to the open batch, or one just closed
    events.append(
        DetectionsBatched(
            batch_id=batch.batch_id,
            camera_id=camera_id,
            image_id=enriched.image_id,
            added=result.added,
            detection_count=len(batch.detections),
            last_activity_at=now,
            producer=deps.producer,
            trace_id=enriched.trace_id,
        )
    )
    if result.closed is not None:
        events.append(_closed(result.closed))
    published = tuple(Publish(BATCHES, camera_id, event) for event in events)
    return Outcome(publish=published, state=result.state)


def on_flush(command: FlushBatch, state: CameraBatches, now: datetime, deps: BatchDeps) -> Outcome:
    state, closed = flush(state, command.batch_id, command.trigger, now, deps.limits)
    if closed is None:
        log.info(
            "flush of %s (%s) ignored: not the open batch or no longer due",
            command.batch_id,
            command.trigger,
        )
        return Outcome()
    return Outcome(publish=(Publish(BATCHES, command.camera_id, _closed(closed)),), state=state)


def due_flushes(
    open_batches: Iterable[OpenBatch], pending: PendingFlushes, now: datetime, deps: BatchDeps
) -> list[Publish]:
    """The flush commands the timers send now: one per batch whose window or idle time is up."""
    return [
        Publish(
            BATCH_COMMANDS,
            batch.camera_id,
            FlushBatch(
                batch_id=batch.batch_id,
                camera_id=batch.camera_id,
                trigger=trigger,
                producer=deps.producer,
            ),
        )
        for batch, trigger in pending.due(open_batches, now, deps.limits)
    ]


def _closed(closed: BatchClosed) -> BatchClosed:
    log.info(
        "batch %s closed (%s) with %d detections",
        closed.batch_id,
        closed.trigger,
        len(closed.detections),
    )
    return closed


HANDLERS: dict[type[Message], Callable[..., Outcome]] = {
    DetectionsEnriched: on_detections,
    FlushBatch: on_flush,
}


def register(wiring: Wiring) -> TransactionalStage:
    settings = wiring.settings
    # Poison messages on the batch inputs are dead-lettered with the analysis stage's.
    stage = Stage("analysis", f"{settings.worker_id}/batches")
    deps = BatchDeps(
        BatchLimits(settings.batch_window_s, settings.batch_idle_s, settings.batch_max_size),
        stage.producer,
    )
    pending = PendingFlushes()

    # State: camera_id -> its `CameraBatches`.
    def route(message: Message, state: Callable[[str], Any]) -> tuple[str, Handle] | None:
        handler = HANDLERS.get(type(message))
        if handler is None:
            return None  # BatchOpened and the like, or a reprocessed enrichment
        camera_id = message.camera_id  # type: ignore[attr-defined]
        stored = state(camera_id)
        batches = CameraBatches.model_validate(stored) if stored else CameraBatches()
        return camera_id, partial(handler, message, batches, utcnow(), deps)

    # One message at a time: each decides on the camera state the one before left.
    batches = TransactionalStage(
        stage,
        BATCH_GROUP,
        {ENRICHMENTS: route, BATCH_COMMANDS: route},
        settings,
        linger_s=settings.commit_linger_s,
    )
    wiring.run_stage(batches)

    @wiring.app.timer(settings.batch_check_interval_s)
    async def expire_batches() -> None:
        # A timer that raises stops the whole Faust app: this one logs and tries next tick.
        try:
            states = [CameraBatches.model_validate(value) for value in await batches.values()]
            open_batches = [state.open for state in states if state.open is not None]
            for command in due_flushes(open_batches, pending, utcnow(), deps):
                await wiring.publish(command)
        except Exception:
            log.exception("checking batch timers failed; retrying on the next tick")

    return batches
