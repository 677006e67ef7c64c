"""The enrichment handlers with a fake vision model: describe people and vehicles, and let
every image's detections travel on even when the model fails."""

from __future__ import annotations

import pytest

from schemas.enrichments import DetectionsEnriched, EnrichmentReprocessed, ReprocessEnrichment
from schemas.topics import ENRICHMENTS
from streams.enricher import CropDescription, EnricherResult, EnricherUnavailable
from streams.enrichment_agent import EnrichmentDeps, on_detections, on_reprocess
from streams.errors import InvalidImage
from streams.retry import RetryPolicy
from tests.factories import detections_event, image_event
from tests.fakes import FakeEnricher

JPEG = b"\xff\xd8\xff\xe0 a photo"
NO_WAIT = RetryPolicy(max_attempts=3, base_delay_s=0, jitter=0)


def _described(*texts: str) -> EnricherResult:
    crops = tuple(
        CropDescription(description=t, attributes={"color": t.split()[-1]}, confidence=0.5)
        for t in texts
    )
    return EnricherResult(crops, model_name="fake-enricher", model_version="2", latency_ms=9.0)


def _deps(enricher: FakeEnricher) -> EnrichmentDeps:
    return EnrichmentDeps(enricher, NO_WAIT, max_image_bytes=1000, producer="w1/enrichment")


@pytest.fixture
def produced(tmp_path):
    path = tmp_path / "bus.jpg"
    path.write_bytes(JPEG)
    image = image_event("driveway", file_path=str(path))
    return detections_event(image, ["person", "dog", "car"])


async def test_people_and_vehicles_are_described_by_position(produced):
    enricher = FakeEnricher(_described("Person in red", "Car in blue"))
    outcome = await on_detections(produced, _deps(enricher))
    [item] = outcome.publish
    enriched = item.message
    assert (item.topic, item.key, outcome.failure, outcome.state) == (
        ENRICHMENTS,
        "driveway",
        None,
        None,
    )
    assert isinstance(enriched, DetectionsEnriched)
    assert [(e.position, e.detection_type, e.description) for e in enriched.enrichments] == [
        (0, "person", "Person in red"),
        (2, "vehicle", "Car in blue"),
    ]
    assert enriched.enrichments[1].attributes == {"color": "blue"}
    assert enriched.detections == produced.detections
    assert (enriched.model_name, enriched.model_version, enriched.latency_ms) == (
        "fake-enricher",
        "2",
        9.0,
    )
    assert (enriched.detected_at, enriched.enrichment_error) == (produced.occurred_at, None)
    [(image, asked)] = enricher.calls
    assert image == JPEG
    assert [d.label for d in asked] == ["person", "car"]


async def test_detections_travel_on_when_the_vision_model_stays_down(produced):
    enricher = FakeEnricher(EnricherUnavailable("crop-attributes: connection refused"))
    outcome = await on_detections(produced, _deps(enricher))
    [item] = outcome.publish
    assert item.message.detections == produced.detections
    assert item.message.enrichments == ()
    assert item.message.model_name is None
    assert item.message.enrichment_error == (
        "EnricherUnavailable after 3 attempt(s): crop-attributes: connection refused"
    )
    assert (type(outcome.failure.error), outcome.failure.attempts) == (EnricherUnavailable, 3)
    assert len(enricher.calls) == 3


async def test_a_refused_image_is_not_retried_and_its_detections_travel_on(produced):
    enricher = FakeEnricher(InvalidImage("invalid image: truncated"))
    outcome = await on_detections(produced, _deps(enricher))
    assert outcome.failure.attempts == 1
    assert outcome.publish[0].message.enrichment_error.startswith("InvalidImage after 1 attempt")
    assert len(enricher.calls) == 1


async def test_nothing_worth_describing_calls_no_model():
    produced = detections_event(image_event("yard"), ["dog", "bird"])
    enricher = FakeEnricher(EnricherUnavailable("must not be called"))
    outcome = await on_detections(produced, _deps(enricher))
    assert outcome.failure is None
    assert (outcome.publish[0].message.enrichments, enricher.calls) == ((), [])


def _command(produced, position: int) -> ReprocessEnrichment:
    return ReprocessEnrichment(
        request_id="r1",
        detection_id=77,
        image_id=produced.image_id,
        camera_id=produced.camera_id,
        file_path=produced.file_path,
        position=position,
        detection=produced.detections[position],
    )


async def test_reprocess_describes_one_detection_again_as_a_new_record(produced):
    enricher = FakeEnricher(_described("Car in green"))
    outcome = await on_reprocess(_command(produced, 2), _deps(enricher))
    [item] = outcome.publish
    again = item.message
    assert isinstance(again, EnrichmentReprocessed)
    assert (item.topic, item.key) == (ENRICHMENTS, "driveway")
    assert (again.request_id, again.image_id) == ("r1", produced.image_id)
    assert (again.enrichment.position, again.enrichment.detection_type) == (2, "vehicle")
    assert again.enrichment.description == "Car in green"
    assert [d.label for _, detections in enricher.calls for d in detections] == ["car"]


async def test_reprocess_that_fails_publishes_nothing_and_gives_up(produced):
    enricher = FakeEnricher(EnricherUnavailable("down"))
    outcome = await on_reprocess(_command(produced, 0), _deps(enricher))
    assert outcome.publish == ()
    assert (type(outcome.failure.error), outcome.failure.attempts) == (EnricherUnavailable, 3)
