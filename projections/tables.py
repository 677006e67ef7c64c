"""The Postgres read models and the projection's offset tracking table."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    and_,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class ProjectionOffset(Base):
    """Next offset to apply per (consumer, topic, partition), written with the rows it covers."""

    __tablename__ = "projection_offsets"

    consumer: Mapped[str] = mapped_column(String(128), primary_key=True)
    topic: Mapped[str] = mapped_column(String(255), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ProjectionReject(Base):
    """A message a projection could not decode: kept, with the reason, instead of dropped."""

    __tablename__ = "projection_rejects"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    consumer: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text)
    raw: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (UniqueConstraint("consumer", "topic", "partition", "offset"),)


class Image(Base):
    __tablename__ = "images"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64), unique=True)
    camera_id: Mapped[str] = mapped_column(String(128), index=True)
    file_path: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    file_modified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # received -> detected | failed
    status: Mapped[str] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    detection_count: Mapped[int | None] = mapped_column(Integer)
    detected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


class DetectionRow(Base):
    __tablename__ = "detections"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    camera_id: Mapped[str] = mapped_column(String(128))
    file_path: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(64))
    class_id: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    x1: Mapped[float] = mapped_column(Float)
    y1: Mapped[float] = mapped_column(Float)
    x2: Mapped[float] = mapped_column(Float)
    y2: Mapped[float] = mapped_column(Float)
    image_width: Mapped[int] = mapped_column(Integer)
    image_height: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    latency_ms: Mapped[float] = mapped_column(Float)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # False: the image's own detections (what its batch holds and its enrichments describe);
    # True: another model's, made for a reprocess job and kept beside them.
    reprocessed: Mapped[bool] = mapped_column(default=False, server_default=text("false"))

    __table_args__ = (
        UniqueConstraint("image_id", "model_name", "model_version", "position"),
        Index(None, "image_id", "position"),
        Index(None, "camera_id", "detected_at"),
        Index(None, "label", "detected_at"),
        Index(None, "model_name", "detected_at"),
        Index(None, "detected_at"),
    )


def own_detection(image_id, position) -> ColumnElement[bool]:
    """The condition that a detections row is the image's own detection at that position
    (what batches hold and enrichments describe), not another model's kept beside it."""
    return and_(
        DetectionRow.image_id == image_id,
        DetectionRow.position == position,
        DetectionRow.reprocessed.is_(False),
    )


class DeadLetterRow(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    dead_letter_id: Mapped[str] = mapped_column(String(36), unique=True)
    stage: Mapped[str] = mapped_column(String(16), index=True)
    camera_id: Mapped[str | None] = mapped_column(String(128))
    source_topic: Mapped[str | None] = mapped_column(String(255))
    source_partition: Mapped[int | None] = mapped_column(Integer)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    original: Mapped[object] = mapped_column(JSONB)
    original_encoding: Mapped[str] = mapped_column(String(8))
    error_type: Mapped[str] = mapped_column(String(128))
    error: Mapped[str] = mapped_column(Text)
    context: Mapped[dict | None] = mapped_column(JSONB)
    attempt_count: Mapped[int] = mapped_column(Integer)
    first_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DeadLetterAction(Base):
    """What became of a dead letter. A letter without an action is pending in its queue.

    No foreign key to dead_letters: an action may be projected before its letter (another
    partition), and the pending set comes out the same in any order.
    """

    __tablename__ = "dead_letter_actions"

    dead_letter_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    # requeued | cleared
    action: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Where the requeued original went on its source topic.
    requeued_partition: Mapped[int | None] = mapped_column(Integer)
    requeued_offset: Mapped[int | None] = mapped_column(BigInteger)


class BatchRow(Base):
    __tablename__ = "batches"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128), index=True)
    # aggregating -> completed (analysed or analysis pending) | failed (analysis dead-lettered)
    status: Mapped[str] = mapped_column(String(16), index=True)
    detection_count: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    trigger: Mapped[str | None] = mapped_column(String(16))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)


class BatchMember(Base):
    """Which detections (image and position) a closed batch holds."""

    __tablename__ = "batch_detections"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    image_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)

    __table_args__ = (Index(None, "image_id", "position"),)


class EnrichmentRow(Base):
    __tablename__ = "enrichments"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # The event that carried it and the detection's position: the natural key.
    source_event_id: Mapped[str] = mapped_column(String(36))
    image_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    camera_id: Mapped[str] = mapped_column(String(128))
    detection_type: Mapped[str] = mapped_column(String(16))
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    attributes: Mapped[dict] = mapped_column(JSONB)
    confidence: Mapped[float] = mapped_column(Float)
    latency_ms: Mapped[float] = mapped_column(Float)
    reprocessed: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("source_event_id", "position"),
        Index(None, "image_id", "position"),
        Index(None, "created_at"),
        # The p95 latency of the stats reads the top of these (migration 0011).
        Index(None, "latency_ms"),
        Index(None, "camera_id", "latency_ms"),
    )


class ReadCountRow(Base):
    """Detections (kind 'detection', label: the COCO label) and enrichments (kind
    'enrichment', label: the detection type) counted per model, camera, label and UTC day,
    with the sums their averages need. Statement triggers on the two tables keep it exact
    in the transaction that writes them (migration 0011); the API counts whole days here."""

    __tablename__ = "read_counts"

    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(32), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger)
    confidence_sum: Mapped[float] = mapped_column(Float)
    latency_n: Mapped[int] = mapped_column(BigInteger)
    latency_sum: Mapped[float] = mapped_column(Float)


class SecurityEventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), unique=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    analysis_version: Mapped[int] = mapped_column(Integer)
    risk_score: Mapped[int] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    detection_count: Mapped[int] = mapped_column(Integer)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    prompt_version: Mapped[int] = mapped_column(Integer)
    audit_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(None, "camera_id", "started_at"),
        Index(None, "started_at"),
        Index(None, "risk_level"),
    )


class EventAnalysisRow(Base):
    """Every analysis version of an event (the event row shows the latest)."""

    __tablename__ = "event_analyses"

    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    analysis_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    risk_score: Mapped[int] = mapped_column(Integer)
    risk_level: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    reasoning: Mapped[str] = mapped_column(Text)
    prompt_version: Mapped[int] = mapped_column(Integer)
    audit_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The reanalyse job that made this version (None: the pipeline's own analysis).
    job_id: Mapped[str | None] = mapped_column(String(64))


class AuditRow(Base):
    __tablename__ = "ai_audit"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    audit_id: Mapped[str] = mapped_column(String(36), unique=True)
    model_name: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str | None] = mapped_column(String(32))
    camera_id: Mapped[str | None] = mapped_column(String(128))
    batch_id: Mapped[str | None] = mapped_column(String(64), index=True)
    prompt_version: Mapped[int | None] = mapped_column(Integer)
    input_summary: Mapped[str] = mapped_column(Text)
    raw_output: Mapped[str | None] = mapped_column(Text)
    tokens_in: Mapped[int | None] = mapped_column(Integer)
    tokens_out: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    attempt: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class EvaluationRow(Base):
    """One evaluation of one analysis version of a security event (`EventEvaluated`); `id` is
    the spec's integer `audit_id`."""

    __tablename__ = "event_evaluations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    evaluation_id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(128))
    analysis_version: Mapped[int] = mapped_column(Integer)
    prompt_version: Mapped[int] = mapped_column(Integer)
    prompt_model: Mapped[str] = mapped_column(String(64))
    judge_model: Mapped[str] = mapped_column(String(64))
    # evaluated | partial | failed
    status: Mapped[str] = mapped_column(String(16))
    failures: Mapped[dict] = mapped_column(JSONB)
    consistency: Mapped[float | None] = mapped_column(Float)
    relevance: Mapped[float | None] = mapped_column(Float)
    coherence: Mapped[float | None] = mapped_column(Float)
    overall: Mapped[float | None] = mapped_column(Float)
    model_contributions: Mapped[dict | None] = mapped_column(JSONB)
    prompt_suggestions: Mapped[list | None] = mapped_column(JSONB)
    evidence: Mapped[dict] = mapped_column(JSONB)
    audit_ids: Mapped[list] = mapped_column(JSONB)
    duration_ms: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(None, "batch_id", "analysis_version", "created_at"),
        Index(None, "created_at"),
    )


class PromptTestRow(Base):
    """A prompt test's results (`PromptTested`): what each configuration answered."""

    __tablename__ = "prompt_tests"

    test_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    batch_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(64))
    outcomes: Mapped[list] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PromptVersionRow(Base):
    """A prompt configuration's versions. The first `PromptConfigured` of a (model, version)
    on the topic takes it; a later proposal of the same version is ignored (`event_id` says
    whose proposal won)."""

    __tablename__ = "prompt_versions"

    model: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    system_prompt: Mapped[str] = mapped_column(Text)
    temperature: Mapped[float] = mapped_column(Float)
    max_tokens: Mapped[int] = mapped_column(Integer)
    description: Mapped[str | None] = mapped_column(Text)
    restored_from: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    event_id: Mapped[str | None] = mapped_column(String(36))


class CircuitBreakerRow(Base):
    """The last reported state of one worker's breaker around one model."""

    __tablename__ = "circuit_breakers"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    failure_count: Mapped[int] = mapped_column(Integer)
    total_calls: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobRow(Base):
    """A background job as its events leave it (`vigil.jobs`)."""

    __tablename__ = "jobs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_type: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict] = mapped_column(JSONB)
    result: Mapped[dict | None] = mapped_column(JSONB)
    progress: Mapped[int] = mapped_column(Integer)
    processed: Mapped[int | None] = mapped_column(BigInteger)
    total: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(128))
    worker_id: Mapped[str | None] = mapped_column(String(128))
    attempt: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_type: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    abort_requested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(None, "status"),
        Index(None, "job_type"),
        Index(None, "created_at"),
    )


class JobTransitionRow(Base):
    """One change of a job's status, with the reason its event gives."""

    __tablename__ = "job_transitions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobAttemptRow(Base):
    __tablename__ = "job_attempts"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    attempt: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[str] = mapped_column(String(128))
    # running -> completed | failed | aborted | abandoned (a later attempt started)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)


class JobProgressRow(Base):
    __tablename__ = "job_progress"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    progress: Mapped[int] = mapped_column(Integer)
    processed: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobLogRow(Base):
    __tablename__ = "job_logs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    job_id: Mapped[str] = mapped_column(String(64))
    attempt: Mapped[int | None] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))
    # DEBUG 10, INFO 20, WARNING 30, ERROR 40: `level=` filters by minimum.
    level_no: Mapped[int] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "job_id", "at"),)


class RetentionCutoffRow(Base):
    """A cleanup job's cut-off (`RetentionApplied`), and how many rows it deleted per table.

    The projector reads these before each batch: a fact older than a cut-off that covers its
    camera is skipped, so a replay leaves the same rows deleted.
    """

    __tablename__ = "retention_cutoffs"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera_id: Mapped[str | None] = mapped_column(String(128))
    cutoff: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deleted: Mapped[dict] = mapped_column(JSONB)


class PromptReplayRow(Base):
    """One batch of a prompt replay job: its assessment with the current prompt version and
    with the candidate configuration."""

    __tablename__ = "prompt_replays"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    batch_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera_id: Mapped[str] = mapped_column(String(128))
    model: Mapped[str] = mapped_column(String(64))
    current_version: Mapped[int] = mapped_column(Integer)
    current_score: Mapped[int] = mapped_column(Integer)
    current_level: Mapped[str] = mapped_column(String(16))
    candidate_score: Mapped[int] = mapped_column(Integer)
    candidate_level: Mapped[str] = mapped_column(String(16))
    current_summary: Mapped[str] = mapped_column(Text)
    candidate_summary: Mapped[str] = mapped_column(Text)
    current_latency_ms: Mapped[float] = mapped_column(Float)
    candidate_latency_ms: Mapped[float] = mapped_column(Float)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JobItemRow(Base):
    """One item of a job that fans out to the workers (an image of a reprocess job, a batch
    of a reanalyse job): done
    once its result is on a topic, failed once the worker dead-lettered it."""

    __tablename__ = "job_items"

    job_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # done | failed (a failed item requeued from the dead letters can still be done)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
