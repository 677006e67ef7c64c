"""The evaluation use cases: evaluate one event (a command to the evaluator, then the
read-your-writes wait), and audit many (a `batch_audit` job over the events resolved now).

An evaluation takes the evaluator several LLM calls (tens of seconds on a CPU), so
`evaluate` usually answers 202 with the status `pending`; the event's audit shows the
result once the projector has it. Its id is derived from the batch, the analysis version
and how many evaluations that analysis had: the same request sent twice (a retry, a double
click) makes one evaluation.
"""

from __future__ import annotations

from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit_models import BatchAuditIn, BatchAuditOut, EventAuditOut
from api.commands import CommandSender, wait_for_read_model
from api.errors import Conflict, NotFound, NotYetVisible
from api.job_commands import request_job
from api.queries.evaluations import (
    evaluation_by_id,
    evaluation_count,
    event_audit,
    is_settled,
    newest_evaluation,
)
from api.queries.events import EventFilter, filtered
from jobs import batch_audit
from projections.tables import SecurityEventRow
from schemas.evaluation import evaluation_id
from schemas.topics import EVALUATION_COMMANDS


def evaluate(
    session: Session,
    sender: CommandSender,
    bootstrap_servers: str,
    event: SecurityEventRow,
    *,
    force: bool,
    wait_s: float,
) -> EventAuditOut:
    """The event's audit once its newest analysis is evaluated; an evaluated one as it is,
    unless `force`."""
    newest = newest_evaluation(session, event.batch_id, event.analysis_version)
    if is_settled(newest) and not force:
        return event_audit(event, newest)
    batch = batch_audit.analysis_inputs(session, bootstrap_servers, [event]).get(event.batch_id)
    if batch is None:
        raise Conflict(
            f"event {event.id}: its batch {event.batch_id} is no longer on the batches topic, "
            "so its analysis cannot be run again"
        )
    made = evaluation_count(session, event.batch_id, event.analysis_version)
    command = batch_audit.evaluate_command(
        event, batch, evaluation_id(event.batch_id, event.analysis_version, made)
    )
    sender.send(EVALUATION_COMMANDS, event.camera_id, command)
    row = wait_for_read_model(
        session,
        partial(evaluation_by_id, session, command.evaluation_id),
        lambda found: found is not None,
        wait_s=wait_s,
    )
    if row is None:
        pending = event_audit(event, newest).model_copy(
            update={
                "status": "pending",
                "reason": f"evaluation {command.evaluation_id} is running; read the event's "
                "audit again for its result",
            }
        )
        raise NotYetVisible(pending)
    return event_audit(event, row)


def audit_many(
    session: Session, sender: CommandSender, body: BatchAuditIn, *, max_attempts: int
) -> BatchAuditOut:
    """A batch_audit job over the union of `event_ids` and the events the filters match (at
    most `limit`), less those evaluated already unless `force`."""
    chosen: dict[int, SecurityEventRow] = {}
    if body.event_ids:
        rows = session.scalars(
            select(SecurityEventRow).where(SecurityEventRow.id.in_(body.event_ids))
        ).all()
        missing = sorted(set(body.event_ids) - {row.id for row in rows})
        if missing:
            raise NotFound(f"events not found: {missing}")
        chosen.update((row.id, row) for row in rows)
    filters = EventFilter(
        camera_id=body.camera_id,
        min_risk=body.min_risk_score,
        start_date=body.start_date,
        end_date=body.end_date,
    )
    if filters != EventFilter():
        matched = session.scalars(
            filtered(select(SecurityEventRow), filters)
            .order_by(SecurityEventRow.started_at.desc(), SecurityEventRow.id.desc())
            .limit(body.limit)
        )
        chosen.update((row.id, row) for row in matched)
    events = sorted(chosen.values(), key=lambda row: row.id)[: body.limit]
    if not body.force:
        done = batch_audit.settled(session, events)
        events = [row for row in events if row.id not in done]
    if not events:
        return BatchAuditOut(
            queued_count=0,
            message="No event to evaluate: none matched, or all are evaluated",
            job_id=None,
        )
    params = batch_audit.BatchAuditParams(event_ids=[row.id for row in events], force=body.force)
    job = request_job(
        sender, batch_audit.JOB, params.model_dump(mode="json"), max_attempts=max_attempts
    )
    return BatchAuditOut(
        queued_count=len(events), message="Batch audit processing queued", job_id=job.job_id
    )
