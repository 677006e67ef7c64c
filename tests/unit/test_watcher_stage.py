"""What a poll of the camera folders becomes: an ImageReceived per upload, a dead letter for
a path refused before it reached any topic."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from schemas.dead_letters import DeadLettered
from schemas.images import ImageReceived, image_id_for
from schemas.topics import DLQ_DETECTION, IMAGES
from streams.watcher import CompleteUpload, Rejected
from streams.watcher_task import announcements

MODIFIED = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)


def _upload(camera_id: str, name: str, digest: str) -> CompleteUpload:
    return CompleteUpload(camera_id, Path(f"/cams/{camera_id}/{name}"), 2048, digest, MODIFIED)


def test_uploads_become_images_in_order_then_rejections_dead_letters():
    uploads = [_upload("front_door", "a.jpg", "a" * 64), _upload("driveway", "b.jpg", "b" * 64)]
    rejected = [Rejected("porch", Path("/cams/porch/link.jpg"), "resolves outside the root")]
    found = announcements(uploads, rejected, "w1/watcher")
    assert [finding for finding, _ in found] == [*uploads, *rejected]
    (_, first), (_, second), (_, refused) = found
    assert [(p.topic, p.key) for p in (first, second, refused)] == [
        (IMAGES, "front_door"),
        (IMAGES, "driveway"),
        (DLQ_DETECTION, "porch"),
    ]
    image = first.message
    assert isinstance(image, ImageReceived)
    assert image.image_id == image_id_for("front_door", "a" * 64)
    assert (image.file_path, image.sha256, image.size_bytes) == (
        "/cams/front_door/a.jpg",
        "a" * 64,
        2048,
    )
    assert (image.file_modified_at, image.producer) == (MODIFIED, "w1/watcher")
    letter = refused.message
    assert isinstance(letter, DeadLettered)
    assert (letter.stage, letter.error_type, letter.error) == (
        "detection",
        "PathOutsideCameraRoot",
        "resolves outside the root",
    )
    assert (letter.source_topic, letter.original, letter.original_encoding) == (
        None,
        "/cams/porch/link.jpg",
        "text",
    )
    assert (letter.camera_id, letter.attempt_count) == ("porch", 1)


def test_a_poll_that_found_nothing_publishes_nothing():
    assert announcements([], [], "w1/watcher") == []
