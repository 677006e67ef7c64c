"""The camera folder watcher inside the worker: what it finds, published.

`announcements` decides what a poll's findings become: an `ImageReceived` per complete
upload, and a dead letter for each path refused before it reached any topic (a link out
of the camera root). The Faust timer only polls, publishes them in order, and asks the
watcher to report again the uploads it could not publish. When it starts (or leads again),
it first reads back from the images topic what was announced of the files in the folders,
so a restart announces nothing twice (`recall_announced`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from opentelemetry.trace import Span, SpanKind
from watchfiles import Change, awatch

from schemas.images import ImageReceived, image_id_for
from schemas.reading import Read, read_range
from schemas.topics import DEAD_LETTER_TOPICS, IMAGES
from streams.dead_letters import dead_letter
from streams.stage import Publish
from streams.watcher import CompleteUpload, FolderWatcher, Rejected
from streams.wiring import Wiring
from vigil import tracing

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


def started_trace(item: Publish, span: Span) -> Publish:
    """`item` as the first message of `span`'s trace: its envelope names the trace, its
    header the span."""
    trace_id = tracing.trace_id_of(span)
    if trace_id is None:
        return item
    message = item.message.model_copy(update={"trace_id": trace_id})
    return replace(item, message=message, traceparent=tracing.traceparent())


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


def announced_since(bootstrap: str, since: datetime) -> Iterator[tuple[str, str]]:
    """(camera_id, sha256) of every image announced on the images topic since `since`."""
    for message in read_range(bootstrap, IMAGES, since, datetime.now(UTC), Read()):
        if isinstance(message, ImageReceived):
            yield message.camera_id, message.sha256


def recall_announced(watcher: FolderWatcher, bootstrap: str) -> int:
    """Make `watcher` know what was announced of the files now in the camera folders (by
    any earlier watcher: this worker before a restart, or another that led the group), so
    that none of them is announced again. How many it learnt."""
    since = watcher.oldest_file()
    return 0 if since is None else watcher.recall(announced_since(bootstrap, since))


def register(wiring: Wiring) -> None:
    settings = wiring.settings
    watcher = FolderWatcher(
        settings.camera_root, settings.file_stable_s, incomplete_s=settings.file_incomplete_s
    )
    producer = f"{settings.worker_id}/watcher"
    # A rescan this long after the last one means the watcher was not running (not the
    # leader, or not started): what was announced meanwhile is read back before the next.
    resume_after_s = max(10.0, 5 * settings.watch_interval_s)
    last_rescan: float | None = None
    # The rescan and the file-system events share the watcher's memory: one at a time.
    looking = asyncio.Lock()

    def rescanned_since(moment: float) -> bool:
        return last_rescan is not None and last_rescan >= moment

    async def announce(uploads: list[CompleteUpload], rejected: list[Rejected]) -> None:
        found = announcements(uploads, rejected, producer)
        for index, (finding, item) in enumerate(found):
            try:
                with tracing.tracer().start_as_current_span(
                    "watcher report",
                    kind=SpanKind.PRODUCER,
                    attributes={
                        "vigil.camera_id": finding.camera_id,
                        "file.path": str(finding.path),
                    },
                ) as span:
                    await wiring.publish(started_trace(item, span))
            except BaseException:
                for unsent, _ in found[index:]:
                    if isinstance(unsent, CompleteUpload):
                        watcher.retry_later(unsent)
                raise
            log.info("%s from %s: %s", item.message.event_type, finding.camera_id, finding.path)

    # One watcher per consumer group: only the leader looks at the folders. The rescan is
    # the safety net under the file-system events (and the clock of the stability rule).
    @wiring.app.timer(settings.watch_interval_s, on_leader=True)
    async def rescan_camera_folders() -> None:
        nonlocal last_rescan
        # A timer that raises stops the whole Faust app: this one logs and tries next tick.
        try:
            async with looking:
                now = time.monotonic()
                if not rescanned_since(now - resume_after_s):
                    learnt = await asyncio.to_thread(
                        recall_announced, watcher, settings.kafka_bootstrap_servers
                    )
                    log.info("watcher resumed; %d images announced before will not be", learnt)
                last_rescan = now
                await announce(*await asyncio.to_thread(watcher.poll, time.monotonic()))
        except Exception:
            log.exception("rescanning the camera folders failed; retrying on the next tick")

    def leading() -> bool:
        """The leader, with what was announced before read back by a recent rescan."""
        return wiring.app.is_leader() and rescanned_since(time.monotonic() - resume_after_s)

    @wiring.app.task
    async def watch_camera_folders() -> None:
        """Look at a file the moment the kernel says it was written (inotify), so that a
        whole image is announced at once rather than on the next rescan."""
        while True:
            try:
                await _until_folder(settings.camera_root, settings.watch_interval_s)
                async for changes in awatch(
                    settings.camera_root.resolve(), watch_filter=None, step=5, debounce=100
                ):
                    paths = [Path(path) for change, path in changes if change != Change.deleted]
                    if not paths or not leading():
                        continue
                    async with looking:
                        await announce(
                            *await asyncio.to_thread(watcher.poll_changed, paths, time.monotonic())
                        )
            except Exception:
                log.exception("watching the camera folders failed; the rescan carries on")
            await asyncio.sleep(settings.watch_interval_s)


async def _until_folder(root: Path, interval_s: float) -> None:
    while not root.is_dir():
        await asyncio.sleep(interval_s)
