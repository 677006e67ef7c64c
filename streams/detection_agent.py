"""Detection stage: images topic -> detector on Triton -> detections topic.

`on_image` decides: skip an image already detected, else read the file and call the
detector under the retry policy; publish its detections, or give the image up (bad input
at once, a detector that stays down after the retries). `on_reprocess` does the same for a
reprocess job's command, with the detector the command names, once per job and image.
`register` is the two Faust loops; images are detected several at a time (`InFlight`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import faust

from schemas.detections import DetectionsProduced, DetectionsReprocessed, ReprocessDetection
from schemas.images import ImageReceived
from schemas.topics import DETECTION_COMMANDS, DETECTIONS, IMAGES
from streams.detector import Detector, DetectorResult
from streams.images import read_image
from streams.in_flight import InFlight
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Failure, Outcome, Publish, Stage
from streams.wiring import Wiring, received

log = logging.getLogger(__name__)


# The detector of a model name and version (None: the version Triton serves by default).
DetectorFor = Callable[[str, str | None], Detector]


@dataclass(frozen=True)
class DetectionDeps:
    detector: Detector
    policy: RetryPolicy
    max_image_bytes: int
    producer: str
    detector_for: DetectorFor | None = None


async def _detect(file_path: str, detector: Detector, deps: DetectionDeps) -> DetectorResult:
    async def attempt() -> DetectorResult:
        data = await asyncio.to_thread(read_image, Path(file_path), deps.max_image_bytes)
        return await detector.detect(data)

    return await call_with_retry(attempt, deps.policy)


async def detect_image(image: ImageReceived, deps: DetectionDeps) -> DetectionsProduced:
    result = await _detect(image.file_path, deps.detector, deps)
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


async def on_reprocess(command: ReprocessDetection, done: bool, deps: DetectionDeps) -> Outcome:
    """`done`: this job had this image reprocessed before (state: True once published)."""
    if done:
        log.info("image %s already reprocessed for %s; skipping", command.image_id, command.job_id)
        return Outcome()
    if deps.detector_for is None:
        raise LookupError("this worker makes no detectors on request")
    detector = deps.detector_for(command.model_name, command.model_version)
    try:
        result = await _detect(command.file_path, detector, deps)
    except RetryExhausted as exc:
        return Outcome(failure=Failure.after(exc))
    produced = DetectionsReprocessed(
        job_id=command.job_id,
        image_id=command.image_id,
        camera_id=command.camera_id,
        file_path=command.file_path,
        image_width=result.image_width,
        image_height=result.image_height,
        detections=result.detections,
        model_name=result.model_name,
        model_version=result.model_version,
        latency_ms=result.latency_ms,
        producer=deps.producer,
        trace_id=command.trace_id,
    )
    return Outcome(publish=(Publish(DETECTIONS, command.camera_id, produced),), state=True)


def reprocess_key(command: ReprocessDetection) -> str:
    return f"{command.job_id}/{command.image_id}"


def register(
    wiring: Wiring, detector: Detector, policy: RetryPolicy, detector_for: DetectorFor
) -> None:
    settings = wiring.settings
    stage = Stage("detection", f"{settings.worker_id}/detection", wiring.publish)
    deps = DetectionDeps(detector, policy, settings.max_image_bytes, stage.producer, detector_for)
    # image_id -> True once its detections are published; rebuilt from its changelog on restart.
    detected = wiring.table("detected-images", default=bool)

    @wiring.app.agent(wiring.topic(IMAGES))
    async def detect_images(stream: faust.StreamT) -> None:
        async with InFlight(
            stage, settings.detection_in_flight, detected.__getitem__, detected.put
        ) as window:
            async for event in stream.noack().events():
                source = received(event)
                image = await stage.decode(source)
                if not isinstance(image, ImageReceived):
                    await window.skip(event.ack)
                    continue
                handle = partial(on_image, image, detected[image.image_id], deps)
                await window.submit(event.ack, source, image, image.image_id, handle)

    # "<job_id>/<image_id>" -> True once that job's detections of the image are published.
    reprocessed = wiring.table("reprocessed-images", default=bool)

    @wiring.app.agent(wiring.topic(DETECTION_COMMANDS))
    async def reprocess_images(stream: faust.StreamT) -> None:
        async for event in stream.events():
            source = received(event)
            command = await stage.decode(source)
            if not isinstance(command, ReprocessDetection):
                continue
            key = reprocess_key(command)
            outcome = await stage.handle(
                source, command, partial(on_reprocess, command, reprocessed[key], deps)
            )
            if outcome.state:
                await reprocessed.put(key, True)
