"""The prompt_replay job: how would a candidate prompt configuration have judged the last
`days` of a camera's batches? By replaying the batches topic through it.

The job reads back the closed batches that started in the window (`jobs.replay`) and sends
each to the analysis stage as a `ReplayPrompt` command; the stage analyses the batch with
the prompt's current version and with the candidate, publishes the comparison
(`PromptReplayed` on `vigil.ai-audit`, every call audited) and no security event. The job
then reports each batch's two assessments and, in total, the mean absolute score change,
how many batches changed risk level, and the share that kept it (the agreement rate).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.context import JobContext
from jobs.job_type import JobType
from jobs.replay import TimeRange, closed_batches, fan_out
from projections.tables import PromptReplayRow
from schemas.analysis import PromptConfig, ReplayPrompt
from schemas.topics import ANALYSIS_COMMANDS

# The result lists at most this many batches; the totals cover every one.
LISTED = 1000


class PromptReplayParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(ge=1, le=90)
    camera_id: str | None = Field(default=None, min_length=1, max_length=128)
    model: str = Field(default="nemotron", min_length=1, max_length=64)
    candidate: PromptConfig


def run_prompt_replay(context: JobContext, params: PromptReplayParams) -> dict[str, Any]:
    window = TimeRange(
        camera_id=params.camera_id,
        start=context.requested_at - timedelta(days=params.days),
        end=context.requested_at,
    )
    batches = closed_batches(context, window)
    context.log("INFO", f"Replaying {len(batches)} batches of {window.describe()}")
    commands = [
        (
            batch.batch_id,
            (
                ANALYSIS_COMMANDS,
                batch.camera_id,
                ReplayPrompt(
                    job_id=context.job_id,
                    batch_id=batch.batch_id,
                    camera_id=batch.camera_id,
                    batch=batch,
                    model=params.model,
                    candidate=params.candidate,
                    trace_id=batch.trace_id,
                ),
            ),
        )
        for batch in batches
    ]
    failed = fan_out(context, commands, "batches")
    return {"batches": len(batches), "failed": failed, **compare(context)}


def compare(context: JobContext) -> dict[str, Any]:
    with Session(context.engine) as session:
        rows = session.scalars(
            select(PromptReplayRow)
            .where(PromptReplayRow.job_id == context.job_id)
            .order_by(PromptReplayRow.at, PromptReplayRow.batch_id)
        ).all()
    changes = [abs(r.candidate_score - r.current_score) for r in rows]
    kept = sum(1 for r in rows if r.candidate_level == r.current_level)
    return {
        "replayed": len(rows),
        "mean_abs_score_change": round(sum(changes) / len(rows), 2) if rows else None,
        "level_changes": len(rows) - kept,
        "agreement_rate": round(kept / len(rows), 4) if rows else None,
        "events": [
            {
                "batch_id": r.batch_id,
                "camera_id": r.camera_id,
                "current_version": r.current_version,
                "current": {"risk_score": r.current_score, "risk_level": r.current_level},
                "candidate": {"risk_score": r.candidate_score, "risk_level": r.candidate_level},
            }
            for r in rows[:LISTED]
        ],
    }


JOB = JobType(
    name="prompt_replay",
    description=(
        "Replay the closed batches of the last N days through a candidate prompt "
        "configuration and compare it with the current version (no event is written)"
    ),
    params=PromptReplayParams,
    supports_abort=True,
    run=run_prompt_replay,
)
