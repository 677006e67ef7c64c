"""The reanalyse job: run the closed batches of a time range through the risk analysis again,
with the current prompt version, by replaying the batches topic.

The job reads the range back from `vigil.batches` (`schemas.reading.read_range`) and keeps the
batches closed that started in it (the camera's, when one is given), each once. It sends
them to the workers as `ReanalyseBatch` commands, chunk by chunk (`jobs.replay.fan_out`);
the analysis stage, which owns every batch's analysis versions, analyses each once per job
and records the result as the batch event's next `analysis_version` (or dead-letters the
command, and the projector counts the batch failed). Earlier versions stay as they were.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs.context import JobContext
from jobs.job_type import JobType
from jobs.replay import TimeRange, closed_batches, fan_out
from projections.tables import EventAnalysisRow
from schemas.analysis import ReanalyseBatch
from schemas.topics import ANALYSIS_COMMANDS


class ReanalyseParams(TimeRange):
    """The batches that started in [start, end] (of the camera)."""


def run_reanalyse(context: JobContext, params: ReanalyseParams) -> dict[str, Any]:
    batches = closed_batches(context, params)
    total = len(batches)
    context.log("INFO", f"Reanalysing {total} batches of {params.describe()}")
    commands = [
        (
            batch.batch_id,
            (
                ANALYSIS_COMMANDS,
                batch.camera_id,
                ReanalyseBatch(
                    job_id=context.job_id,
                    batch_id=batch.batch_id,
                    camera_id=batch.camera_id,
                    batch=batch,
                    trace_id=batch.trace_id,
                ),
            ),
        )
        for batch in batches
    ]
    failed = fan_out(context, commands, "batches")
    return {
        "batches": total,
        "reanalysed": total - failed,
        "failed": failed,
        "versions_written": _versions_written(context),
    }


def _versions_written(context: JobContext) -> int:
    with Session(context.engine) as session:
        query = select(func.count()).where(EventAnalysisRow.job_id == context.job_id)
        return session.scalar(query) or 0


JOB = JobType(
    name="reanalyse",
    description=(
        "Run the closed batches of a time range (one camera's or all) through the risk "
        "analysis again with the current prompt; each result is the event's next version"
    ),
    params=ReanalyseParams,
    supports_abort=True,
    run=run_reanalyse,
)
