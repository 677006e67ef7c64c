"""Runs the folder watcher inside the worker and publishes what it finds."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

import faust

from schemas.images import ImageReceived, image_id_for
from streams.dead_letters import dead_letter
from streams.watcher import CompleteUpload, FolderWatcher, Rejected
from vigil.settings import Settings

if TYPE_CHECKING:
    from streams.app import Topics

log = logging.getLogger(__name__)


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


def register(app: faust.App, topics: Topics, settings: Settings) -> None:
    from streams.app import publish

    watcher = FolderWatcher(settings.camera_root, settings.file_stable_s)
    producer = f"{settings.worker_id}/watcher"

    # One watcher per consumer group: only the leader scans the folders.
    @app.timer(settings.watch_interval_s, on_leader=True)
    async def watch_camera_folders() -> None:
        # A timer that raises stops the whole Faust app: this one logs and tries next tick.
        try:
            uploads, rejected = await asyncio.to_thread(watcher.poll, time.monotonic())
            for index, upload in enumerate(uploads):
                event = image_received(upload, producer)
                try:
                    await publish(topics.images, event.camera_id, event)
                except BaseException:
                    for unsent in uploads[index:]:
                        watcher.retry_later(unsent)
                    raise
                log.info("image %s from %s: %s", event.image_id, event.camera_id, upload.path.name)
            for reject in rejected:
                await publish(topics.dlq_detection, reject.camera_id, _rejection(reject, producer))
                log.warning("rejected %s: %s", reject.path, reject.reason)
        except Exception:
            log.exception("watching the camera folders failed; retrying on the next tick")


class PathOutsideCameraRoot(Exception):
    error_type = "PathOutsideCameraRoot"


def _rejection(reject: Rejected, producer: str):
    return dead_letter(
        stage="detection",
        raw=str(reject.path).encode(),
        error=PathOutsideCameraRoot(reject.reason),
        producer=producer,
        source_topic=None,
        camera_id=reject.camera_id,
    )
