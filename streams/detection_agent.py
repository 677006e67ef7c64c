"""Detection agent: images topic -> detector on Triton -> detections topic.

The loop decodes, calls `detect_image`, and publishes; every failure is
dead-lettered with the original message and the loop carries on.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import faust

from schemas.detections import DetectionsProduced
from schemas.images import ImageReceived
from schemas.topics import IMAGES
from streams.detector import Detector
from streams.images import read_image
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Stage
from vigil.settings import Settings

if TYPE_CHECKING:
    from streams.app import Topics

log = logging.getLogger(__name__)


async def detect_image(
    image: ImageReceived, detector: Detector, policy: RetryPolicy, max_bytes: int, producer: str
) -> DetectionsProduced:
    async def attempt():
        data = await asyncio.to_thread(read_image, Path(image.file_path), max_bytes)
        return await detector.detect(data)

    result = await call_with_retry(attempt, policy)
    return DetectionsProduced(
        image_id=image.image_id,
        camera_id=image.camera_id,
        file_path=image.file_path,
        image_width=result.image_width,
        image_height=result.image_height,
        detections=result.detections,
        model_name=result.model_name,
        model_version=result.model_version,
        latency_ms=result.latency_ms,
        image_received_at=image.occurred_at,
        producer=producer,
        trace_id=image.trace_id,
    )


def register(
    app: faust.App, topics: Topics, detector: Detector, policy: RetryPolicy, settings: Settings
) -> None:
    from streams.app import changelog_table, publish

    stage = Stage("detection", topics.dlq_detection, f"{settings.worker_id}/detection")
    # image_id -> True once its detections are published; rebuilt from its changelog on restart.
    detected = changelog_table(app, "detected-images", settings, default=bool)

    async def on_image(event: faust.EventT, image: ImageReceived) -> None:
        if detected[image.image_id]:
            log.info("image %s already detected; skipping duplicate", image.image_id)
            return
        try:
            produced = await detect_image(
                image, detector, policy, settings.max_image_bytes, stage.producer
            )
        except RetryExhausted as exc:
            await stage.give_up(event, exc, image.camera_id, trace_id=image.trace_id)
            return
        await publish(topics.detections, image.camera_id, produced)
        detected[image.image_id] = True

    @app.agent(topics.images)
    async def detect_images(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await stage.handle(event, {IMAGES.name: IMAGES}, on_image)
