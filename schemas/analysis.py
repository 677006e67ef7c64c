"""Risk analysis: the analyst's answer, security events, the audit trail, prompt configuration."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.batches import BatchClosed
from schemas.envelope import Message

RiskLevel = Literal["low", "medium", "high", "critical"]

SUMMARY_MAX = 200
REASONING_MAX = 600

# Inclusive score bands per level; a level outside its band is a contradiction.
RISK_BANDS: dict[str, tuple[int, int]] = {
    "low": (0, 29),
    "medium": (30, 59),
    "high": (60, 84),
    "critical": (85, 100),
}


def level_for(score: int) -> RiskLevel:
    for level, (low, high) in RISK_BANDS.items():
        if low <= score <= high:
            return level  # type: ignore[return-value]
    raise ValueError(f"risk_score {score} is outside 0-100")


class RiskAssessment(BaseModel):
    """The only answer shape accepted from the analyst model (strict: no coercion)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    risk_score: int = Field(ge=0, le=100)
    risk_level: RiskLevel
    summary: str = Field(min_length=1, max_length=SUMMARY_MAX)
    reasoning: str = Field(min_length=1, max_length=REASONING_MAX)

    @model_validator(mode="after")
    def _level_matches_score(self) -> RiskAssessment:
        low, high = RISK_BANDS[self.risk_level]
        if not low <= self.risk_score <= high:
            raise ValueError(
                f"risk_level {self.risk_level!r} contradicts risk_score {self.risk_score} "
                f"({self.risk_level} is {low}-{high})"
            )
        return self


def risk_json_schema() -> dict:
    """JSON Schema sent to the model to constrain its output, bands included."""
    return {
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": False,
                "required": ["risk_score", "risk_level", "summary", "reasoning"],
                "properties": {
                    "risk_score": {"type": "integer", "minimum": low, "maximum": high},
                    "risk_level": {"const": level},
                    "summary": {"type": "string", "minLength": 1, "maxLength": SUMMARY_MAX},
                    "reasoning": {"type": "string", "minLength": 1, "maxLength": REASONING_MAX},
                },
            }
            for level, (low, high) in RISK_BANDS.items()
        ]
    }


class PromptConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    system_prompt: str = Field(min_length=1)
    temperature: float = Field(ge=0, le=2)
    max_tokens: int = Field(ge=1, le=32768)


class PromptConfigured(Message):
    """A model's prompt configuration took a new version."""

    event_type: Literal["PromptConfigured"] = "PromptConfigured"

    model: str
    version: int = Field(ge=1)
    config: PromptConfig
    description: str | None = None
    restored_from: int | None = None


class SecurityEventRecorded(Message):
    """The analysis of one closed batch; a reanalysis is a new `analysis_version` of it."""

    event_type: Literal["SecurityEventRecorded"] = "SecurityEventRecorded"

    batch_id: str
    camera_id: str
    analysis_version: int = Field(ge=1)
    risk_score: int = Field(ge=0, le=100)
    risk_level: RiskLevel
    summary: str
    reasoning: str
    started_at: datetime
    ended_at: datetime
    detection_count: int = Field(ge=0)
    model_name: str
    model_version: str
    prompt_version: int
    audit_id: str
    # The reanalyse job this version was made for (None: the pipeline's own analysis).
    job_id: str | None = Field(default=None, min_length=1, max_length=64)


class ReanalyseBatch(Message):
    """Analyse a closed batch again with the current prompt (a `reanalyse` job asks for each);
    the result is the batch event's next analysis version."""

    event_type: Literal["ReanalyseBatch"] = "ReanalyseBatch"
    # v2: the batch is BatchClosed v2 (with its image_count).
    schema_version: int = 2

    job_id: str = Field(min_length=1, max_length=64)
    batch_id: str
    camera_id: str
    batch: BatchClosed


class ReplayPrompt(Message):
    """Analyse a closed batch with the current prompt and with a candidate configuration,
    publishing no event (a `prompt_replay` job asks for each)."""

    event_type: Literal["ReplayPrompt"] = "ReplayPrompt"
    # v2: the batch is BatchClosed v2 (with its image_count).
    schema_version: int = 2

    job_id: str = Field(min_length=1, max_length=64)
    batch_id: str
    camera_id: str
    batch: BatchClosed
    # The prompt whose current version is compared with the candidate (ANALYST_PROMPT's).
    model: str
    candidate: PromptConfig


class TrialResult(BaseModel):
    """One analysis of a prompt replay: what the assessment was, and what it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    risk_score: int = Field(ge=0, le=100)
    risk_level: RiskLevel
    summary: str
    latency_ms: float = Field(ge=0)
    tokens_out: int = Field(ge=0)


class PromptReplayed(Message):
    """A batch analysed with the current prompt version and with a candidate configuration."""

    event_type: Literal["PromptReplayed"] = "PromptReplayed"

    job_id: str = Field(min_length=1, max_length=64)
    batch_id: str
    camera_id: str
    model: str
    current_version: int = Field(ge=1)
    current: TrialResult
    candidate: TrialResult


class ModelCallAudited(Message):
    """One call to a model, whatever came of it."""

    event_type: Literal["ModelCallAudited"] = "ModelCallAudited"

    audit_id: str
    model_name: str
    model_version: str | None
    camera_id: str | None
    batch_id: str | None
    prompt_version: int | None
    input_summary: str
    raw_output: str | None
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    latency_ms: float | None = Field(default=None, ge=0)
    outcome: Literal["success", "invalid_output", "error"]
    error: str | None = None
    attempt: int = Field(default=1, ge=1)
