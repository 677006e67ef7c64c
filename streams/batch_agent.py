"""Batch aggregator: enrichments and flush commands in, the batch lifecycle out.

State lives in the `camera-batches` table (changelog-backed), keyed by camera,
so a worker killed mid-batch recovers the open batch on restart and closes it
with every detection in it. Timers never touch the table: they send a
`FlushBatch` command, and the agent (which owns the table) applies it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import faust

from schemas.batches import BatchOpened, DetectionsBatched, FlushBatch
from schemas.enrichments import DetectionsEnriched
from schemas.envelope import utcnow
from schemas.topics import BATCH_COMMANDS, ENRICHMENTS
from streams.batching import (
    BatchLimits,
    CameraBatches,
    OpenBatch,
    PendingFlushes,
    add_detections,
    flush,
)
from streams.stage import Stage
from vigil.settings import Settings

if TYPE_CHECKING:
    from streams.app import Topics

log = logging.getLogger(__name__)
INPUTS = {spec.name: spec for spec in (ENRICHMENTS, BATCH_COMMANDS)}


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    from streams.app import changelog_table, publish

    # Poison messages on the batch inputs are dead-lettered with the analysis stage's.
    stage = Stage("analysis", topics.dlq_analysis, f"{settings.worker_id}/batches")
    limits = BatchLimits(settings.batch_window_s, settings.batch_idle_s, settings.batch_max_size)
    pending = PendingFlushes()
    table = changelog_table(app, "camera-batches", settings)

    def load(camera_id: str) -> CameraBatches:
        stored = table.get(camera_id)
        return CameraBatches.model_validate(stored) if stored else CameraBatches()

    def store(camera_id: str, state: CameraBatches) -> None:
        table[camera_id] = state.model_dump(mode="json")

    async def close(camera_id: str, closed) -> None:
        await publish(topics.batches, camera_id, closed)
        pending.forget(closed.batch_id)
        log.info(
            "batch %s closed (%s) with %d detections",
            closed.batch_id,
            closed.trigger,
            len(closed.detections),
        )

    async def on_detections(enriched: DetectionsEnriched) -> None:
        now = utcnow()
        result = add_detections(load(enriched.camera_id), enriched, now, limits)
        if result.duplicate:
            log.info("image %s already batched; skipping", enriched.image_id)
            return
        if result.added == 0:
            return
        if result.opened is not None:
            await publish(
                topics.batches,
                enriched.camera_id,
                BatchOpened(
                    batch_id=result.opened.batch_id,
                    camera_id=enriched.camera_id,
                    started_at=result.opened.started_at,
                    producer=stage.producer,
                ),
            )
        batch = result.state.open or result.closed
        await publish(
            topics.batches,
            enriched.camera_id,
            DetectionsBatched(
                batch_id=batch.batch_id,
                camera_id=enriched.camera_id,
                image_id=enriched.image_id,
                added=result.added,
                detection_count=len(batch.detections),
                last_activity_at=now,
                producer=stage.producer,
                trace_id=enriched.trace_id,
            ),
        )
        if result.closed is not None:
            await close(enriched.camera_id, result.closed)
        store(enriched.camera_id, result.state)

    async def on_flush(command: FlushBatch) -> None:
        state, closed = flush(
            load(command.camera_id), command.batch_id, command.trigger, utcnow(), limits
        )
        if closed is None:
            log.info(
                "flush of %s (%s) ignored: not the open batch or no longer due",
                command.batch_id,
                command.trigger,
            )
            return
        await close(command.camera_id, closed)
        store(command.camera_id, state)

    async def on_message(event: faust.EventT, message: object) -> None:
        if isinstance(message, DetectionsEnriched):
            await on_detections(message)
        elif isinstance(message, FlushBatch):
            await on_flush(message)

    @app.agent(topics.batch_input)
    async def aggregate(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await stage.handle(event, INPUTS, on_message)

    @app.timer(settings.batch_check_interval_s)
    async def expire_batches() -> None:
        # A timer that raises stops the whole Faust app: this one logs and tries next tick.
        try:
            open_batches = [
                state.open
                for state in (CameraBatches.model_validate(v) for v in list(table.values()))
                if state.open is not None
            ]
            for batch, trigger in pending.due(open_batches, utcnow(), limits):
                await publish(
                    topics.batch_commands, batch.camera_id, _command(batch, trigger, stage)
                )
        except Exception:
            log.exception("checking batch timers failed; retrying on the next tick")


def _command(batch: OpenBatch, trigger, stage: Stage) -> FlushBatch:
    return FlushBatch(
        batch_id=batch.batch_id, camera_id=batch.camera_id, trigger=trigger, producer=stage.producer
    )
