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

from schemas.codec import UndecodableMessage, decode
from schemas.detections import DetectionsProduced
from schemas.images import ImageReceived
from schemas.topics import IMAGES
from streams.dead_letters import dead_letter
from streams.detector import Detector
from streams.images import read_image
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
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
    from streams.app import publish

    producer = f"{settings.worker_id}/detection"
    # image_id -> True once its detections are published; rebuilt from its changelog on restart.
    detected = app.Table(
        "detected-images",
        default=bool,
        partitions=IMAGES.partitions or settings.topic_partitions,
        schema=faust.Schema(
            key_type=str, value_type=bool, key_serializer="json", value_serializer="json"
        ),
    )

    @app.agent(topics.images)
    async def detect_images(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            source = {
                "source_topic": message.topic,
                "source_partition": message.partition,
                "source_offset": message.offset,
            }
            camera_key = message.key.decode(errors="replace") if message.key else None
            try:
                image = decode(IMAGES, message.value)
            except UndecodableMessage as exc:
                log.warning("poison message at %s: %s", source, exc)
                letter = dead_letter(
                    stage="detection",
                    raw=message.value,
                    error=exc,
                    producer=producer,
                    camera_id=camera_key,
                    **source,
                )
                await publish(topics.dlq_detection, camera_key, letter)
                continue
            if detected[image.image_id]:
                log.info("image %s already detected; skipping duplicate", image.image_id)
                continue
            try:
                produced = await detect_image(
                    image, detector, policy, settings.max_image_bytes, producer
                )
            except RetryExhausted as exc:
                log.warning("dead-lettering image %s: %s", image.image_id, exc)
                letter = dead_letter(
                    stage="detection",
                    raw=message.value,
                    error=exc.last_error,
                    producer=producer,
                    camera_id=image.camera_id,
                    attempt_count=exc.attempts,
                    first_failed_at=exc.first_failed_at,
                    last_failed_at=exc.last_failed_at,
                    trace_id=image.trace_id,
                    **source,
                )
                await publish(topics.dlq_detection, image.camera_id, letter)
                continue
            await publish(topics.detections, image.camera_id, produced)
            detected[image.image_id] = True
