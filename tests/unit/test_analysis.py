import json
from datetime import UTC, datetime

import jsonschema
import pytest

from schemas.analysis import RISK_BANDS, level_for, risk_json_schema
from streams.analysis import (
    MAX_LISTED_DETECTIONS,
    InvalidAnalysis,
    build_prompt,
    parse_assessment,
    part_of_day,
)
from tests.factories import closed_batch

T0 = datetime(2026, 6, 1, 23, 15, tzinfo=UTC)


def batch(labels: list[str]):
    return closed_batch(labels, at=T0)


def test_prompt_names_camera_time_counts_and_enrichments():
    prompt = build_prompt(batch(["person", "car", "person"]))
    assert "Camera: back_yard" in prompt
    assert "2026-06-01 23:15:00 UTC (night)" in prompt
    assert "activity over 45 seconds in 2 image(s)" in prompt
    assert "Objects: 2 person, 1 car" in prompt
    assert "person (0.50): Person in a dark upper garment" in prompt
    assert "car (0.50)" in prompt


def test_prompt_lists_only_the_strongest_detections():
    prompt = build_prompt(batch(["car"] * (MAX_LISTED_DETECTIONS + 7)))
    assert prompt.count("\n- ") == MAX_LISTED_DETECTIONS
    assert "(7 weaker detections omitted)" in prompt


@pytest.mark.parametrize(
    ("hour", "part"),
    [(6, "morning"), (13, "afternoon"), (19, "evening"), (23, "night"), (3, "night")],
)
def test_part_of_day(hour, part):
    assert part_of_day(T0.replace(hour=hour)) == part


def answer(**fields) -> str:
    base = {
        "risk_score": 72,
        "risk_level": "high",
        "summary": "Person at night.",
        "reasoning": "Unknown person near the door after 23:00.",
    }
    base.update(fields)
    return json.dumps(base)


def test_parse_accepts_a_consistent_answer():
    assessment = parse_assessment(answer())
    assert (assessment.risk_score, assessment.risk_level) == (72, "high")


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("The risk is high.", "not valid JSON"),
        (answer(risk_score=150, risk_level="critical"), "less than or equal to 100"),
        (answer(risk_score=10), "risk_level 'high' contradicts risk_score 10"),
        (answer(risk_level="severe"), "risk_level"),
        (answer(risk_score="72"), "risk_score: Input should be a valid integer"),
        (answer(risk_score=72.5), "risk_score"),
        (answer(summary=""), "summary"),
        (
            json.dumps({"risk_score": 5, "risk_level": "low", "summary": "s"}),
            "reasoning: Field required",
        ),
        (answer(extra="x"), "extra: Extra inputs are not permitted"),
    ],
)
def test_parse_rejects_and_keeps_the_raw_answer(raw, reason):
    with pytest.raises(InvalidAnalysis, match=reason) as caught:
        parse_assessment(raw)
    assert caught.value.raw_answer == raw


def test_level_for_follows_the_bands():
    assert [level_for(s) for s in (0, 29, 30, 59, 60, 84, 85, 100)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
        "critical",
        "critical",
    ]
    with pytest.raises(ValueError):
        level_for(101)


def test_risk_schema_accepts_consistent_and_refuses_contradictions():
    schema = risk_json_schema()
    for level, (low, high) in RISK_BANDS.items():
        jsonschema.validate(json.loads(answer(risk_score=low, risk_level=level)), schema)
        jsonschema.validate(json.loads(answer(risk_score=high, risk_level=level)), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads(answer(risk_score=10, risk_level="high")), schema)
