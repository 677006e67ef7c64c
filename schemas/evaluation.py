"""Evaluation of a security event's analysis: the command that asks for one, the event that
records it, and the answer shapes the judge (the analyst LLM) is constrained to.

Every figure of an `EventEvaluated` is measured on the event it names, with its evidence
kept beside it; a step that failed leaves its figures None and says why in `failures`.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.analysis import PromptConfig, RiskLevel
from schemas.batches import BatchClosed
from schemas.envelope import Message

EvaluationStatus = Literal["evaluated", "partial", "failed"]
SuggestionCategory = Literal["context", "specificity", "format", "missing_data"]
Step = Literal["consistency", "relevance", "coherence", "contributions", "suggestions"]

RUBRIC_CRITERIA = ("context_usage", "reasoning_coherence", "risk_justification", "actionability")
CRITIQUE_MAX = 600
SUGGESTION_MAX = 200
MAX_SUGGESTIONS = 3

_EVALUATIONS = uuid.UUID("3f6b7a51-5c5e-4a8e-9d0b-6f1e2c9a7d40")


def evaluation_id(*parts: object) -> str:
    """The id of the evaluation that `parts` name (a job, a batch and its analysis version; or
    a batch, its version and how many evaluations it had): the same parts, the same id, so
    a request made twice is evaluated once."""
    return str(uuid.uuid5(_EVALUATIONS, "/".join(str(part) for part in parts)))


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Answer(BaseModel):
    """An answer shape accepted from the judge (strict: no coercion)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class EvaluatedAnalysis(_Frozen):
    """The analysis version under evaluation, as its `SecurityEventRecorded` gave it."""

    analysis_version: int = Field(ge=1)
    risk_score: int = Field(ge=0, le=100)
    risk_level: RiskLevel
    summary: str
    reasoning: str
    prompt_version: int = Field(ge=1)


class EvaluateEvent(Message):
    """Command: evaluate one analysis of a security event. `evaluation_id` names the
    evaluation: a command whose evaluation was made already is not evaluated again."""

    event_type: Literal["EvaluateEvent"] = "EvaluateEvent"
    # v2: the batch is BatchClosed v2 (with its image_count).
    schema_version: int = 2

    evaluation_id: str = Field(min_length=1, max_length=64)
    # The batch_audit job that asked (None: POST /api/ai-audit/events/{id}/evaluate).
    job_id: str | None = Field(default=None, min_length=1, max_length=64)
    batch_id: str
    camera_id: str
    analysis: EvaluatedAnalysis
    # The analysis input: the closed batch as the analysis stage read it.
    batch: BatchClosed


class Rubric(_Answer):
    """The judge's answer: 1-5 per criterion and its critique (the analysis's self-critique)."""

    context_usage: int = Field(ge=1, le=5)
    reasoning_coherence: int = Field(ge=1, le=5)
    risk_justification: int = Field(ge=1, le=5)
    actionability: int = Field(ge=1, le=5)
    critique: str = Field(min_length=1, max_length=CRITIQUE_MAX)


class PromptSuggestion(_Answer):
    category: SuggestionCategory
    suggestion: str = Field(min_length=1, max_length=SUGGESTION_MAX)


class Suggestions(_Answer):
    """The judge's answer to "what did the prompt lack for this event?"."""

    suggestions: tuple[PromptSuggestion, ...] = Field(min_length=1, max_length=MAX_SUGGESTIONS)


class QualityScores(_Frozen):
    """0-1 each; None where the step failed. `overall` is the mean of those measured."""

    consistency: float | None = Field(default=None, ge=0, le=1)
    relevance: float | None = Field(default=None, ge=0, le=1)
    coherence: float | None = Field(default=None, ge=0, le=1)
    overall: float | None = Field(default=None, ge=0, le=1)


class ConsistencyEvidence(_Frozen):
    original_score: int = Field(ge=0, le=100)
    repeated_scores: tuple[int, ...]
    seeds: tuple[int, ...]
    temperature: float


class RelevanceEvidence(_Frozen):
    evidence_terms: tuple[str, ...]
    matched: tuple[str, ...]
    invented: tuple[str, ...]
    coverage: float = Field(ge=0, le=1)
    precision: float = Field(ge=0, le=1)


class AblationEvidence(_Frozen):
    """The analysis run again without each upstream model's evidence: its risk score then
    (None: the batch held none of that model's evidence, so nothing was removed)."""

    original_score: int = Field(ge=0, le=100)
    ablated_scores: dict[str, int | None]


class EvaluationEvidence(_Frozen):
    consistency: ConsistencyEvidence | None = None
    relevance: RelevanceEvidence | None = None
    rubric: Rubric | None = None
    ablation: AblationEvidence | None = None


class EventEvaluated(Message):
    """One evaluation of one analysis version of a security event."""

    event_type: Literal["EventEvaluated"] = "EventEvaluated"

    evaluation_id: str = Field(min_length=1, max_length=64)
    job_id: str | None = Field(default=None, min_length=1, max_length=64)
    batch_id: str
    camera_id: str
    analysis_version: int = Field(ge=1)
    prompt_version: int = Field(ge=1)
    # Whose prompt configuration the analysis used (what the suggestions are for).
    prompt_model: str
    # The model that judged (the analyst) and the upstream models whose evidence was ablated.
    judge_model: str
    status: EvaluationStatus
    # Why a step failed, per step (empty when every step was measured).
    failures: dict[Step, str] = Field(default_factory=dict)
    quality: QualityScores
    # Share of the risk score per model (the detector, the vision model, the analyst); sums to 1.
    model_contributions: dict[str, float] | None = None
    prompt_suggestions: tuple[PromptSuggestion, ...] | None = None
    evidence: EvaluationEvidence
    # The audit records of the LLM calls the evaluation made, in order.
    audit_ids: tuple[str, ...] = ()
    duration_ms: float = Field(ge=0)


def rubric_json_schema() -> dict:
    """The judge's rubric answer, constrained."""
    score = {"type": "integer", "minimum": 1, "maximum": 5}
    return {
        "type": "object",
        "additionalProperties": False,
        "required": [*RUBRIC_CRITERIA, "critique"],
        "properties": {
            **{criterion: score for criterion in RUBRIC_CRITERIA},
            "critique": {"type": "string", "minLength": 1, "maxLength": CRITIQUE_MAX},
        },
    }


def suggestions_json_schema() -> dict:
    """The judge's prompt suggestions, constrained."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["suggestions"],
        "properties": {
            "suggestions": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SUGGESTIONS,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["category", "suggestion"],
                    "properties": {
                        "category": {"enum": ["context", "specificity", "format", "missing_data"]},
                        "suggestion": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": SUGGESTION_MAX,
                        },
                    },
                },
            }
        },
    }


class PromptTrial(_Frozen):
    """One configuration a prompt test runs the event's analysis input through."""

    name: Literal["current", "modified", "custom"]
    config: PromptConfig
    # The registry version the configuration is (None: not a version).
    version: int | None = Field(default=None, ge=1)


class TestPrompt(Message):
    """Command: run an event's analysis input through each trial's configuration, fresh,
    and publish the results (`PromptTested`), never a security event."""

    __test__ = False  # not a pytest class

    event_type: Literal["TestPrompt"] = "TestPrompt"
    # v2: the batch is BatchClosed v2 (with its image_count).
    schema_version: int = 2

    test_id: str = Field(min_length=1, max_length=64)
    event_id: int = Field(ge=1)
    batch_id: str
    camera_id: str
    # The prompt whose configurations are tried (ANALYST_PROMPT's).
    model: str
    trials: tuple[PromptTrial, ...] = Field(min_length=1, max_length=2)
    batch: BatchClosed


class TrialOutcome(_Frozen):
    """What one trial answered: the assessment and its cost, or why there is none."""

    name: Literal["current", "modified", "custom"]
    version: int | None = None
    risk_score: int | None = Field(default=None, ge=0, le=100)
    risk_level: RiskLevel | None = None
    summary: str | None = None
    reasoning: str | None = None
    latency_ms: float | None = Field(default=None, ge=0)
    tokens_in: int | None = Field(default=None, ge=0)
    tokens_out: int | None = Field(default=None, ge=0)
    error: str | None = None


class PromptTested(Message):
    """The results of a prompt test, in the order of its trials."""

    __test__ = False

    event_type: Literal["PromptTested"] = "PromptTested"

    test_id: str = Field(min_length=1, max_length=64)
    event_id: int = Field(ge=1)
    batch_id: str
    camera_id: str
    model: str
    outcomes: tuple[TrialOutcome, ...]
