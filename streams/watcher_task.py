"""The camera folder watcher inside the worker: what it finds, published.

`announcements` decides what a poll's findings become: an `ImageReceived` per complete
upload, and a dead letter for each path refused before it reached any topic (a link out
of the camera root). The Faust timer only polls, publishes them in order, and asks the
watcher to report again the uploads it could not publish.
"""

from __future__ import annotations

import asyncio
import logging
import time

from schemas.images import ImageReceived, image_id_for
from schemas.topics import DEAD_LETTER_TOPICS, IMAGES
from streams.dead_letters import dead_letter
from streams.stage import Publish
from streams.watcher import CompleteUpload, FolderWatcher, Rejected
from streams.wiring import Wiring

log = logging.getLogger(__name__)


class PathOutsideCameraRoot(Exception):
    error_type = "PathOutsideCameraRoot"


def image_received(upload: CompleteUpload, producer: str) -> ImageReceived:
    return ImageReceived(
        image_id=image_id_for(upload.camera_id, upload.sha256),
        camera_id=upload.camera_id,
        file_path=str(upload.path),
        sha256=upload.sha256,
        size_bytes=upload.size,
        file_modified_at=upload.modified_at,
        producer=producer,
    )


def rejection(reject: Rejected, producer: str) -> Publish:
    letter = dead_letter(
        stage="detection",
        raw=str(reject.path).encode(),
        error=PathOutsideCameraRoot(reject.reason),
        producer=producer,
        source_topic=None,
        camera_id=reject.camera_id,
    )
    return Publish(DEAD_LETTER_TOPICS["detection"], reject.camera_id, letter)


def announcements(
    uploads: list[CompleteUpload], rejected: list[Rejected], producer: str
) -> list[tuple[CompleteUpload | Rejected, Publish]]:
    """What to publish for each finding of a poll, uploads first, in the order found."""
    found: list[tuple[CompleteUpload | Rejected, Publish]] = []
    for upload in uploads:
        event = image_received(upload, producer)
        found.append((upload, Publish(IMAGES, event.camera_id, event)))
    found.extend((reject, rejection(reject, producer)) for reject in rejected)
    return found


def register(wiring: Wiring) -> None:
    settings = wiring.settings
    watcher = FolderWatcher(settings.camera_root, settings.file_stable_s)
    producer = f"{settings.worker_id}/watcher"

    # One watcher per consumer group: only the leader scans the folders.
    @wiring.app.timer(settings.watch_interval_s, on_leader=True)
    async def watch_camera_folders() -> None:
        # A timer that raises stops the whole Faust app: this one logs and tries next tick.
        try:
            uploads, rejected = await asyncio.to_thread(watcher.poll, time.monotonic())
            found = announcements(uploads, rejected, producer)
            for index, (finding, item) in enumerate(found):
                try:
                    await wiring.publish(item)
                except BaseException:
                    for unsent, _ in found[index:]:
                        if isinstance(unsent, CompleteUpload):
                            watcher.retry_later(unsent)
                    raise
                log.info("%s from %s: %s", item.message.event_type, finding.camera_id, finding.path)
        except Exception:
            log.exception("watching the camera folders failed; retrying on the next tick")
