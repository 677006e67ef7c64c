"""A message that a stage gave up on, with everything needed to inspect or requeue it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from schemas.envelope import Message

Stage = Literal["detection", "enrichment", "analysis"]


class DeadLettered(Message):
    event_type: Literal["DeadLettered"] = "DeadLettered"

    stage: Stage
    camera_id: str | None = None
    # None for input rejected before it reached a topic (a file outside the camera root).
    source_topic: str | None
    source_partition: int | None = Field(default=None, ge=0)
    source_offset: int | None = Field(default=None, ge=0)
    # The original message as JSON when it parsed as JSON, else its text (or base64 of its bytes).
    original: Any
    original_encoding: Literal["json", "text", "base64"] = "json"
    error_type: str
    error: str
    # Evidence beyond the error text, e.g. {"raw_answer": "..."} for a model answer that failed.
    context: dict[str, Any] | None = None
    attempt_count: int = Field(ge=0)
    first_failed_at: datetime
    last_failed_at: datetime
