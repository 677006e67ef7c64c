"""Batch aggregator: enrichments and flush commands in, the batch lifecycle out.

The handlers take a camera's `CameraBatches` (its open batch and the images recently
batched) and return the events to publish and the camera's new state: `on_detections`
opens a batch, adds an image's detections and closes it at the maximum size; `on_flush`
closes it on a manual flush or a timer's command. `due_flushes` is the timer's decision.

State lives in the `camera-batches` table (changelog-backed), keyed by camera, so a
worker killed mid-batch recovers the open batch on restart and closes it with every
detection in it. Timers never touch the table: they send a `FlushBatch` command, and the
agent (which owns the table) applies it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

import faust

from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched, FlushBatch
from schemas.enrichments import DetectionsEnriched
from schemas.envelope import Message, utcnow
from schemas.topics import BATCH_COMMANDS, BATCHES, ENRICHMENTS
from streams.batching import (
    BatchLimits,
    CameraBatches,
    OpenBatch,
    PendingFlushes,
    add_detections,
    flush,
)
from streams.stage import Outcome, Publish, Stage
from streams.wiring import Wiring, received

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


def register(wiring: Wiring) -> None:
    settings = wiring.settings
    # Poison messages on the batch inputs are dead-lettered with the analysis stage's.
    stage = Stage("analysis", f"{settings.worker_id}/batches", wiring.publish)
    deps = BatchDeps(
        BatchLimits(settings.batch_window_s, settings.batch_idle_s, settings.batch_max_size),
        stage.producer,
    )
    pending = PendingFlushes()
    table = wiring.table("camera-batches")

    def load(camera_id: str) -> CameraBatches:
        stored = table.get(camera_id)
        return CameraBatches.model_validate(stored) if stored else CameraBatches()

    @wiring.app.agent(wiring.topic(ENRICHMENTS, BATCH_COMMANDS))
    async def aggregate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            source = received(event)
            message = await stage.decode(source)
            handler = HANDLERS.get(type(message))
            if message is None or handler is None:
                continue  # undecodable (dead-lettered), or a reprocessed enrichment
            camera_id = message.camera_id  # type: ignore[attr-defined]
            outcome = await stage.handle(
                source, message, partial(handler, message, load(camera_id), utcnow(), deps)
            )
            if outcome.state is not None:
                await table.put(camera_id, outcome.state.model_dump(mode="json"))

    @wiring.app.timer(settings.batch_check_interval_s)
    async def expire_batches() -> None:
        # A timer that raises stops the whole Faust app: this one logs and tries next tick.
        try:
            states = [CameraBatches.model_validate(value) for value in list(table.values())]
            open_batches = [state.open for state in states if state.open is not None]
            for command in due_flushes(open_batches, pending, utcnow(), deps):
                await wiring.publish(command)
        except Exception:
            log.exception("checking batch timers failed; retrying on the next tick")
