"""Request and response models of the evaluation endpoints of `/api/ai-audit` (per-event
audit, evaluate, batch, stats, leaderboard, recommendations)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

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

    event_ids: list[int] = Field(default_factory=list, max_length=1000)
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
