"""Enrichment stage: detections -> vision model on Triton -> enrichments.

Every image's detections go on to the batch aggregator, enriched or not: when the vision
model fails after retries (`on_detections`), the failure is dead-lettered and the
detections travel on with `enrichment_error` set, so analysis never waits on it. A
reprocess command (`on_reprocess`) enriches one detection again as a new record.
`register` runs both as a transactional stage (`streams.transactional`): each image's
enrichment is published exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from schemas.detections import Detection, DetectionsProduced
from schemas.enrichments import (
    ENRICHED_TYPES,
    DetectionsEnriched,
    Enrichment,
    EnrichmentReprocessed,
    ReprocessEnrichment,
    detection_type,
)
from schemas.envelope import Message
from schemas.topics import DETECTIONS, ENRICHMENT_COMMANDS, ENRICHMENT_GROUP, ENRICHMENTS
from streams.enricher import Enricher, EnricherResult
from streams.images import read_image
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Failure, Handle, Outcome, Publish, Stage
from streams.transactional import TransactionalStage
from streams.wiring import Wiring


@dataclass(frozen=True)
class EnrichmentDeps:
    enricher: Enricher
    policy: RetryPolicy
    max_image_bytes: int
    producer: str


def worth_enriching(detections: tuple[Detection, ...]) -> list[int]:
    return [i for i, d in enumerate(detections) if detection_type(d.label) in ENRICHED_TYPES]


async def describe(path: str, detections: list[Detection], deps: EnrichmentDeps) -> EnricherResult:
    async def attempt() -> EnricherResult:
        data = await asyncio.to_thread(read_image, Path(path), deps.max_image_bytes)
        return await deps.enricher.describe(data, detections)

    return await call_with_retry(attempt, deps.policy)


def enrichments_of(
    targets: list[tuple[int, Detection]], result: EnricherResult
) -> tuple[Enrichment, ...]:
    """Pair the model's answers with the (position, detection) pairs they describe."""
    return tuple(
        Enrichment(
            position=position,
            detection_type=detection_type(detection.label),
            description=crop.description,
            attributes=crop.attributes,
            confidence=crop.confidence,
        )
        for (position, detection), crop in zip(targets, result.crops, strict=True)
    )


async def on_detections(produced: DetectionsProduced, deps: EnrichmentDeps) -> Outcome:
    targets = [(p, produced.detections[p]) for p in worth_enriching(produced.detections)]
    result, failure, error = None, None, None
    if targets:
        try:
            result = await describe(produced.file_path, [d for _, d in targets], deps)
        except RetryExhausted as exc:
            failure, error = Failure.after(exc), str(exc)
    enriched = DetectionsEnriched.of(
        produced,
        enrichments=enrichments_of(targets, result) if result else (),
        model_name=result.model_name if result else None,
        model_version=result.model_version if result else None,
        latency_ms=result.latency_ms if result else None,
        enrichment_error=error,
        producer=deps.producer,
    )
    return Outcome(publish=(Publish(ENRICHMENTS, produced.camera_id, enriched),), failure=failure)


async def on_reprocess(command: ReprocessEnrichment, deps: EnrichmentDeps) -> Outcome:
    try:
        result = await describe(command.file_path, [command.detection], deps)
    except RetryExhausted as exc:
        return Outcome(failure=Failure.after(exc))
    [enrichment] = enrichments_of([(command.position, command.detection)], result)
    reprocessed = EnrichmentReprocessed(
        request_id=command.request_id,
        image_id=command.image_id,
        camera_id=command.camera_id,
        enrichment=enrichment,
        model_name=result.model_name,
        model_version=result.model_version,
        latency_ms=result.latency_ms,
        producer=deps.producer,
        trace_id=command.trace_id,
    )
    return Outcome(publish=(Publish(ENRICHMENTS, command.camera_id, reprocessed),))


HANDLERS: dict[type[Message], Callable[..., Awaitable[Outcome]]] = {
    DetectionsProduced: on_detections,
    ReprocessEnrichment: on_reprocess,
}


def register(wiring: Wiring, enricher: Enricher, policy: RetryPolicy) -> TransactionalStage:
    settings = wiring.settings
    stage = Stage("enrichment", f"{settings.worker_id}/enrichment")
    deps = EnrichmentDeps(enricher, policy, settings.max_image_bytes, stage.producer)

    def route(message: Message, _state: Callable[[str], Any]) -> tuple[None, Handle] | None:
        # A reprocess job's detections are kept beside the image's, not enriched.
        handler = HANDLERS.get(type(message))
        return None if handler is None else (None, partial(handler, message, deps))

    enrichment = TransactionalStage(
        stage,
        ENRICHMENT_GROUP,
        {DETECTIONS: route, ENRICHMENT_COMMANDS: route},
        settings,
        limit=settings.enrichment_in_flight,
        stateful=False,
        linger_s=settings.commit_linger_s,
    )
    wiring.run_stage(enrichment)
    return enrichment
