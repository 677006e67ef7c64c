"""Detection stage: images topic -> detector on Triton -> detections topic.

`on_image` decides: skip an image already detected, else read the file and call the
detector under the retry policy; publish its detections, or give the image up (bad input
at once, a detector that stays down after the retries). `on_reprocess` does the same for a
reprocess job's command, with the detector the command names, once per job and image.
`register` runs both as one transactional stage (`streams.transactional`): images and
commands are decided several at a time, and each one's detections (or dead letter), its
state and its offset are committed together, so a reader of the detections topic sees an
image's detections exactly once, across kills, restarts and rebalances.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from schemas.detections import DetectionsProduced, DetectionsReprocessed, ReprocessDetection
from schemas.envelope import Message
from schemas.images import ImageReceived
from schemas.topics import DETECTION_COMMANDS, DETECTION_GROUP, DETECTIONS, IMAGES
from streams.detector import Detector, DetectorResult
from streams.images import read_image
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Failure, Handle, Outcome, Publish, Stage
from streams.transactional import TransactionalStage
from streams.wiring import Wiring

log = logging.getLogger(__name__)


Routed = tuple[str | None, Handle]

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
) -> TransactionalStage:
    settings = wiring.settings
    stage = Stage("detection", f"{settings.worker_id}/detection")
    deps = DetectionDeps(detector, policy, settings.max_image_bytes, stage.producer, detector_for)

    # State, per input: image_id -> True once its detections are published; for a reprocess
    # command, "<job_id>/<image_id>" -> True once that job's detections of it are.
    def image(message: Message, detected: Callable[[str], Any]) -> Routed | None:
        if not isinstance(message, ImageReceived):
            return None
        return message.image_id, partial(on_image, message, bool(detected(message.image_id)), deps)

    def reprocess(message: Message, done: Callable[[str], Any]) -> Routed | None:
        if not isinstance(message, ReprocessDetection):
            return None
        key = reprocess_key(message)
        return key, partial(on_reprocess, message, bool(done(key)), deps)

    detection = TransactionalStage(
        stage,
        DETECTION_GROUP,
        {IMAGES: image, DETECTION_COMMANDS: reprocess},
        settings,
        limit=settings.detection_in_flight,
        once_per_key=True,
    )
    wiring.run_stage(detection)
    return detection
