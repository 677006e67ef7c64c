"""Retention: what a cleanup job removed stays removed, however the read models are rebuilt.

A `RetentionApplied` event (a cut-off, for one camera or all) is applied by deleting every
read-model row that only facts from before the cut-off produced: each row is judged by the
time of the last fact that wrote it (a detection by when it was detected, a batch by when it
closed, an event by its latest analysis, an image by its detection or else its arrival),
and a dead letter only once it was resolved (requeued or cleared) before the cleanup.

The cut-off is kept (`retention_cutoffs`) and the projector consults the cut-offs for every
fact it applies: a fact that happened before a cut-off covering its camera is skipped. On a
replay, then, the rows come back neither before the cleanup's event is replayed (the fact is
skipped once the cut-off is known) nor after (the event deletes them), in whatever order
the topics are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from projections.tables import (
    AuditRow,
    BatchMember,
    BatchRow,
    DeadLetterAction,
    DeadLetterRow,
    DetectionRow,
    EnrichmentRow,
    EvaluationRow,
    EventAnalysisRow,
    Image,
    PromptTestRow,
    RetentionCutoffRow,
    SecurityEventRow,
)
from schemas.analysis import ModelCallAudited, SecurityEventRecorded
from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched
from schemas.dead_letters import DeadLettered
from schemas.detections import DetectionsProduced, DetectionsReprocessed
from schemas.enrichments import DetectionsEnriched, EnrichmentReprocessed
from schemas.envelope import Message
from schemas.evaluation import EventEvaluated, PromptTested
from schemas.images import ImageReceived
from schemas.jobs import RetentionApplied
from schemas.system import DeadLetterRequeued, DeadLettersCleared

# The time of the fact each prunable event records, as the rows it writes keep it.
FACT_TIME: dict[type[Message], Callable[[Any], datetime]] = {
    ImageReceived: lambda e: e.occurred_at,
    DetectionsProduced: lambda e: e.occurred_at,
    DetectionsReprocessed: lambda e: e.occurred_at,
    DetectionsEnriched: lambda e: e.occurred_at,
    EnrichmentReprocessed: lambda e: e.occurred_at,
    BatchOpened: lambda e: e.started_at,
    DetectionsBatched: lambda e: e.last_activity_at,
    BatchClosed: lambda e: e.closed_at,
    SecurityEventRecorded: lambda e: e.occurred_at,
    ModelCallAudited: lambda e: e.occurred_at,
    EventEvaluated: lambda e: e.occurred_at,
    PromptTested: lambda e: e.occurred_at,
}


def image_time() -> ColumnElement[datetime]:
    """An image's time as retention judges it: its detection, else its arrival."""
    return func.coalesce(Image.detected_at, Image.received_at)


@dataclass(frozen=True)
class Cutoff:
    camera_id: str | None
    cutoff: datetime
    # When the cleanup happened: only dead letters resolved by then are deleted.
    applied_at: datetime

    def covers(self, camera_id: str | None, at: datetime) -> bool:
        in_scope = self.camera_id is None or self.camera_id == camera_id
        return in_scope and at < self.cutoff

    def scope(self, column) -> list[ColumnElement[bool]]:
        """The condition that a row of `column`'s table is of the cut-off's camera."""
        return [] if self.camera_id is None else [column == self.camera_id]


@dataclass(frozen=True)
class Retention:
    """The cut-offs in force, as the projector reads them at the start of a batch."""

    cutoffs: tuple[Cutoff, ...] = ()

    @classmethod
    def load(cls, session: Session) -> Retention:
        rows = session.scalars(select(RetentionCutoffRow)).all()
        return cls(tuple(Cutoff(r.camera_id, r.cutoff, r.applied_at) for r in rows))

    def forgets(self, event: Message) -> bool:
        """Whether the read models must not keep what `event` says (a cleanup removed it)."""
        fact_time = FACT_TIME.get(type(event))
        if fact_time is None or not self.cutoffs:
            return False
        camera_id = getattr(event, "camera_id", None)
        at = fact_time(event)
        return any(c.covers(camera_id, at) for c in self.cutoffs)

    def after(self, event: Message, session: Session) -> None:
        """A dead letter resolved before a cleanup is deleted, in whichever order a replay
        brings the letter and its resolution."""
        if not self.cutoffs:
            return
        if isinstance(event, DeadLettered):
            ids: tuple[str, ...] = (str(event.event_id),)
        elif isinstance(event, DeadLetterRequeued):
            ids = (event.dead_letter_id,)
        elif isinstance(event, DeadLettersCleared):
            ids = event.dead_letter_ids
        else:
            return
        for cutoff in self.cutoffs:
            _delete_resolved_letters(session, cutoff, ids)


def retention_applied(event: RetentionApplied, session: Session) -> None:
    inserted = session.execute(
        insert(RetentionCutoffRow)
        .values(
            job_id=event.job_id,
            camera_id=event.camera_id,
            cutoff=event.cutoff,
            applied_at=event.occurred_at,
            deleted={},
        )
        .on_conflict_do_nothing()
        .returning(RetentionCutoffRow.job_id)
    ).scalar()
    if inserted is None:
        return  # a second attempt's event: the first one's cut-off stands
    deleted = prune(session, Cutoff(event.camera_id, event.cutoff, event.occurred_at))
    session.execute(
        update(RetentionCutoffRow)
        .where(RetentionCutoffRow.job_id == event.job_id)
        .values(deleted=deleted)
    )


def prune(session: Session, cutoff: Cutoff) -> dict[str, int]:
    """Delete what `cutoff` covers; how many rows of each table went."""
    c = cutoff.cutoff
    events = [SecurityEventRow.updated_at < c, *cutoff.scope(SecurityEventRow.camera_id)]
    analyses_of_camera = (
        []
        if cutoff.camera_id is None
        else [
            EventAnalysisRow.batch_id.in_(
                select(SecurityEventRow.batch_id).where(*cutoff.scope(SecurityEventRow.camera_id))
            )
        ]
    )
    batch_time = func.coalesce(BatchRow.completed_at, BatchRow.last_activity_at)
    old_batches: Select = select(BatchRow.batch_id).where(
        batch_time < c, *cutoff.scope(BatchRow.camera_id)
    )
    # Analyses and batch members go first: their camera is known through their parents.
    statements = {
        "event_analyses": delete(EventAnalysisRow).where(
            EventAnalysisRow.created_at < c, *analyses_of_camera
        ),
        "events": delete(SecurityEventRow).where(*events),
        "batch_detections": delete(BatchMember).where(BatchMember.batch_id.in_(old_batches)),
        "batches": delete(BatchRow).where(batch_time < c, *cutoff.scope(BatchRow.camera_id)),
        "enrichments": delete(EnrichmentRow).where(
            EnrichmentRow.created_at < c, *cutoff.scope(EnrichmentRow.camera_id)
        ),
        "detections": delete(DetectionRow).where(
            DetectionRow.detected_at < c, *cutoff.scope(DetectionRow.camera_id)
        ),
        "images": delete(Image).where(image_time() < c, *cutoff.scope(Image.camera_id)),
        "ai_audit": delete(AuditRow).where(
            AuditRow.created_at < c, *cutoff.scope(AuditRow.camera_id)
        ),
        "event_evaluations": delete(EvaluationRow).where(
            EvaluationRow.created_at < c, *cutoff.scope(EvaluationRow.camera_id)
        ),
        "prompt_tests": delete(PromptTestRow).where(
            PromptTestRow.created_at < c, *cutoff.scope(PromptTestRow.camera_id)
        ),
    }
    deleted = {table: session.execute(s).rowcount for table, s in statements.items()}
    deleted["dead_letters"] = _delete_resolved_letters(session, cutoff)
    return deleted


def _delete_resolved_letters(
    session: Session, cutoff: Cutoff, ids: tuple[str, ...] | None = None
) -> int:
    """Dead letters older than the cut-off that were requeued or cleared before the cleanup,
    and what became of them."""
    resolved = select(DeadLetterAction.dead_letter_id).where(
        DeadLetterAction.at <= cutoff.applied_at
    )
    if ids is not None:
        resolved = resolved.where(DeadLetterAction.dead_letter_id.in_(ids))
    gone = session.scalars(
        delete(DeadLetterRow)
        .where(
            DeadLetterRow.last_failed_at < cutoff.cutoff,
            DeadLetterRow.dead_letter_id.in_(resolved),
            *cutoff.scope(DeadLetterRow.camera_id),
        )
        .returning(DeadLetterRow.dead_letter_id)
    ).all()
    if gone:
        session.execute(delete(DeadLetterAction).where(DeadLetterAction.dead_letter_id.in_(gone)))
    return len(gone)
