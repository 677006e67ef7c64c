"""The reprocess_detection job: run a camera's images of a time range through another
detector (model, or version), by replaying the images topic.

The job reads the range back from `vigil.images` (`schemas.reading.read_range`) and keeps the
images that arrived in it (the camera's, when one is given), each once. It sends them to
the workers as `ReprocessDetection` commands, chunk by chunk (`jobs.replay.fan_out`); a
worker runs each through the named detector once per job and image and publishes
`DetectionsReprocessed`, which the projector keeps beside the image's own detections (or
dead-letters the command, and the projector counts the image failed).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs.context import JobContext, Outgoing
from jobs.job_type import JobType
from jobs.replay import TimeRange, fan_out, in_range
from projections.tables import DetectionRow
from schemas.detections import ReprocessDetection
from schemas.images import ImageReceived
from schemas.topics import DETECTION_COMMANDS, IMAGES


class ReprocessDetectionParams(TimeRange):
    model: str = Field(min_length=1, max_length=64, description="Triton model name")
    model_version: str | None = Field(default=None, min_length=1, max_length=32)


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


def run_reprocess(context: JobContext, params: ReprocessDetectionParams) -> dict[str, Any]:
    model = params.model + (f" version {params.model_version}" if params.model_version else "")
    images = in_range(
        context,
        IMAGES,
        params,
        lambda m: (
            (m.image_id, m.camera_id, m.occurred_at) if isinstance(m, ImageReceived) else None
        ),
    )
    total = len(images)
    context.log("INFO", f"Reprocessing {total} images of {params.describe()} with {model}")
    commands = [(image.image_id, _command(context, image, params)) for image in images]
    failed = fan_out(context, commands, "images")
    return {
        "model_name": params.model,
        "model_version": params.model_version,
        "images": total,
        "reprocessed": total - failed,
        "failed": failed,
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
