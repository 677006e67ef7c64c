"""Request and response models of the evaluation endpoints of `/api/ai-audit` (per-event
audit, evaluate, batch, stats, leaderboard, recommendations)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from api.pagination import BIGINT_MAX
from schemas.analysis import PromptConfig
from schemas.evaluation import PromptSuggestion

AuditStatus = Literal["not_evaluated", "pending", "evaluated", "partial", "failed"]


class QualityScoresOut(BaseModel):
    coherence: float | None
    relevance: float | None
    consistency: float | None
    overall: float | None


class EvaluationOut(BaseModel):
    """How the figures were measured: the evidence each was computed from."""

    evaluation_id: str
    analysis_version: int
    prompt_version: int
    prompt_model: str
    judge_model: str
    job_id: str | None
    # The judge's critique of the analysis.
    self_critique: str | None
    # Why each step that failed failed (empty when every figure was measured).
    failures: dict[str, str]
    suggestions: list[PromptSuggestion] | None
    evidence: dict[str, Any]
    audit_ids: list[str]
    duration_ms: float


class EventAuditOut(BaseModel):
    """The spec's EventAuditResponse for an event's newest analysis, with its status."""

    event_id: int
    # The evaluation's number (None: not evaluated yet).
    audit_id: int | None
    status: AuditStatus
    reason: str | None = None
    model_contributions: dict[str, float] | None
    quality_scores: QualityScoresOut | None
    prompt_suggestions: list[str] | None
    created_at: datetime | None
    evaluation: EvaluationOut | None


class BatchAuditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_ids: list[Annotated[int, Field(ge=1, le=BIGINT_MAX)]] = Field(
        default_factory=list, max_length=1000
    )
    camera_id: str | None = Field(default=None, min_length=1, max_length=128)
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    min_risk_score: int | None = Field(default=None, ge=0, le=100)
    limit: int = Field(default=100, ge=1, le=1000)
    force: bool = False

    @model_validator(mode="after")
    def _chooses_events(self) -> BatchAuditIn:
        chosen = (self.event_ids, self.camera_id, self.start_date, self.end_date)
        if not any(choice for choice in chosen) and self.min_risk_score is None:
            raise ValueError("name event_ids, or filter by camera_id, dates or min_risk_score")
        return self


class BatchAuditOut(BaseModel):
    queued_count: int
    message: str
    job_id: str | None


class ModelStats(BaseModel):
    # How many outputs the model made in the window: analyses audited, images detected,
    # detections described.
    events: int
    avg_latency_ms: float | None
    contribution_rate: float | None


class QualityAverages(BaseModel):
    avg_coherence: float | None
    avg_relevance: float | None
    avg_consistency: float | None


class TokenUsage(BaseModel):
    total_input: int
    total_output: int
    today_input: int
    today_output: int


class AuditStats(BaseModel):
    total_events: int
    events_today: int
    evaluated_events: int
    by_model: dict[str, ModelStats]
    quality_scores: QualityAverages
    token_usage: TokenUsage
    period_days: int


class LeaderboardEntry(BaseModel):
    model_name: str
    contribution_rate: float
    total_events: int
    avg_quality_score: float | None
    quality_correlation: float | None


class Leaderboard(BaseModel):
    entries: list[LeaderboardEntry]
    period_days: int
    total_events: int


class Recommendation(BaseModel):
    model: str
    priority: Literal["high", "medium", "low"]
    category: str
    suggestion: str
    impact_estimate: float | None
    affected_events: int


class Recommendations(BaseModel):
    recommendations: list[Recommendation]
    period_days: int
    total_events_analyzed: int


class PromptTestIn(BaseModel):
    """A configuration to test: against one event (`event_id`), or, with `days`, against
    the closed batches of the last days (a prompt_replay job)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(default="nemotron", min_length=1, max_length=64)
    event_id: int | None = Field(default=None, ge=1, le=BIGINT_MAX)
    days: int | None = Field(default=None, ge=1, le=90)
    camera_id: str | None = Field(default=None, min_length=1, max_length=128)
    config: PromptConfig

    @model_validator(mode="after")
    def _one_target(self) -> PromptTestIn:
        if (self.event_id is None) == (self.days is None):
            raise ValueError("give either event_id (one event) or days (a replay), not both")
        if self.camera_id is not None and self.days is None:
            raise ValueError("camera_id narrows a replay: it goes with days")
        return self


class TrialResultOut(BaseModel):
    """One configuration's answer (None fields and `error` when it gave none)."""

    risk_score: int | None
    risk_level: str | None
    summary: str | None
    reasoning: str | None
    latency_ms: float | None
    tokens_used: int | None
    prompt_version: int | None
    error: str | None


class PromptComparison(BaseModel):
    risk_score_diff: int | None
    latency_diff_ms: float | None


class PromptTestOut(BaseModel):
    test_id: str
    event_id: int
    model: str
    status: Literal["completed", "pending"] = "completed"
    current_result: TrialResultOut | None
    modified_result: TrialResultOut | None
    comparison: PromptComparison | None


class PromptReplayStarted(BaseModel):
    job_id: str
    status: Literal["pending"] = "pending"
    model: str
    days: int
    camera_id: str | None
    message: str


class CustomPromptIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: int = Field(ge=1, le=BIGINT_MAX)
    custom_prompt: str = Field(min_length=1, max_length=20000)
    temperature: float = Field(default=0.1, ge=0, le=2)
    max_tokens: int = Field(default=2048, ge=1, le=32768)
    model: str = Field(default="nemotron", min_length=1, max_length=64)

    @field_validator("custom_prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("custom_prompt is blank")
        return value


class CustomPromptOut(BaseModel):
    test_id: str
    event_id: int
    status: Literal["completed", "pending"] = "completed"
    result: TrialResultOut | None
    latency_ms: float | None
    tokens_used: int | None
