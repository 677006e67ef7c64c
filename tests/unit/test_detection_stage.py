"""The detection handler with a fake detector: detect, skip, give up at once or after retries."""

from __future__ import annotations

import pytest

from schemas.detections import DetectionsProduced, DetectionsReprocessed, ReprocessDetection
from schemas.topics import DETECTIONS
from streams.detection_agent import DetectionDeps, on_image, on_reprocess
from streams.detector import DetectorResult, DetectorUnavailable
from streams.errors import ImageMissing, InvalidImage
from streams.retry import RetryPolicy
from streams.stage import Outcome
from tests.factories import detection, image_event
from tests.fakes import FakeDetector

JPEG = b"\xff\xd8\xff\xe0 a photo"
NO_WAIT = RetryPolicy(max_attempts=3, base_delay_s=0, jitter=0)
FOUND = DetectorResult(
    detections=(detection("person"), detection("bus", 1)),
    image_width=810,
    image_height=1080,
    model_name="fake-detector",
    model_version="3",
    latency_ms=40.0,
)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "front_door" / "bus.jpg"
    path.parent.mkdir()
    path.write_bytes(JPEG)
    return image_event("front_door", file_path=str(path))


def _deps(detector: FakeDetector) -> DetectionDeps:
    return DetectionDeps(detector, NO_WAIT, max_image_bytes=1000, producer="w1/detection")


async def test_detections_are_published_under_the_camera_and_recorded(photo):
    detector = FakeDetector(FOUND)
    outcome = await on_image(photo, False, _deps(detector))
    [item] = outcome.publish
    produced = item.message
    assert (item.topic, item.key, outcome.state, outcome.failure) == (
        DETECTIONS,
        "front_door",
        True,
        None,
    )
    assert isinstance(produced, DetectionsProduced)
    assert produced.detections == FOUND.detections
    assert (produced.image_id, produced.file_path) == (photo.image_id, photo.file_path)
    assert (produced.image_width, produced.image_height) == (810, 1080)
    assert (produced.model_name, produced.model_version, produced.latency_ms) == (
        "fake-detector",
        "3",
        40.0,
    )
    assert (produced.image_received_at, produced.trace_id) == (photo.occurred_at, photo.trace_id)
    assert produced.producer == "w1/detection"
    assert detector.images == [JPEG]


async def test_an_image_already_detected_is_skipped_without_calling_the_detector(photo):
    detector = FakeDetector(FOUND)
    assert await on_image(photo, True, _deps(detector)) == Outcome()
    assert detector.images == []


async def test_a_refused_image_is_given_up_at_once(photo):
    detector = FakeDetector(InvalidImage("invalid image: corrupt or truncated JPEG data"), FOUND)
    outcome = await on_image(photo, False, _deps(detector))
    assert (outcome.publish, outcome.state) == ((), None)
    assert outcome.failure.attempts == 1
    assert isinstance(outcome.failure.error, InvalidImage)
    assert len(detector.images) == 1


async def test_a_file_that_is_not_an_image_never_reaches_the_detector(photo, tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_bytes(b"this is text")
    detector = FakeDetector(FOUND)
    outcome = await on_image(
        photo.model_copy(update={"file_path": str(path)}), False, _deps(detector)
    )
    assert outcome.failure.attempts == 1
    assert str(outcome.failure.error).startswith("invalid image: not a known image format")
    assert detector.images == []


async def test_a_deleted_file_is_given_up_at_once(photo, tmp_path):
    gone = photo.model_copy(update={"file_path": str(tmp_path / "gone.jpg")})
    outcome = await on_image(gone, False, _deps(FakeDetector(FOUND)))
    assert isinstance(outcome.failure.error, ImageMissing)
    assert outcome.failure.attempts == 1


async def test_a_detector_that_stays_down_is_given_up_after_every_attempt(photo):
    detector = FakeDetector(DetectorUnavailable("centernet: connection refused"))
    outcome = await on_image(photo, False, _deps(detector))
    failure = outcome.failure
    assert (outcome.publish, outcome.state) == ((), None)
    assert (type(failure.error), failure.attempts) == (DetectorUnavailable, 3)
    assert failure.first_failed_at <= failure.last_failed_at
    assert len(detector.images) == 3


async def test_a_detector_that_recovers_within_the_retries_detects(photo):
    detector = FakeDetector(DetectorUnavailable("busy"), FOUND)
    outcome = await on_image(photo, False, _deps(detector))
    assert outcome.failure is None and outcome.state is True
    assert outcome.publish[0].message.detections == FOUND.detections
    assert len(detector.images) == 2


def _reprocess(photo, model_version: str | None = None) -> ReprocessDetection:
    return ReprocessDetection(
        job_id="job_1",
        image_id=photo.image_id,
        camera_id=photo.camera_id,
        file_path=photo.file_path,
        model_name="other-detector",
        model_version=model_version,
    )


def _deps_making(detector: FakeDetector, asked: list) -> DetectionDeps:
    def detector_for(name: str, version: str | None) -> FakeDetector:
        asked.append((name, version))
        return detector

    # The pipeline's own detector must not be the one called.
    unused = FakeDetector(AssertionError("the pipeline's detector was called"))
    return DetectionDeps(
        unused,
        NO_WAIT,
        max_image_bytes=1000,
        producer="w1/detection",
        detector_for=detector_for,
    )


async def test_a_reprocess_command_runs_the_named_detector_and_keeps_its_job(photo):
    detector, asked = FakeDetector(FOUND), []
    command = _reprocess(photo, model_version="7")
    outcome = await on_reprocess(command, False, _deps_making(detector, asked))
    [item] = outcome.publish
    assert asked == [("other-detector", "7")]
    assert (item.topic, item.key, outcome.state, outcome.failure) == (
        DETECTIONS,
        "front_door",
        True,
        None,
    )
    assert isinstance(item.message, DetectionsReprocessed)
    assert (item.message.job_id, item.message.image_id) == ("job_1", photo.image_id)
    assert item.message.detections == FOUND.detections
    assert (item.message.model_name, item.message.model_version) == ("fake-detector", "3")
    assert item.message.trace_id == command.trace_id
    assert detector.images == [JPEG]


async def test_a_reprocess_done_before_for_the_job_is_skipped(photo):
    detector, asked = FakeDetector(FOUND), []
    assert await on_reprocess(_reprocess(photo), True, _deps_making(detector, asked)) == Outcome()
    assert (asked, detector.images) == ([], [])


async def test_a_reprocess_whose_detector_stays_down_is_given_up_after_the_retries(photo):
    detector = FakeDetector(DetectorUnavailable("other-detector: 503"))
    outcome = await on_reprocess(_reprocess(photo), False, _deps_making(detector, []))
    assert outcome.publish == () and outcome.state is None
    assert outcome.failure is not None and outcome.failure.attempts == 3
    assert isinstance(outcome.failure.error, DetectorUnavailable)
