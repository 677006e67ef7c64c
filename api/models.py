"""Request and response models of the API, separate from the ORM rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.analysis import RiskLevel
from schemas.batches import Trigger as BatchTrigger


class ErrorOut(BaseModel):
    """Every error answer but FastAPI's own 422: the text, and the type of error."""

    detail: str
    error: str


class BoundingBoxOut(BaseModel):
    x1: float
    y1: float
    x2: float
    y2: float


class DetectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    image_id: str
    camera_id: str
    file_path: str
    label: str
    class_id: int
    confidence: float
    bbox: BoundingBoxOut
    image_width: int
    image_height: int
    model_name: str
    model_version: str
    latency_ms: float
    detected_at: datetime
    created_at: datetime
    # The image and the image with its detections drawn (signed, expiring URLs once API
    # keys are configured).
    image_url: str
    annotated_image_url: str


class DetectionList(BaseModel):
    detections: list[DetectionOut]
    count: int
    limit: int
    offset: int


ServiceStatus = Literal["healthy", "unhealthy"]


class ServiceHealth(BaseModel):
    status: ServiceStatus
    latency_ms: float | None = None
    error: str | None = None


class TritonHealth(ServiceHealth):
    models: dict[str, str] = {}


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    services: dict[str, ServiceHealth | TritonHealth]
    # consumer group -> topic -> messages not yet processed
    consumer_lag: dict[str, dict[str, int]]
    checked_at: datetime
    # How old the checks are: they run in the background every HEALTH_REFRESH_S.
    age_s: float = 0.0
    # Why the status cannot be vouched for (no check has completed, or the last is stale).
    error: str | None = None


# --- enrichment ---------------------------------------------------------------------------


class EnrichmentOut(BaseModel):
    id: int
    # The detection's id, or None while its DetectionsProduced is not projected yet.
    detection_id: int | None
    # The security event of the batch holding the detection, once there is one.
    event_id: int | None
    model_name: str
    model_version: str
    description: str
    attributes: dict[str, Any]
    confidence: float
    latency_ms: float
    created_at: datetime


class EnrichmentList(BaseModel):
    enrichments: list[EnrichmentOut]
    count: int
    limit: int
    offset: int


class EnrichmentsOf(BaseModel):
    """Every enrichment of one detection or one event, newest first."""

    enrichments: list[EnrichmentOut]
    count: int


class EnrichmentStats(BaseModel):
    total_enrichments: int
    enrichments_today: int
    by_detection_type: dict[str, int]
    avg_confidence: float | None
    avg_latency_ms: float | None
    p95_latency_ms: float | None


class ReprocessQueued(BaseModel):
    status: Literal["queued"] = "queued"
    detection_id: int
    message: str = "Enrichment reprocessing queued successfully"


# --- batches ------------------------------------------------------------------------------

BatchStatus = Literal["aggregating", "completed", "failed"]


class BatchOut(BaseModel):
    batch_id: str
    camera_id: str
    status: BatchStatus
    detection_count: int
    started_at: datetime
    completed_at: datetime | None
    event_id: int | None
    trigger: BatchTrigger | None


class BatchList(BaseModel):
    batches: list[BatchOut]
    count: int
    limit: int
    offset: int


class BatchDetectionOut(BaseModel):
    image_id: str
    position: int
    # None while the detection itself is not projected yet.
    detection_id: int | None


class BatchDetail(BatchOut):
    last_activity_at: datetime
    error: str | None
    detections: list[BatchDetectionOut]


class BatchStats(BaseModel):
    total_batches: int
    by_status: dict[BatchStatus, int]
    by_trigger: dict[BatchTrigger, int]
    active_count: int
    avg_detections_per_batch: float | None
    avg_duration_seconds: float | None


class ActiveBatchOut(BaseModel):
    batch_id: str
    camera_id: str
    detection_count: int
    started_at: datetime
    age_seconds: float
    last_activity_seconds: float


class ActiveBatchList(BaseModel):
    batches: list[ActiveBatchOut]
    count: int


class FlushOutcome(BaseModel):
    status: Literal["flushed", "queued"]
    batch_id: str
    detection_count: int
    message: str


# --- security events ----------------------------------------------------------------------


class EventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    batch_id: str
    camera_id: str
    risk_score: int
    risk_level: RiskLevel
    summary: str
    reasoning: str
    analysis_version: int
    started_at: datetime
    ended_at: datetime
    detection_count: int
    model_name: str
    model_version: str
    prompt_version: int
    created_at: datetime
    updated_at: datetime
    # The batch's first image (by detection time) with its boxes, 320 pixels wide; None while
    # the batch's members are not projected.
    thumbnail_url: str | None = None


class EventList(BaseModel):
    events: list[EventOut]
    count: int
    limit: int
    offset: int


class AnalysisOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    analysis_version: int
    risk_score: int
    risk_level: RiskLevel
    summary: str
    reasoning: str
    prompt_version: int
    audit_id: str
    created_at: datetime


class EventDetectionOut(DetectionOut):
    enrichments: list[EnrichmentOut]


class EventDetail(EventOut):
    # None while the batch's own events are not projected yet.
    batch: BatchOut | None
    detections: list[EventDetectionOut]
    analyses: list[AnalysisOut]


class BreakerWorkerOut(BaseModel):
    state: Literal["closed", "open", "half_open"]
    failure_count: int
    total_calls: int
    updated_at: datetime


class BreakerOut(BaseModel):
    name: str
    state: Literal["closed", "open", "half_open"]
    failure_count: int
    total_calls: int
    # The breaker of each worker that reported within CIRCUIT_BREAKER_STALE_S.
    workers: dict[str, BreakerWorkerOut]


class CircuitBreakersOut(BaseModel):
    circuit_breakers: dict[str, BreakerOut]
    total_count: int
    open_count: int


class BreakerResetOut(BaseModel):
    name: str
    status: Literal["reset", "queued"]
    state: Literal["closed", "open", "half_open"]
    message: str


# --- dead letter queues -------------------------------------------------------------------


class DLQStats(BaseModel):
    """Pending letters per queue: neither requeued nor cleared."""

    detection_queue_count: int
    enrichment_queue_count: int
    analysis_queue_count: int
    total_count: int


class DLQJob(BaseModel):
    # The original message: its JSON, or its text / base64 when it was not JSON.
    original_job: Any
    original_encoding: Literal["json", "text", "base64"]
    # "<error_type>: <error>"
    error: str
    error_type: str
    attempt_count: int
    first_failed_at: datetime
    last_failed_at: datetime
    queue_name: str
    dead_letter_id: str
    camera_id: str | None
    # None for input refused before it reached a topic: such a letter cannot be requeued.
    source_topic: str | None
    source_partition: int | None
    source_offset: int | None
    context: dict[str, Any] | None


class DLQJobList(BaseModel):
    queue_name: str
    jobs: list[DLQJob]
    # Every pending letter of the queue, not only this page.
    count: int


class DLQRequeueOutcome(BaseModel):
    queue_name: str
    requeued: int
    dead_letter_ids: list[str]
    # Letters still pending in the queue after this call.
    remaining: int
    # Of those, the ones no requeue takes (not JSON, or no source topic): clear them instead.
    not_requeueable: int
    message: str


class DLQClearOutcome(BaseModel):
    queue_name: str
    cleared: int
    message: str


# --- jobs ----------------------------------------------------------------------------------


class JobOut(BaseModel):
    """A job in a list: `metadata` is its params with processed, total and message (each
    when known)."""

    job_id: str
    job_type: str
    status: str
    progress: int
    created_at: datetime
    started_at: datetime | None
    metadata: dict[str, Any]


class JobList(BaseModel):
    jobs: list[JobOut]
    # Every job that matches, not only this page.
    count: int
    limit: int
    offset: int


class JobAggregations(BaseModel):
    by_status: dict[str, int]
    by_type: dict[str, int]


class JobSearchResult(JobList):
    # Over every job that matches, not only this page.
    aggregations: JobAggregations


class JobStats(BaseModel):
    total_jobs: int
    by_status: dict[str, int]
    by_type: dict[str, int]
    avg_duration_seconds: float | None
    jobs_today: int
    jobs_this_hour: int


class JobStatusOut(BaseModel):
    job_id: str
    job_type: str
    status: str
    progress: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    error_message: str | None
    result: dict[str, Any] | None
    metadata: dict[str, Any]


class JobProgressStep(BaseModel):
    timestamp: datetime
    progress: int
    message: str


class JobTiming(BaseModel):
    created_at: datetime
    started_at: datetime | None
    queue_wait_seconds: float | None
    running_seconds: float | None


class JobRetryInfo(BaseModel):
    attempt: int
    max_attempts: int
    # "<error_type>: <error>" of the latest failed attempt.
    last_error: str | None


class JobDetail(BaseModel):
    job_id: str
    job_type: str
    status: str
    progress: int
    progress_history: list[JobProgressStep]
    timing: JobTiming
    retry_info: JobRetryInfo
    metadata: dict[str, Any]


class JobTransitionOut(BaseModel):
    from_status: str | None
    to_status: str
    timestamp: datetime
    reason: str


class JobAttemptOut(BaseModel):
    attempt: int
    started_at: datetime
    ended_at: datetime | None
    # running, completed, failed, aborted, or abandoned (a later attempt took over)
    status: str
    worker_id: str
    error: str | None


class JobHistory(BaseModel):
    job_id: str
    transitions: list[JobTransitionOut]
    attempts: list[JobAttemptOut]


class JobLogOut(BaseModel):
    timestamp: datetime
    level: str
    message: str
    attempt: int | None


class JobLogList(BaseModel):
    job_id: str
    logs: list[JobLogOut]
    # Every log line that matches, not only those returned.
    count: int


class JobTypeOut(BaseModel):
    type: str
    description: str
    supports_abort: bool
    queue: str
    # The JSON schema of the type's `params`.
    params_schema: dict[str, Any]


class JobTypeList(BaseModel):
    types: list[JobTypeOut]


class JobCreate(BaseModel):
    job_type: str
    params: dict[str, Any] = Field(default_factory=dict)


class JobCancelOutcome(BaseModel):
    job_id: str
    # cancelled, or cancelling (202) while the runner has not shown it yet
    status: str
    message: str


class JobAbortOutcome(BaseModel):
    job_id: str
    # aborted, or aborting (202) while the runner has not shown it yet
    status: str
    message: str


class JobDeleteOutcome(BaseModel):
    job_id: str
    # cancelled or aborted; cancelling or aborting (202) while not shown yet
    action: str
    previous_status: str
    message: str


class BulkCancelIn(BaseModel):
    job_ids: list[str] = Field(min_length=1, max_length=1000)


class BulkCancelSucceeded(BaseModel):
    job_id: str
    success: Literal[True] = True
    message: str


class BulkCancelFailed(BaseModel):
    job_id: str
    success: Literal[False] = False
    error: str


class BulkCancelOutcome(BaseModel):
    successful: int
    failed: int
    # One per requested id, in request order.
    results: list[BulkCancelSucceeded | BulkCancelFailed]
