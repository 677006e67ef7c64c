"""The batch_audit job: evaluate many security events, one `EvaluateEvent` each.

The API resolves the events (the ids asked for and those the filters match) when the job
is requested, so every attempt works on the same list. The job reads each event's batch
back from `vigil.batches` (the analysis input the evaluation re-runs: `analysis_inputs`)
and sends the commands to the evaluator two at a time (`jobs.replay.fan_out`): an abort
stops between them, and an attempt after a crash sends only the events not evaluated yet.
An evaluation's id is derived from the job, the batch and the analysis version, so a
command delivered twice (a worker killed mid-way) is evaluated once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobs.context import JobContext
from jobs.job_type import JobType
from jobs.replay import batches_by_id, fan_out
from projections.tables import BatchRow, EvaluationRow, EventAnalysisRow, SecurityEventRow
from schemas.batches import BatchClosed
from schemas.evaluation import EvaluatedAnalysis, EvaluateEvent, evaluation_id
from schemas.topics import EVALUATION_COMMANDS

# Evaluations in flight at once: each is several LLM calls, so an abort waits for at most
# this many.
IN_FLIGHT = 2
# The statuses of an evaluation that measured something: it stands unless `force`.
SETTLED = ("evaluated", "partial")


class BatchAuditParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_ids: list[int] = Field(min_length=1, max_length=1000)
    # Evaluate again an event whose newest analysis has an evaluation already.
    force: bool = False


def evaluate_command(
    event: SecurityEventRow, batch: BatchClosed, evaluation: str, job_id: str | None = None
) -> EvaluateEvent:
    """The command that evaluates the event's newest analysis of `batch`."""
    return EvaluateEvent(
        evaluation_id=evaluation,
        job_id=job_id,
        batch_id=event.batch_id,
        camera_id=event.camera_id,
        analysis=EvaluatedAnalysis(
            analysis_version=event.analysis_version,
            risk_score=event.risk_score,
            risk_level=event.risk_level,
            summary=event.summary,
            reasoning=event.reasoning,
            prompt_version=event.prompt_version,
        ),
        batch=batch,
        trace_id=batch.trace_id,
    )


def settled(session: Session, events: list[SecurityEventRow]) -> set[int]:
    """The events whose newest analysis has an evaluation that measured something."""
    keys = {(e.batch_id, e.analysis_version): e.id for e in events}
    rows = session.execute(
        select(EvaluationRow.batch_id, EvaluationRow.analysis_version).where(
            EvaluationRow.batch_id.in_([batch for batch, _ in keys]),
            EvaluationRow.status.in_(SETTLED),
        )
    )
    return {keys[key] for key in map(tuple, rows) if key in keys}


def analysis_inputs(
    session: Session, bootstrap_servers: str, events: list[SecurityEventRow]
) -> dict[str, BatchClosed]:
    """The closed batch each event's analysis read, from `vigil.batches`, by batch id.

    A `BatchClosed` was put on the topic at its close, or later when it was requeued from
    the dead letters; either way shortly before the batch's first analysis (a lagging worker
    makes the gap longer). So the read covers, by message time, from the earliest close to
    the latest first analysis."""
    if not events:
        return {}
    ids = {e.batch_id for e in events}
    first_analysed = dict(
        session.execute(
            select(EventAnalysisRow.batch_id, func.min(EventAnalysisRow.created_at))
            .where(EventAnalysisRow.batch_id.in_(ids))
            .group_by(EventAnalysisRow.batch_id)
        ).all()
    )
    closed = dict(
        session.execute(
            select(BatchRow.batch_id, BatchRow.completed_at).where(BatchRow.batch_id.in_(ids))
        ).all()
    )
    moments = [*first_analysed.values(), *filter(None, closed.values())]
    if not moments:
        return {}
    return batches_by_id(
        bootstrap_servers, ids, min(moments), max(first_analysed.values(), default=max(moments))
    )


def run_batch_audit(context: JobContext, params: BatchAuditParams) -> dict[str, Any]:
    with Session(context.engine) as session:
        events = list(
            session.scalars(
                select(SecurityEventRow)
                .where(SecurityEventRow.id.in_(params.event_ids))
                .order_by(SecurityEventRow.id)
            )
        )
        done_before = set() if params.force else settled(session, events)
    gone = sorted(set(params.event_ids) - {e.id for e in events})
    if gone:
        context.log("WARNING", f"{len(gone)} events no longer exist: {gone[:20]}")
    todo = [e for e in events if e.id not in done_before]
    with Session(context.engine) as session:
        batches = analysis_inputs(session, context.bootstrap_servers, todo)
    no_input = [e.id for e in todo if e.batch_id not in batches]
    if no_input:
        context.log("WARNING", f"{len(no_input)} events' batches are gone from the topic")
    context.log("INFO", f"Evaluating {len(todo) - len(no_input)} events")
    commands = [
        (
            e.batch_id,
            (
                EVALUATION_COMMANDS,
                e.camera_id,
                evaluate_command(
                    e,
                    batches[e.batch_id],
                    evaluation_id(context.job_id, e.batch_id, e.analysis_version),
                    context.job_id,
                ),
            ),
        )
        for e in todo
        if e.batch_id in batches
    ]
    failed = fan_out(context, commands, "events", chunk=IN_FLIGHT)
    return {
        "events": len(params.event_ids),
        "evaluated_before": len(done_before),
        "not_found": gone,
        "no_input": no_input,
        "queued": len(commands),
        "failed": failed,
        "by_status": _statuses(context),
    }


def _statuses(context: JobContext) -> dict[str, int]:
    with Session(context.engine) as session:
        rows = session.execute(
            select(EvaluationRow.status, func.count())
            .where(EvaluationRow.job_id == context.job_id)
            .group_by(EvaluationRow.status)
        )
        return dict(rows.all())


JOB = JobType(
    name="batch_audit",
    description=(
        "Evaluate security events (consistency, relevance, coherence, model contributions "
        "and prompt suggestions), one evaluation per event"
    ),
    params=BatchAuditParams,
    supports_abort=True,
    run=run_batch_audit,
)
