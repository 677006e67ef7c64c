"""Pure projection handlers `(event, session) -> None`, one table from event type to handlers.

Each handler is idempotent on its natural key, so a redelivered event changes
nothing; the runner's offset tracking makes replays exact on top of that.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from projections.bulk import Unnest
from projections.jobs import JOB_HANDLERS
from projections.retention import retention_applied
from projections.tables import (
    AuditRow,
    BatchMember,
    BatchRow,
    CircuitBreakerRow,
    DeadLetterAction,
    DeadLetterRow,
    DetectionRow,
    EnrichmentRow,
    EvaluationRow,
    EventAnalysisRow,
    Image,
    JobItemRow,
    PromptReplayRow,
    PromptTestRow,
    PromptVersionRow,
    SecurityEventRow,
)
from schemas.analysis import (
    ModelCallAudited,
    PromptConfigured,
    PromptReplayed,
    SecurityEventRecorded,
)
from schemas.batches import BatchClosed, BatchOpened, DetectionsBatched
from schemas.dead_letters import DeadLettered
from schemas.detections import DetectionsProduced, DetectionsReprocessed
from schemas.enrichments import DetectionsEnriched, Enrichment, EnrichmentReprocessed
from schemas.evaluation import EventEvaluated, PromptTested
from schemas.images import ImageReceived
from schemas.jobs import RetentionApplied
from schemas.system import CircuitBreakerChanged, DeadLetterRequeued, DeadLettersCleared

Handler = Callable[[Any, Session], None]
RunHandler = Callable[[Sequence[Any], Session], None]


_RECEIVED = ("camera_id", "file_path", "sha256", "size_bytes", "file_modified_at", "received_at")
_DETECTED = ("status", "width", "height", "detection_count", "detected_at", "error")


def _first_by(events: Sequence[Any], key: str) -> dict[str, Any]:
    """The first event of each value of its `key` field, by that value, in order."""
    first: dict[str, Any] = {}
    for event in events:
        first.setdefault(getattr(event, key), event)
    return first


def _first_per_image(events: Sequence[Any]) -> list[Any]:
    """The first event of each image (a later one of the same image changes nothing: each
    handler's upsert only fills a row that has not got its facts yet)."""
    return list(_first_by(events, "image_id").values())


def _excluded(columns: Sequence[str]) -> str:
    return ", ".join(f"{column} = excluded.{column}" for column in columns)


_IMAGES_RECEIVED = Unnest(
    Image.__table__,
    ("image_id", "status", *_RECEIVED),
    f"ON CONFLICT (image_id) DO UPDATE SET {_excluded(_RECEIVED)} WHERE images.received_at IS NULL",
)


def images_received(events: Sequence[ImageReceived], session: Session) -> None:
    """A row per image with its file facts; a row a detection made first (without them) is
    filled in, its status kept."""
    _IMAGES_RECEIVED.execute(
        session,
        [
            {
                "image_id": event.image_id,
                "status": "received",
                "camera_id": event.camera_id,
                "file_path": event.file_path,
                "sha256": event.sha256,
                "size_bytes": event.size_bytes,
                "file_modified_at": event.file_modified_at,
                "received_at": event.occurred_at,
            }
            for event in _first_per_image(events)
        ],
    )


# Claims an image's detection: the images it returns had not got one.
_IMAGES_DETECTED = Unnest(
    Image.__table__,
    ("image_id", "camera_id", "file_path", *_DETECTED),
    f"ON CONFLICT (image_id) DO UPDATE SET {_excluded(_DETECTED)} "
    "WHERE images.detected_at IS NULL RETURNING image_id",
)
_DETECTION_COLUMNS = (
    "image_id", "position", "camera_id", "file_path", "label", "class_id", "confidence",
    "x1", "y1", "x2", "y2", "image_width", "image_height", "model_name", "model_version",
    "latency_ms", "detected_at", "created_at", "reprocessed",
)  # fmt: skip
# A reprocess job of the same model and version may have written an image's own rows first.
_DETECTIONS_OWN = Unnest(
    DetectionRow.__table__,
    _DETECTION_COLUMNS,
    "ON CONFLICT ON CONSTRAINT uq_detections_image_id_model_name_model_version_position "
    "DO UPDATE SET reprocessed = false",
)
# Another model's rows are written once.
_DETECTIONS_REPROCESSED = Unnest(
    DetectionRow.__table__, _DETECTION_COLUMNS, "ON CONFLICT DO NOTHING"
)


def detections_produced_many(events: Sequence[DetectionsProduced], session: Session) -> None:
    """Each image detected once: its row claims the detection (a duplicate
    DetectionsProduced finds it claimed and adds nothing), and its detection rows follow."""
    first = _first_per_image(events)
    claimed = set(
        _IMAGES_DETECTED.execute(
            session,
            [
                {
                    "image_id": event.image_id,
                    "camera_id": event.camera_id,
                    "file_path": event.file_path,
                    "status": "detected",
                    "width": event.image_width,
                    "height": event.image_height,
                    "detection_count": len(event.detections),
                    "detected_at": event.occurred_at,
                    "error": None,
                }
                for event in first
            ],
        ).scalars()
    )
    rows = [
        row
        for event in first
        if event.image_id in claimed
        for row in _detection_rows(event, reprocessed=False)
    ]
    if rows:
        _DETECTIONS_OWN.execute(session, rows)


def _detection_rows(
    event: DetectionsProduced | DetectionsReprocessed, *, reprocessed: bool
) -> list[dict]:
    return [
        {
            "image_id": event.image_id,
            "position": position,
            "camera_id": event.camera_id,
            "file_path": event.file_path,
            "label": detection.label,
            "class_id": detection.class_id,
            "confidence": detection.confidence,
            "x1": detection.bbox.x1,
            "y1": detection.bbox.y1,
            "x2": detection.bbox.x2,
            "y2": detection.bbox.y2,
            "image_width": event.image_width,
            "image_height": event.image_height,
            "model_name": event.model_name,
            "model_version": event.model_version,
            "latency_ms": event.latency_ms,
            "detected_at": event.occurred_at,
            # From the event, not the clock: a replay rebuilds the row as it was.
            "created_at": event.occurred_at,
            "reprocessed": reprocessed,
        }
        for position, detection in enumerate(event.detections)
    ]


def detections_reprocessed(event: DetectionsReprocessed, session: Session) -> None:
    """Another model's detections beside the image's own (a model and version's rows are
    written once), and the job's item done."""
    if event.detections:
        _DETECTIONS_REPROCESSED.execute(session, _detection_rows(event, reprocessed=True))
    _item_done(event.job_id, event.image_id, event.occurred_at, session)


# The commands a job fans out to the workers, and the field naming each one's item: a
# command that is dead-lettered fails its item.
JOB_COMMAND_ITEMS = {
    "ReprocessDetection": "image_id",
    "ReanalyseBatch": "batch_id",
    "ReplayPrompt": "batch_id",
    "EvaluateEvent": "batch_id",
}


def _item_done(job_id: str, item_id: str, at, session: Session) -> None:
    """A job's item is done; one that failed before (and was requeued) is done now."""
    session.execute(
        insert(JobItemRow)
        .values(job_id=job_id, item_id=item_id, status="done", at=at)
        .on_conflict_do_update(
            index_elements=[JobItemRow.job_id, JobItemRow.item_id],
            set_={"status": "done", "error": None, "at": at},
            where=JobItemRow.status == "failed",
        )
    )


def dead_lettered(event: DeadLettered, session: Session) -> None:
    session.execute(
        insert(DeadLetterRow)
        .values(
            dead_letter_id=str(event.event_id),
            stage=event.stage,
            camera_id=event.camera_id,
            source_topic=event.source_topic,
            source_partition=event.source_partition,
            source_offset=event.source_offset,
            original=event.original,
            original_encoding=event.original_encoding,
            error_type=event.error_type,
            error=event.error,
            context=event.context,
            attempt_count=event.attempt_count,
            first_failed_at=event.first_failed_at,
            last_failed_at=event.last_failed_at,
        )
        .on_conflict_do_nothing(index_elements=[DeadLetterRow.dead_letter_id])
    )
    original = event.original if isinstance(event.original, dict) else {}
    reason = f"{event.error_type}: {event.error}"
    image_id, batch_id = original.get("image_id"), original.get("batch_id")
    item_field = JOB_COMMAND_ITEMS.get(original.get("event_type"))
    job_id = original.get("job_id") if item_field else None
    if event.stage == "detection" and isinstance(image_id, str) and job_id is None:
        session.execute(
            update(Image)
            .where(Image.image_id == image_id, Image.detected_at.is_(None))
            .values(status="failed", error=reason)
        )
    if isinstance(job_id, str):
        # A job's item the worker gave up on: the job counts it as failed (the image's own
        # detection, the batch's own analysis, is not touched).
        session.execute(
            insert(JobItemRow)
            .values(
                job_id=job_id,
                item_id=str(original.get(item_field)),
                status="failed",
                error=reason,
                at=event.occurred_at,
            )
            .on_conflict_do_nothing()
        )
    # A batch's own analysis failed (an evaluation's failure leaves the batch as it is).
    evaluation = original.get("event_type") == "EvaluateEvent"
    if (
        event.stage == "analysis"
        and isinstance(batch_id, str)
        and job_id is None
        and not evaluation
    ):
        session.execute(
            update(BatchRow)
            .where(BatchRow.batch_id == batch_id, BatchRow.event_id.is_(None))
            .values(status="failed", error=reason)
        )


# A letter keeps the first action applied to it; with either one it has left its queue.
def dead_letter_requeued(event: DeadLetterRequeued, session: Session) -> None:
    session.execute(
        insert(DeadLetterAction)
        .values(
            dead_letter_id=event.dead_letter_id,
            action="requeued",
            stage=event.stage,
            at=event.occurred_at,
            requeued_partition=event.requeued_partition,
            requeued_offset=event.requeued_offset,
        )
        .on_conflict_do_nothing(index_elements=[DeadLetterAction.dead_letter_id])
    )


def dead_letters_cleared(event: DeadLettersCleared, session: Session) -> None:
    if not event.dead_letter_ids:
        return
    session.execute(
        insert(DeadLetterAction).on_conflict_do_nothing(
            index_elements=[DeadLetterAction.dead_letter_id]
        ),
        [
            {
                "dead_letter_id": dead_letter_id,
                "action": "cleared",
                "stage": event.stage,
                "at": event.occurred_at,
            }
            for dead_letter_id in event.dead_letter_ids
        ],
    )


def _enrichment_values(
    enrichment: Enrichment, event: DetectionsEnriched | EnrichmentReprocessed
) -> dict:
    """An enrichment row of `event` (which names the image and the model that made it)."""
    return {
        "source_event_id": str(event.event_id),
        "image_id": event.image_id,
        "position": enrichment.position,
        "camera_id": event.camera_id,
        "detection_type": enrichment.detection_type,
        "model_name": event.model_name,
        "model_version": event.model_version,
        "description": enrichment.description,
        "attributes": enrichment.attributes,
        "confidence": enrichment.confidence,
        "latency_ms": event.latency_ms,
        "reprocessed": isinstance(event, EnrichmentReprocessed),
        "created_at": event.occurred_at,
    }


_ENRICHMENTS = Unnest(
    EnrichmentRow.__table__,
    ("source_event_id", "image_id", "position", "camera_id", "detection_type", "model_name",
     "model_version", "description", "attributes", "confidence", "latency_ms", "reprocessed",
     "created_at"),
    "ON CONFLICT DO NOTHING",
)  # fmt: skip


def detections_enriched_many(events: Sequence[DetectionsEnriched], session: Session) -> None:
    # The schema holds model_name, model_version and latency_ms set whenever there are
    # enrichments: a message without them never reaches a handler.
    rows = [
        _enrichment_values(enrichment, event)
        for event in events
        for enrichment in event.enrichments
    ]
    if rows:
        _ENRICHMENTS.execute(session, rows)


def enrichment_reprocessed(event: EnrichmentReprocessed, session: Session) -> None:
    _ENRICHMENTS.execute(session, [_enrichment_values(event.enrichment, event)])


_BATCHES_OPENED = Unnest(
    BatchRow.__table__,
    ("batch_id", "camera_id", "status", "detection_count", "started_at", "last_activity_at"),
    "ON CONFLICT DO NOTHING",
)


def batches_opened(events: Sequence[BatchOpened], session: Session) -> None:
    _BATCHES_OPENED.execute(
        session,
        [
            {
                "batch_id": event.batch_id,
                "camera_id": event.camera_id,
                "status": "aggregating",
                "detection_count": 0,
                "started_at": event.started_at,
                "last_activity_at": event.started_at,
            }
            for event in events
        ],
    )


_PROGRESS = text(
    "UPDATE batches SET detection_count = u.count, last_activity_at = u.at "
    "FROM unnest(CAST(:batch_ids AS TEXT[]), CAST(:counts AS INTEGER[]), "
    "CAST(:ats AS TIMESTAMP WITH TIME ZONE[])) AS u(batch_id, count, at) "
    "WHERE batches.batch_id = u.batch_id AND batches.status = 'aggregating' "
    "AND batches.detection_count < u.count"
)


def detections_batched_many(events: Sequence[DetectionsBatched], session: Session) -> None:
    """An aggregating batch's count and last activity move forward, never back: of a run,
    each batch's largest count (its first event with it) is what applying them in turn
    would leave."""
    latest: dict[str, DetectionsBatched] = {}
    for event in events:
        seen = latest.get(event.batch_id)
        if seen is None or event.detection_count > seen.detection_count:
            latest[event.batch_id] = event
    session.execute(
        _PROGRESS,
        {
            "batch_ids": list(latest),
            "counts": [e.detection_count for e in latest.values()],
            "ats": [e.last_activity_at for e in latest.values()],
        },
    )


_BATCH_MEMBERS = Unnest(
    BatchMember.__table__, ("batch_id", "image_id", "position"), "ON CONFLICT DO NOTHING"
)


_CLOSED = ("detection_count", "last_activity_at", "completed_at", "trigger")
_BATCHES_CLOSED = Unnest(
    BatchRow.__table__,
    ("batch_id", "camera_id", "status", "started_at", *_CLOSED),
    f"ON CONFLICT (batch_id) DO UPDATE SET status = 'completed', {_excluded(_CLOSED)} "
    "WHERE batches.status = 'aggregating'",
)
# A batch's event may have been projected first (another topic): it is linked when it closes.
_LINK_EVENTS = text(
    "UPDATE batches SET event_id = events.id FROM events "
    "WHERE batches.batch_id = ANY(CAST(:batch_ids AS TEXT[])) "
    "AND events.batch_id = batches.batch_id AND batches.event_id IS NULL"
)


def batches_closed(events: Sequence[BatchClosed], session: Session) -> None:
    """Each batch completed by its first BatchClosed (a later one finds it completed), with
    its members."""
    first = _first_by(events, "batch_id")
    _BATCHES_CLOSED.execute(
        session,
        [
            {
                "batch_id": event.batch_id,
                "camera_id": event.camera_id,
                "status": "completed",
                "started_at": event.started_at,
                "detection_count": len(event.detections),
                "last_activity_at": event.last_activity_at,
                "completed_at": event.closed_at,
                "trigger": event.trigger,
            }
            for event in first.values()
        ],
    )
    session.execute(_LINK_EVENTS, {"batch_ids": list(first)})
    _BATCH_MEMBERS.execute(
        session,
        [
            {"batch_id": event.batch_id, "image_id": d.image_id, "position": d.position}
            for event in events
            for d in event.detections
        ],
    )


_ANALYSIS = ("analysis_version", "risk_score", "risk_level", "summary", "reasoning",
             "prompt_version", "audit_id")  # fmt: skip
_ANALYSES = Unnest(
    EventAnalysisRow.__table__,
    ("batch_id", "created_at", "job_id", *_ANALYSIS),
    "ON CONFLICT DO NOTHING",
)
_LATEST = (*_ANALYSIS, "model_name", "model_version", "updated_at")
# A batch's event carries its newest analysis; the ids of the events inserted or moved on.
_EVENTS = Unnest(
    SecurityEventRow.__table__,
    ("batch_id", "camera_id", "started_at", "ended_at", "detection_count", "created_at",
     *_LATEST),
    f"ON CONFLICT (batch_id) DO UPDATE SET {_excluded(_LATEST)} "
    "WHERE events.analysis_version < excluded.analysis_version RETURNING id, batch_id",
)  # fmt: skip
_EVENTS_LINKED = text(
    "UPDATE batches SET event_id = u.id, status = 'completed', error = NULL "
    "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:batch_ids AS TEXT[])) AS u(id, batch_id) "
    "WHERE batches.batch_id = u.batch_id"
)


def security_events_recorded(events: Sequence[SecurityEventRecorded], session: Session) -> None:
    """Every analysis kept; each batch's event made by its first SecurityEventRecorded and
    moved on to its newest analysis version (the first event of that version: applying
    them in turn gives the same row), and linked to its batch."""
    _ANALYSES.execute(
        session,
        [
            {
                "batch_id": event.batch_id,
                "created_at": event.occurred_at,
                "job_id": event.job_id,
                **{name: getattr(event, name) for name in _ANALYSIS},
            }
            for event in events
        ],
    )
    for event in events:
        if event.job_id is not None:
            _item_done(event.job_id, event.batch_id, event.occurred_at, session)
    first = _first_by(events, "batch_id")
    newest: dict[str, SecurityEventRecorded] = {}
    for event in events:
        seen = newest.get(event.batch_id)
        if seen is None or event.analysis_version > seen.analysis_version:
            newest[event.batch_id] = event
    moved = _EVENTS.execute(
        session,
        [
            {
                "batch_id": batch_id,
                "camera_id": opened.camera_id,
                "started_at": opened.started_at,
                "ended_at": opened.ended_at,
                "detection_count": opened.detection_count,
                "created_at": opened.occurred_at,
                **{name: getattr(newest[batch_id], name) for name in _ANALYSIS},
                "model_name": newest[batch_id].model_name,
                "model_version": newest[batch_id].model_version,
                "updated_at": newest[batch_id].occurred_at,
            }
            for batch_id, opened in first.items()
        ],
    ).all()
    if moved:
        session.execute(
            _EVENTS_LINKED,
            {"ids": [row.id for row in moved], "batch_ids": [row.batch_id for row in moved]},
        )


def prompt_replayed(event: PromptReplayed, session: Session) -> None:
    session.execute(
        insert(PromptReplayRow)
        .values(
            job_id=event.job_id,
            batch_id=event.batch_id,
            camera_id=event.camera_id,
            model=event.model,
            current_version=event.current_version,
            current_score=event.current.risk_score,
            current_level=event.current.risk_level,
            candidate_score=event.candidate.risk_score,
            candidate_level=event.candidate.risk_level,
            current_summary=event.current.summary,
            candidate_summary=event.candidate.summary,
            current_latency_ms=event.current.latency_ms,
            candidate_latency_ms=event.candidate.latency_ms,
            at=event.occurred_at,
        )
        .on_conflict_do_nothing()  # a batch replayed twice for one job: the first stands
    )
    _item_done(event.job_id, event.batch_id, event.occurred_at, session)


def event_evaluated(event: EventEvaluated, session: Session) -> None:
    session.execute(
        insert(EvaluationRow)
        .values(
            evaluation_id=event.evaluation_id,
            job_id=event.job_id,
            batch_id=event.batch_id,
            camera_id=event.camera_id,
            analysis_version=event.analysis_version,
            prompt_version=event.prompt_version,
            prompt_model=event.prompt_model,
            judge_model=event.judge_model,
            status=event.status,
            failures=event.failures,
            consistency=event.quality.consistency,
            relevance=event.quality.relevance,
            coherence=event.quality.coherence,
            overall=event.quality.overall,
            model_contributions=event.model_contributions,
            prompt_suggestions=(
                [s.model_dump() for s in event.prompt_suggestions]
                if event.prompt_suggestions is not None
                else None
            ),
            evidence=event.evidence.model_dump(mode="json"),
            audit_ids=list(event.audit_ids),
            duration_ms=event.duration_ms,
            created_at=event.occurred_at,
        )
        .on_conflict_do_nothing(index_elements=[EvaluationRow.evaluation_id])
    )
    if event.job_id is not None:
        _item_done(event.job_id, event.batch_id, event.occurred_at, session)


def prompt_tested(event: PromptTested, session: Session) -> None:
    session.execute(
        insert(PromptTestRow)
        .values(
            test_id=event.test_id,
            event_id=event.event_id,
            batch_id=event.batch_id,
            camera_id=event.camera_id,
            model=event.model,
            outcomes=[o.model_dump(mode="json") for o in event.outcomes],
            created_at=event.occurred_at,
        )
        .on_conflict_do_nothing()
    )


_AUDITS = Unnest(
    AuditRow.__table__,
    ("audit_id", "model_name", "model_version", "camera_id", "batch_id", "prompt_version",
     "input_summary", "raw_output", "tokens_in", "tokens_out", "latency_ms", "outcome", "error",
     "attempt", "created_at"),
    "ON CONFLICT (audit_id) DO NOTHING",
)  # fmt: skip


def model_calls_audited(events: Sequence[ModelCallAudited], session: Session) -> None:
    _AUDITS.execute(
        session,
        [
            {
                **{name: getattr(event, name) for name in _AUDITS.columns if name != "created_at"},
                "created_at": event.occurred_at,
            }
            for event in events
        ],
    )


def prompt_configured(event: PromptConfigured, session: Session) -> None:
    session.execute(
        insert(PromptVersionRow)
        .values(
            model=event.model,
            version=event.version,
            system_prompt=event.config.system_prompt,
            temperature=event.config.temperature,
            max_tokens=event.config.max_tokens,
            description=event.description,
            restored_from=event.restored_from,
            created_at=event.occurred_at,
            event_id=str(event.event_id),
        )
        .on_conflict_do_nothing()  # a version is taken by its first proposal
    )


def circuit_breaker_changed(event: CircuitBreakerChanged, session: Session) -> None:
    report = {
        "state": event.state,
        "failure_count": event.failure_count,
        "total_calls": event.total_calls,
        "updated_at": event.occurred_at,
    }
    session.execute(
        insert(CircuitBreakerRow)
        .values(worker_id=event.worker_id, name=event.name, **report)
        .on_conflict_do_update(
            index_elements=[CircuitBreakerRow.worker_id, CircuitBreakerRow.name],
            set_=report,
            where=CircuitBreakerRow.updated_at <= event.occurred_at,
        )
    )


# The event types that arrive in the largest numbers: a run of consecutive events of one of
# these types is applied with one handler call (a statement or two for the whole run).
RUN_HANDLERS: dict[type, RunHandler] = {
    ImageReceived: images_received,
    DetectionsProduced: detections_produced_many,
    DetectionsEnriched: detections_enriched_many,
    DetectionsBatched: detections_batched_many,
    BatchOpened: batches_opened,
    BatchClosed: batches_closed,
    SecurityEventRecorded: security_events_recorded,
    ModelCallAudited: model_calls_audited,
}


def _one_at_a_time(run: RunHandler) -> Handler:
    def handle(event: Any, session: Session) -> None:
        run([event], session)

    handle.__name__ = run.__name__
    return handle


image_received = _one_at_a_time(images_received)
detections_produced = _one_at_a_time(detections_produced_many)

HANDLERS: dict[type, list[Handler]] = {
    **{kind: [_one_at_a_time(run)] for kind, run in RUN_HANDLERS.items()},
    DetectionsReprocessed: [detections_reprocessed],
    DeadLettered: [dead_lettered],
    DeadLetterRequeued: [dead_letter_requeued],
    DeadLettersCleared: [dead_letters_cleared],
    EnrichmentReprocessed: [enrichment_reprocessed],
    PromptReplayed: [prompt_replayed],
    EventEvaluated: [event_evaluated],
    PromptTested: [prompt_tested],
    PromptConfigured: [prompt_configured],
    CircuitBreakerChanged: [circuit_breaker_changed],
    **JOB_HANDLERS,
    RetentionApplied: [retention_applied],
}
