"""The evaluation's figures (plain code) and the evaluator's handler with a fake analyst:
every figure from the calls it names, every call audited, a failed step left None with its
reason, and no number at all once the analyst cannot be reached."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from schemas.analysis import ModelCallAudited, PromptConfig, PromptConfigured, level_for
from schemas.evaluation import (
    EvaluatedAnalysis,
    EvaluateEvent,
    EventEvaluated,
    QualityScores,
    Rubric,
)
from schemas.topics import AI_AUDIT
from streams import evaluation
from streams.analysis import build_prompt
from streams.analysis_agent import AnalysisDeps
from streams.analyst import AnalystUnavailable
from streams.evaluator_agent import EvaluationDeps, on_evaluate
from streams.prompts import PromptBook
from streams.retry import RetryPolicy
from streams.stage import Outcome
from tests.factories import closed_batch
from tests.fakes import FakeAnalyst

T0 = datetime(2026, 6, 1, 23, 15, tzinfo=UTC)
NO_WAIT = RetryPolicy(max_attempts=2, base_delay_s=0, jitter=0)


def _assessment(score: int) -> str:
    level = level_for(score)
    return json.dumps({"risk_score": score, "risk_level": level, "summary": "s", "reasoning": "r"})


RUBRIC = json.dumps(
    {
        "context_usage": 4,
        "reasoning_coherence": 5,
        "risk_justification": 3,
        "actionability": 4,
        "critique": "It ignores the time of day.",
    }
)
SUGGESTIONS = json.dumps(
    {"suggestions": [{"category": "context", "suggestion": "Say whether it is night."}]}
)


def _analysis(score: int = 70, **fields) -> EvaluatedAnalysis:
    values = {
        "analysis_version": 1,
        "risk_score": score,
        "risk_level": "high",
        "summary": "A person stands by the car.",
        "reasoning": "Someone in dark clothing lingers near a vehicle at night.",
        "prompt_version": 1,
    }
    return EvaluatedAnalysis(**{**values, **fields})


def _command(analysis: EvaluatedAnalysis | None = None, labels=("person", "car")) -> EvaluateEvent:
    batch = closed_batch(list(labels), at=T0)
    return EvaluateEvent(
        evaluation_id="ev-1",
        job_id="job-1",
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        analysis=analysis or _analysis(),
        batch=batch,
    )


def _deps(analyst, prompts: PromptBook | None = None) -> EvaluationDeps:
    analysis = AnalysisDeps(analyst, NO_WAIT, prompts or PromptBook(), "nemotron", "w1/evaluator")
    return EvaluationDeps(analysis, detector_model="centernet", enricher_model="crop-attributes")


def _result(outcome: Outcome) -> EventEvaluated:
    result = outcome.publish[-1]
    assert (result.topic, result.key) == (AI_AUDIT, "back_yard")
    return result.message


def _audits(outcome: Outcome) -> list[ModelCallAudited]:
    return [p.message for p in outcome.publish if isinstance(p.message, ModelCallAudited)]


# --- the figures ---------------------------------------------------------------------------


def test_relevance_is_coverage_times_precision_with_the_terms_kept():
    batch = closed_batch(["person", "car", "dog"], at=T0)
    said = _analysis(
        summary="Two people walk past a parked vehicle.",
        reasoning="A bicycle leans on the wall; nobody lingers.",
    )
    found = evaluation.relevance(said, batch)
    assert found.evidence_terms == ("car", "dog", "person")
    assert found.matched == ("car", "person")  # "vehicle" names the car, "people" the person
    assert found.invented == ("bicycle",)
    assert (found.coverage, found.precision) == (0.6667, 0.6667)
    assert evaluation.relevance_score(found) == pytest.approx(0.4444, abs=1e-4)


def test_relevance_counts_the_vision_models_colours_as_evidence():
    batch = closed_batch(["person"], at=T0)
    described = batch.detections[0].model_copy(
        update={
            "enrichment": batch.detections[0].enrichment.model_copy(
                update={"attributes": {"upper_color": "red", "lower_color": "blue"}}
            )
        }
    )
    batch = batch.model_copy(update={"detections": (described,)})
    found = evaluation.relevance(_analysis(summary="A man in red.", reasoning="Alone."), batch)
    assert found.evidence_terms == ("blue", "person", "red")
    assert found.matched == ("person", "red")
    assert (found.coverage, found.precision, found.invented) == (0.6667, 1.0, ())


def test_a_text_that_names_no_object_has_no_coverage():
    batch = closed_batch(["car"], at=T0)
    found = evaluation.relevance(_analysis(summary="Quiet.", reasoning="Nothing odd."), batch)
    assert (found.matched, found.coverage, found.precision) == ((), 0.0, 1.0)


def test_consistency_is_one_minus_the_mean_absolute_change():
    assert evaluation.consistency(70, [70, 70]) == 1.0
    assert evaluation.consistency(70, [60, 90]) == 0.85
    assert evaluation.consistency(0, [100]) == 0.0


def test_coherence_scales_the_rubric_mean_to_zero_one():
    rubric = Rubric.model_validate_json(RUBRIC)
    assert evaluation.coherence(rubric) == 0.75  # mean 4 -> (4 - 1) / 4
    ones = rubric.model_copy(
        update=dict.fromkeys(
            ("context_usage", "reasoning_coherence", "risk_justification", "actionability"), 1
        )
    )
    assert evaluation.coherence(ones) == 0.0


def test_contributions_are_the_ablation_changes_and_the_analyst_has_the_rest():
    shares = evaluation.contributions(70, {"centernet": 40, "crop-attributes": 60}, "nemotron")
    assert shares == {"centernet": 0.3, "crop-attributes": 0.1, "nemotron": 0.6}
    assert sum(shares.values()) == pytest.approx(1)


def test_contributions_beyond_one_are_scaled_down_together():
    shares = evaluation.contributions(90, {"centernet": 10, "crop-attributes": 0}, "nemotron")
    assert shares == {"centernet": 0.4706, "crop-attributes": 0.5294, "nemotron": 0.0}


def test_a_model_with_no_evidence_to_remove_contributes_nothing():
    shares = evaluation.contributions(50, {"centernet": 20, "crop-attributes": None}, "nemotron")
    assert shares == {"centernet": 0.3, "crop-attributes": 0.0, "nemotron": 0.7}


def test_overall_is_the_mean_of_the_measured_figures():
    assert evaluation.overall(QualityScores(consistency=0.9, coherence=0.5)).overall == 0.7
    assert evaluation.overall(QualityScores()).overall is None


def test_ablated_prompts_leave_out_one_models_evidence():
    batch = closed_batch(["person", "car"], at=T0)
    full = build_prompt(batch)
    assert "Objects: 1 person, 1 car" in full
    assert "person (0.50): Person in a dark upper garment" in full
    no_objects = build_prompt(batch, objects=False)
    assert "Objects:" not in no_objects and "car" not in no_objects
    assert "- 23:15:00: Person in a dark upper garment" in no_objects
    no_descriptions = build_prompt(batch, descriptions=False)
    assert "garment" not in no_descriptions
    assert "- 23:15:00 person (0.50)\n" in no_descriptions


# --- the handler -----------------------------------------------------------------------------


async def test_an_evaluation_measures_every_figure_from_its_calls():
    analyst = FakeAnalyst(
        _assessment(70),
        _assessment(60),
        _assessment(40),
        _assessment(64),
        RUBRIC,
        SUGGESTIONS,
        model_name="nemotron",
    )
    outcome = await on_evaluate(_command(), False, _deps(analyst))
    result = _result(outcome)
    assert (result.status, result.failures, outcome.state) == ("evaluated", {}, True)
    assert (result.evaluation_id, result.job_id, result.analysis_version) == ("ev-1", "job-1", 1)
    assert result.evidence.consistency.repeated_scores == (70, 60)
    assert result.evidence.consistency.seeds == (1, 2)
    assert result.evidence.ablation.ablated_scores == {"centernet": 40, "crop-attributes": 64}
    assert result.model_contributions == {
        "centernet": 0.3,
        "crop-attributes": 0.06,
        "nemotron": 0.64,
    }
    assert result.evidence.rubric.critique == "It ignores the time of day."
    assert [s.category for s in result.prompt_suggestions] == ["context"]
    assert result.quality.consistency == 0.95
    assert result.quality.coherence == 0.75
    assert result.quality.relevance == 1.0  # person and car named, nothing invented
    assert result.quality.overall == pytest.approx((0.95 + 0.75 + 1.0) / 3, abs=1e-4)
    audits = _audits(outcome)
    assert [a.audit_id for a in audits] == list(result.audit_ids)
    assert all(a.outcome == "success" for a in audits)
    assert [a.prompt_version for a in audits] == [1, 1, 1, 1, None, None]
    assert audits[0].input_summary.startswith("evaluation ev-1, consistency run with seed 1: ")
    # The calls asked: two seeded re-runs, two ablations at the version's own seed, the judge.
    seeds = [r.seed for r in analyst.requests]
    assert seeds == [1, 2, None, None, None, None]
    assert "Objects:" not in analyst.requests[2].prompt
    assert "garment" not in analyst.requests[3].prompt
    assert analyst.requests[4].json_schema["required"][-1] == "critique"
    assert analyst.requests[5].prompt.startswith("System prompt:\nYou are a security analysis")


async def test_the_version_the_event_used_is_re_run():
    book = PromptBook()
    for version, temperature in ((1, 0.1), (2, 0.7)):
        book.apply(
            PromptConfigured(
                model="nemotron",
                version=version,
                config=PromptConfig(
                    system_prompt=f"prompt v{version}", temperature=temperature, max_tokens=99
                ),
                producer="test",
            )
        )
    analyst = FakeAnalyst(*[_assessment(70)] * 4, RUBRIC, SUGGESTIONS, model_name="nemotron")
    outcome = await on_evaluate(_command(_analysis(prompt_version=1)), False, _deps(analyst, book))
    assert [r.system_prompt for r in analyst.requests[:4]] == ["prompt v1"] * 4
    assert {r.temperature for r in analyst.requests[:4]} == {0.1}
    assert _result(outcome).evidence.consistency.temperature == 0.1


async def test_a_judge_answer_that_is_not_json_leaves_coherence_null():
    analyst = FakeAnalyst(*[_assessment(70)] * 4, "Looks fine to me.", "Still prose.", SUGGESTIONS)
    outcome = await on_evaluate(_command(), False, _deps(analyst))
    result = _result(outcome)
    assert result.status == "partial"
    assert result.quality.coherence is None and result.evidence.rubric is None
    assert result.quality.consistency == 1.0 and result.quality.relevance == 1.0
    assert result.quality.overall == 1.0  # the mean of the figures measured
    assert result.failures["coherence"].startswith(
        "coherence rubric: InvalidAnalysis after 2 attempt(s): answer is not valid JSON"
    )
    assert [a.outcome for a in _audits(outcome)][4:] == [
        "invalid_output",
        "invalid_output",
        "success",
    ]
    assert _audits(outcome)[4].raw_output == "Looks fine to me."


async def test_an_unreachable_analyst_fails_the_evaluation_with_no_number():
    down = AnalystUnavailable("connection refused")
    analyst = FakeAnalyst(down, down)
    outcome = await on_evaluate(_command(), False, _deps(analyst))
    result = _result(outcome)
    assert result.status == "failed"
    assert result.quality == QualityScores()
    assert result.model_contributions is None and result.prompt_suggestions is None
    assert result.evidence.relevance is None
    assert result.failures["consistency"] == (
        "consistency run with seed 1: AnalystUnavailable after 2 attempt(s): connection refused"
    )
    assert result.failures["coherence"].startswith("not attempted: the analyst could not be")
    assert set(result.failures) == {
        "consistency",
        "contributions",
        "coherence",
        "suggestions",
        "relevance",
    }
    assert len(analyst.requests) == 2  # nothing is attempted once it cannot be reached
    assert [a.outcome for a in _audits(outcome)] == ["error", "error"]


async def test_an_evaluation_made_before_is_not_made_again():
    analyst = FakeAnalyst(RUBRIC)
    assert await on_evaluate(_command(), True, _deps(analyst)) == Outcome()
    assert analyst.requests == []


async def test_a_batch_without_descriptions_skips_the_vision_ablation():
    analyst = FakeAnalyst(*[_assessment(70)] * 3, RUBRIC, SUGGESTIONS, model_name="nemotron")
    outcome = await on_evaluate(_command(labels=("car", "car")), False, _deps(analyst))
    result = _result(outcome)
    assert result.evidence.ablation.ablated_scores == {"centernet": 70, "crop-attributes": None}
    assert result.model_contributions == {"centernet": 0.0, "crop-attributes": 0.0, "nemotron": 1.0}
    assert len(analyst.requests) == 5
