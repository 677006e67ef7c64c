"""Building the analyst's prompt from a closed batch, and judging its answer. Plain code."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from schemas.analysis import RiskAssessment
from schemas.batches import BatchClosed

MAX_LISTED_DETECTIONS = 40

Answer = TypeVar("Answer", bound=BaseModel)


class InvalidAnalysis(ValueError):
    """The model answered, but not with a valid risk assessment (retried, then dead-lettered)."""

    error_type = "InvalidAnalysis"

    def __init__(self, reason: str, raw_answer: str) -> None:
        super().__init__(reason)
        self.raw_answer = raw_answer


def part_of_day(moment: datetime) -> str:
    hour = moment.hour
    if 5 <= hour < 12:
        return "morning"
    if 12 <= hour < 17:
        return "afternoon"
    if 17 <= hour < 21:
        return "evening"
    return "night"


def build_prompt(batch: BatchClosed, *, objects: bool = True, descriptions: bool = True) -> str:
    """The analyst's input for a batch. An evaluation's ablation leaves out the detector's
    objects (`objects=False`: no counts, labels or confidences, the vision model's
    descriptions alone) or the vision model's descriptions (`descriptions=False`)."""
    counts = Counter(d.label for d in batch.detections)
    images = len({d.image_id for d in batch.detections})
    duration = (batch.last_activity_at - batch.started_at).total_seconds()
    lines = [
        f"Camera: {batch.camera_id}",
        f"Time: {batch.started_at:%Y-%m-%d %H:%M:%S} UTC ({part_of_day(batch.started_at)}), "
        f"activity over {duration:.0f} seconds in {images} image(s)",
    ]
    if objects:
        lines.append("Objects: " + ", ".join(f"{n} {label}" for label, n in counts.most_common()))
    lines.append("Detections:")
    strongest = sorted(batch.detections, key=lambda d: -d.confidence)[:MAX_LISTED_DETECTIONS]
    for d in sorted(strongest, key=lambda d: (d.detected_at, d.image_id, d.position)):
        described = descriptions and d.enrichment is not None
        if objects:
            line = f"- {d.detected_at:%H:%M:%S} {d.label} ({d.confidence:.2f})"
            lines.append(line + (f": {d.enrichment.description}" if described else ""))
        elif described:
            lines.append(f"- {d.detected_at:%H:%M:%S}: {d.enrichment.description}")
    if len(batch.detections) > MAX_LISTED_DETECTIONS:
        lines.append(f"({len(batch.detections) - MAX_LISTED_DETECTIONS} weaker detections omitted)")
    lines.append("Assess the risk of this activity.")
    return "\n".join(lines)


def input_summary(batch: BatchClosed) -> str:
    counts = Counter(d.label for d in batch.detections)
    return (
        f"batch {batch.batch_id} camera {batch.camera_id}: {len(batch.detections)} detections ("
        + ", ".join(f"{n} {label}" for label, n in counts.most_common())
        + f") {batch.started_at.isoformat()}..{batch.closed_at.isoformat()}"
    )


def parse_answer(raw: str, shape: type[Answer], schema_name: str) -> Answer:
    """The model's answer as `shape`, or InvalidAnalysis saying what is wrong."""
    try:
        json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidAnalysis(f"answer is not valid JSON: {exc}", raw) from exc
    try:
        return shape.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'answer'}: {e['msg']}" for e in exc.errors()
        )
        raise InvalidAnalysis(f"answer fails the {schema_name} schema: {problems}", raw) from exc


def parse_assessment(raw: str) -> RiskAssessment:
    """The model's answer as a RiskAssessment, or InvalidAnalysis saying what is wrong."""
    return parse_answer(raw, RiskAssessment, "risk")
