"""Detection stage: images topic -> detector on Triton -> detections topic.

`on_image` decides: skip an image already detected, else read the file and call the
detector under the retry policy; publish its detections, or give the image up (bad input
at once, a detector that stays down after the retries). `register` is the Faust loop.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import faust

from schemas.detections import DetectionsProduced
from schemas.images import ImageReceived
from schemas.topics import DETECTIONS, IMAGES
from streams.detector import Detector
from streams.images import read_image
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Failure, Outcome, Publish, Stage
from streams.wiring import Wiring, received

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectionDeps:
    detector: Detector
    policy: RetryPolicy
    max_image_bytes: int
    producer: str


async def detect_image(image: ImageReceived, deps: DetectionDeps) -> DetectionsProduced:
    async def attempt():
        data = await asyncio.to_thread(read_image, Path(image.file_path), deps.max_image_bytes)
        return await deps.detector.detect(data)

    result = await call_with_retry(attempt, deps.policy)
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
        producer=deps.producer,
        trace_id=image.trace_id,
    )


async def on_image(image: ImageReceived, detected: bool, deps: DetectionDeps) -> Outcome:
    """`detected`: the image's detections were published before (state: True once they are)."""
    if detected:
        log.info("image %s already detected; skipping duplicate", image.image_id)
        return Outcome()
    try:
        produced = await detect_image(image, deps)
    except RetryExhausted as exc:
        return Outcome(failure=Failure.after(exc))
    return Outcome(publish=(Publish(DETECTIONS, image.camera_id, produced),), state=True)


def register(wiring: Wiring, detector: Detector, policy: RetryPolicy) -> None:
    settings = wiring.settings
    stage = Stage("detection", f"{settings.worker_id}/detection", wiring.publish)
    deps = DetectionDeps(detector, policy, settings.max_image_bytes, stage.producer)
    # image_id -> True once its detections are published; rebuilt from its changelog on restart.
    detected = wiring.table("detected-images", default=bool)

    @wiring.app.agent(wiring.topic(IMAGES))
    async def detect_images(stream: faust.StreamT) -> None:
        async for event in stream.events():
            source = received(event)
            image = await stage.decode(source)
            if not isinstance(image, ImageReceived):
                continue
            outcome = await stage.handle(
                source, image, partial(on_image, image, detected[image.image_id], deps)
            )
            if outcome.state:
                await detected.put(image.image_id, True)
