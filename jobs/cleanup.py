"""The cleanup job: forget the data older than N days, for one camera or all of them.

The deletion itself is an event (`RetentionApplied` on `vigil.jobs`): the projector deletes
the rows it covers and keeps skipping the facts it covers, so the rows stay deleted when the
read models are rebuilt from the topics (`projections/retention.py` says which rows). The
job decides the cut-off from the time it was requested (every attempt decides the same),
removes the image files first when asked (the rows still say which files), publishes the
event and waits for the projector to report what it deleted.

A runner that dies midway leaves the work safe to repeat: files already removed count as
missing, and a second `RetentionApplied` for the same job changes nothing.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from jobs.context import JobContext
from jobs.job_type import JobType
from projections.retention import image_time
from projections.tables import Image, RetentionCutoffRow
from schemas.jobs import RetentionApplied

# How long the job waits for the projector to apply its cut-off before the attempt fails
# (and is retried: the projector may be catching up).
PROJECTION_WAIT_S = 120.0
PAGE = 500


class ProjectorBehind(TimeoutError):
    """The projector did not apply the cut-off in time."""


class CleanupParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: int = Field(ge=1)
    camera_id: str | None = Field(default=None, min_length=1, max_length=128)
    delete_images: bool = False


def _old_images(cutoff: datetime, camera_id: str | None):
    query = select(Image.id, Image.file_path).where(
        image_time() < cutoff, Image.file_path.is_not(None)
    )
    return query if camera_id is None else query.where(Image.camera_id == camera_id)


def delete_image_files(
    context: JobContext, cutoff: datetime, camera_id: str | None
) -> dict[str, int]:
    """Remove the files of the images the cut-off covers, in pages; never a file outside the
    camera root."""
    root = context.camera_root.resolve()
    counts = {"deleted": 0, "already_missing": 0, "outside_camera_root": 0}
    with Session(context.engine) as session:
        total = session.scalar(
            select(func.count()).select_from(_old_images(cutoff, camera_id).subquery())
        )
    done, after = 0, 0
    while True:
        with Session(context.engine) as session:
            page = session.execute(
                _old_images(cutoff, camera_id)
                .where(Image.id > after)
                .order_by(Image.id)
                .limit(PAGE)
            ).all()
        if not page:
            return counts
        for _, file_path in page:
            counts[_remove(Path(file_path), root)] += 1
        done += len(page)
        after = page[-1].id
        context.progress(done, total, f"Removed the files of {done} of {total} images")


def _remove(path: Path, root: Path) -> str:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        return "outside_camera_root"
    try:
        resolved.unlink()
    except FileNotFoundError:
        return "already_missing"
    return "deleted"


def _applied(engine: Engine, job_id: str) -> RetentionCutoffRow | None:
    with Session(engine) as session:
        return session.get(RetentionCutoffRow, job_id)


def wait_until_applied(context: JobContext) -> RetentionCutoffRow:
    deadline = time.monotonic() + PROJECTION_WAIT_S
    while (row := _applied(context.engine, context.job_id)) is None:
        if time.monotonic() > deadline:
            raise ProjectorBehind(
                f"the projector did not apply the cut-off within {PROJECTION_WAIT_S:.0f} s"
            )
        context.check()
        time.sleep(0.2)
    return row


def run_cleanup(context: JobContext, params: CleanupParams) -> dict[str, Any]:
    cutoff = context.requested_at - timedelta(days=params.older_than_days)
    scope = f"camera {params.camera_id}" if params.camera_id else "every camera"
    context.log("INFO", f"Deleting data from before {cutoff.isoformat()} for {scope}")
    files: dict[str, int] | None = None
    applied = _applied(context.engine, context.job_id)
    if applied is not None:
        context.log("INFO", "An earlier attempt's cut-off was applied already")
    else:
        if params.delete_images:
            files = delete_image_files(context, cutoff, params.camera_id)
            context.log("INFO", f"Image files: {_spelled(files)}")
        context.emit(
            RetentionApplied(
                job_id=context.job_id,
                attempt=context.attempt,
                cutoff=cutoff,
                camera_id=params.camera_id,
            )
        )
        applied = wait_until_applied(context)
    rows = sum(applied.deleted.values())
    context.progress(1, 1, f"Deleted {rows} rows")
    context.log("INFO", f"Deleted {rows} rows: {_spelled(applied.deleted)}")
    return {
        "cutoff": applied.cutoff.isoformat(),
        "camera_id": params.camera_id,
        "rows_deleted": rows,
        "deleted": applied.deleted,
        "image_files": files,
    }


def _spelled(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in counts.items())


JOB = JobType(
    name="cleanup",
    description=(
        "Delete data older than N days (read models, and image files with delete_images); "
        "it stays deleted when the read models are rebuilt"
    ),
    params=CleanupParams,
    supports_abort=False,
    run=run_cleanup,
)
