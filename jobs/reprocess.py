"""The reprocess_detection job: run a camera's images of a time range through another
detector (model, or version), by replaying the images topic.

The job finds the range on `vigil.images` by timestamp (`offsets_for_times`), reads each
partition from there to where it ended when the job started, and keeps the images that
arrived in the range (the camera's, when one is given), each once. It sends them to the
workers in chunks as `ReprocessDetection` commands; a worker runs each through the named
detector once per job and image and publishes `DetectionsReprocessed`, which the projector
keeps beside the image's own detections (or dead-letters the command, and the projector
counts the image failed). The job waits for each chunk's items in the read model
(`job_items`) before sending the next: an abort stops between chunks, and a new attempt
after a crash sends only the images not done yet.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs.context import Aborted, JobContext, Outgoing
from jobs.job_type import JobType
from projections.tables import DetectionRow, JobItemRow
from schemas.codec import UndecodableMessage, decode
from schemas.detections import ReprocessDetection
from schemas.images import ImageReceived
from schemas.topics import DETECTION_COMMANDS, IMAGES

log = logging.getLogger(__name__)

CHUNK = 20
# An image's message is produced right after its event is made; this much either side
# covers clocks and queues when the range is looked up by message time.
SLACK = timedelta(minutes=5)
READ_TIMEOUT_S = 120.0
# A chunk with no item finished for this long fails the attempt (and the next one resumes).
STALL_S = 300.0


class ItemsStalled(TimeoutError):
    """The workers finished none of the chunk's images for STALL_S."""


class EveryImageFailed(RuntimeError):
    """Not one image could be reprocessed; the dead letters say why."""


class ReprocessDetectionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    camera_id: str | None = Field(default=None, min_length=1, max_length=128)
    start: AwareDatetime
    end: AwareDatetime
    model: str = Field(min_length=1, max_length=64, description="Triton model name")
    model_version: str | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _range(self) -> ReprocessDetectionParams:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


def images_in_range(
    bootstrap_servers: str, start: datetime, end: datetime, camera_id: str | None
) -> tuple[list[ImageReceived], int]:
    """The images that arrived in [start, end] (of the camera), oldest first per partition,
    each once; and how many messages could not be read."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"vigil-reprocess-{uuid.uuid4().hex}",  # assigned, never committed
            "enable.auto.commit": False,
        }
    )
    found: dict[str, ImageReceived] = {}
    undecodable = 0
    try:
        topic = consumer.list_topics(IMAGES.name, timeout=10).topics[IMAGES.name]
        since = int((start - SLACK).timestamp() * 1000)
        until = int((end + SLACK).timestamp() * 1000)
        starts = consumer.offsets_for_times(
            [TopicPartition(IMAGES.name, p, since) for p in topic.partitions], timeout=10
        )
        ends: dict[int, int] = {}
        assigned = []
        for tp in starts:
            _low, high = consumer.get_watermark_offsets(tp, timeout=10)
            if 0 <= tp.offset < high:  # -1: nothing at or after `since`
                ends[tp.partition] = high
                assigned.append(tp)
        consumer.assign(assigned)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while ends:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{IMAGES.name} partitions {sorted(ends)} not read in time")
            for message in consumer.consume(num_messages=500, timeout=1.0):
                if message.error() is not None or message.partition() not in ends:
                    continue
                if message.offset() + 1 >= ends[message.partition()]:
                    del ends[message.partition()]
                if message.timestamp()[1] > until:
                    ends.pop(message.partition(), None)
                    continue
                try:
                    image = decode(IMAGES, message.value())
                except UndecodableMessage:
                    undecodable += 1
                    continue
                if (camera_id is None or image.camera_id == camera_id) and (
                    start <= image.occurred_at <= end
                ):
                    found.setdefault(image.image_id, image)
    finally:
        consumer.close()
    return list(found.values()), undecodable


def _items(context: JobContext) -> dict[str, str]:
    with Session(context.engine) as session:
        rows = session.execute(
            select(JobItemRow.item_id, JobItemRow.status).where(JobItemRow.job_id == context.job_id)
        )
        return dict(rows.all())


def _command(context: JobContext, image: ImageReceived, p: ReprocessDetectionParams) -> Outgoing:
    command = ReprocessDetection(
        job_id=context.job_id,
        image_id=image.image_id,
        camera_id=image.camera_id,
        file_path=image.file_path,
        model_name=p.model,
        model_version=p.model_version,
        trace_id=image.trace_id,
    )
    return (DETECTION_COMMANDS, image.camera_id, command)


def _wait_for(context: JobContext, ids: set[str], total: int) -> dict[str, str]:
    """Until every one of `ids` is done or failed; reports progress and checks for abort."""
    last_change, finished = time.monotonic(), -1
    while True:
        items = _items(context)
        done = len(items)
        if done != finished:
            last_change, finished = time.monotonic(), done
        context.progress(done, total, f"Reprocessed {done} of {total} images")
        if ids <= items.keys():
            return items
        if time.monotonic() - last_change > STALL_S:
            raise ItemsStalled(f"no image finished for {STALL_S:.0f} s ({done} of {total})")
        time.sleep(0.2)


def run_reprocess(context: JobContext, params: ReprocessDetectionParams) -> dict[str, Any]:
    scope = f"camera {params.camera_id}" if params.camera_id else "every camera"
    model = params.model + (f" version {params.model_version}" if params.model_version else "")
    images, undecodable = images_in_range(
        context.bootstrap_servers, params.start, params.end, params.camera_id
    )
    total = len(images)
    context.log(
        "INFO",
        f"Reprocessing {total} images of {scope} from {params.start.isoformat()} to "
        f"{params.end.isoformat()} with {model}",
    )
    if undecodable:
        context.log("WARNING", f"{undecodable} messages on {IMAGES.name} could not be read")
    items = _items(context)
    todo = [image for image in images if image.image_id not in items]
    if len(todo) < total:
        context.log("INFO", f"{total - len(todo)} images were done by an earlier attempt")
    try:
        for first in range(0, len(todo), CHUNK):
            context.check()
            chunk = todo[first : first + CHUNK]
            context.publish([_command(context, image, params) for image in chunk])
            items = _wait_for(context, {image.image_id for image in chunk}, total)
    except Aborted:
        done = len(_items(context))
        context.log("WARNING", f"Aborted after {done} of {total} images; their results stay")
        raise
    items = _items(context) if total else {}
    failed = sorted(k for k, status in items.items() if status == "failed")
    if total and len(failed) == total:
        raise EveryImageFailed(f"all {total} images failed; their dead letters say why")
    if failed:
        context.log("WARNING", f"{len(failed)} of {total} images failed (dead-lettered)")
    context.progress(total, total, f"Reprocessed {total} images")
    return {
        "model_name": params.model,
        "model_version": params.model_version,
        "images": total,
        "reprocessed": total - len(failed),
        "failed": len(failed),
        "detections": _detections_made(context, params, [i.image_id for i in images]),
    }


def _detections_made(
    context: JobContext, params: ReprocessDetectionParams, image_ids: list[str]
) -> int:
    if not image_ids:
        return 0
    query = select(func.count()).where(
        DetectionRow.image_id.in_(image_ids), DetectionRow.model_name == params.model
    )
    if params.model_version is not None:
        query = query.where(DetectionRow.model_version == params.model_version)
    with Session(context.engine) as session:
        return session.scalar(query) or 0


JOB = JobType(
    name="reprocess_detection",
    description=(
        "Run a time range of images (one camera's or all) through another detector model or "
        "version; its detections are kept beside the originals"
    ),
    params=ReprocessDetectionParams,
    supports_abort=True,
    run=run_reprocess,
)
