"""Events and commands about the pipeline itself: breakers, dead-letter handling."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from schemas.dead_letters import Stage
from schemas.envelope import Message

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreakerChanged(Message):
    """A worker's breaker changed state, or reports its counters (`previous_state` == `state`)."""

    event_type: Literal["CircuitBreakerChanged"] = "CircuitBreakerChanged"

    worker_id: str
    name: str
    state: BreakerState
    previous_state: BreakerState
    failure_count: int = Field(ge=0)
    total_calls: int = Field(ge=0)


class ResetCircuitBreaker(Message):
    """Command: every worker closes its breaker of this name."""

    event_type: Literal["ResetCircuitBreaker"] = "ResetCircuitBreaker"

    name: str


class DeadLetterRequeued(Message):
    """A dead letter's original message went back to its source topic."""

    event_type: Literal["DeadLetterRequeued"] = "DeadLetterRequeued"

    dead_letter_id: str
    stage: Stage
    source_topic: str
    requeued_partition: int = Field(ge=0)
    requeued_offset: int = Field(ge=0)


class DeadLettersCleared(Message):
    """Dead letters deleted for good, named one by one so a replay clears the same ones."""

    event_type: Literal["DeadLettersCleared"] = "DeadLettersCleared"

    stage: Stage
    dead_letter_ids: tuple[str, ...]
