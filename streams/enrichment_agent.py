"""Enrichment agent: detections -> vision model on Triton -> enrichments.

Every image's detections go on to the batch aggregator, enriched or not: when
the vision model fails after retries, the failure is dead-lettered and the
detections travel on with `enrichment_error` set, so analysis never waits on it.
A reprocess command enriches one detection again as a new record.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import faust

from schemas.detections import DetectionsProduced
from schemas.enrichments import (
    ENRICHED_TYPES,
    DetectionsEnriched,
    Enrichment,
    EnrichmentReprocessed,
    ReprocessEnrichment,
    detection_type,
)
from schemas.topics import DETECTIONS, ENRICHMENT_COMMANDS
from streams.enricher import Enricher, EnricherResult
from streams.images import read_image
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Stage
from vigil.settings import Settings

if TYPE_CHECKING:
    from schemas.detections import Detection
    from schemas.envelope import Message
    from streams.app import Topics

INPUTS = {spec.name: spec for spec in (DETECTIONS, ENRICHMENT_COMMANDS)}


def worth_enriching(detections: tuple[Detection, ...]) -> list[int]:
    return [i for i, d in enumerate(detections) if detection_type(d.label) in ENRICHED_TYPES]


async def describe(
    enricher: Enricher,
    path: str,
    detections: list[Detection],
    policy: RetryPolicy,
    max_bytes: int,
) -> EnricherResult:
    async def attempt() -> EnricherResult:
        data = await asyncio.to_thread(read_image, Path(path), max_bytes)
        return await enricher.describe(data, detections)

    return await call_with_retry(attempt, policy)


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


def register(
    app: faust.App, topics: Topics, enricher: Enricher, policy: RetryPolicy, settings: Settings
) -> None:
    from streams.app import publish

    stage = Stage("enrichment", topics.dlq_enrichment, f"{settings.worker_id}/enrichment")

    async def on_detections(event: faust.EventT, produced: DetectionsProduced) -> None:
        targets = [(p, produced.detections[p]) for p in worth_enriching(produced.detections)]
        result, error = None, None
        if targets:
            try:
                result = await describe(
                    enricher,
                    produced.file_path,
                    [detection for _, detection in targets],
                    policy,
                    settings.max_image_bytes,
                )
            except RetryExhausted as exc:
                await stage.give_up(event, exc, produced.camera_id, trace_id=produced.trace_id)
                error = str(exc)
        enriched = DetectionsEnriched(
            image_id=produced.image_id,
            camera_id=produced.camera_id,
            file_path=produced.file_path,
            image_width=produced.image_width,
            image_height=produced.image_height,
            detections=produced.detections,
            detected_at=produced.occurred_at,
            enrichments=enrichments_of(targets, result) if result else (),
            model_name=result.model_name if result else None,
            model_version=result.model_version if result else None,
            latency_ms=result.latency_ms if result else None,
            enrichment_error=error,
            producer=stage.producer,
            trace_id=produced.trace_id,
        )
        await publish(topics.enrichments, produced.camera_id, enriched)

    async def on_reprocess(event: faust.EventT, command: ReprocessEnrichment) -> None:
        try:
            result = await describe(
                enricher, command.file_path, [command.detection], policy, settings.max_image_bytes
            )
        except RetryExhausted as exc:
            await stage.give_up(event, exc, command.camera_id, trace_id=command.trace_id)
            return
        [enrichment] = enrichments_of([(command.position, command.detection)], result)
        await publish(
            topics.enrichments,
            command.camera_id,
            EnrichmentReprocessed(
                request_id=command.request_id,
                image_id=command.image_id,
                camera_id=command.camera_id,
                enrichment=enrichment,
                model_name=result.model_name,
                model_version=result.model_version,
                latency_ms=result.latency_ms,
                producer=stage.producer,
                trace_id=command.trace_id,
            ),
        )

    async def on_message(event: faust.EventT, message: Message) -> None:
        if isinstance(message, DetectionsProduced):
            await on_detections(event, message)
        elif isinstance(message, ReprocessEnrichment):
            await on_reprocess(event, message)

    @app.agent(topics.enrichment_input)
    async def enrich(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await stage.handle(event, INPUTS, on_message)
