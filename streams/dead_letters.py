"""Building dead letters: the original message, where it came from, and why it failed."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from schemas.dead_letters import DeadLettered, Stage
from schemas.envelope import utcnow


def original_payload(raw: bytes | None) -> tuple[Any, str]:
    """The original value as JSON when it parses, else as text, else as base64."""
    raw = raw or b""
    try:
        text = raw.decode()
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode(), "base64"
    if "\x00" in text:  # valid UTF-8, but no JSON store or database text column takes NUL
        return base64.b64encode(raw).decode(), "base64"
    try:
        return json.loads(text), "json"
    except json.JSONDecodeError:
        return text, "text"


def dead_letter(
    *,
    stage: Stage,
    raw: bytes | None,
    error: BaseException,
    producer: str,
    source_topic: str | None,
    source_partition: int | None = None,
    source_offset: int | None = None,
    camera_id: str | None = None,
    attempt_count: int = 1,
    first_failed_at: datetime | None = None,
    last_failed_at: datetime | None = None,
    trace_id: str | None = None,
    context: dict[str, Any] | None = None,
) -> DeadLettered:
    original, encoding = original_payload(raw)
    now = utcnow()
    extra = {"trace_id": trace_id} if trace_id else {}
    return DeadLettered(
        stage=stage,
        camera_id=camera_id,
        source_topic=source_topic,
        source_partition=source_partition,
        source_offset=source_offset,
        original=original,
        original_encoding=encoding,
        error_type=getattr(error, "error_type", type(error).__name__),
        error=str(error) or type(error).__name__,
        attempt_count=attempt_count,
        context=context,
        first_failed_at=first_failed_at or now,
        last_failed_at=last_failed_at or now,
        producer=producer,
        **extra,
    )
