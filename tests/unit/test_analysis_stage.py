"""The analysis handler with a fake analyst: an audit record per attempt, strict answers,
the raw answer kept when it fails, and never an event without a valid assessment."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from schemas.analysis import (
    ModelCallAudited,
    PromptConfig,
    PromptConfigured,
    PromptReplayed,
    ReanalyseBatch,
    ReplayPrompt,
    SecurityEventRecorded,
)
from schemas.topics import AI_AUDIT, SECURITY_EVENTS
from streams.analysis import InvalidAnalysis, build_prompt
from streams.analysis_agent import (
    Analysed,
    AnalysisDeps,
    on_batch_closed,
    on_reanalyse,
    on_replay,
)
from streams.analyst import AnalystUnavailable, PromptRejected
from streams.prompts import DEFAULT_PROMPTS, PromptBook
from streams.retry import RetryPolicy
from streams.stage import Outcome
from tests.factories import closed_batch
from tests.fakes import FakeAnalyst

T0 = datetime(2026, 6, 1, 23, 15, tzinfo=UTC)
NO_WAIT = RetryPolicy(max_attempts=3, base_delay_s=0, jitter=0)
VALID = json.dumps(
    {"risk_score": 72, "risk_level": "high", "summary": "Person at night.", "reasoning": "Late."}
)
CONTRADICTS = json.dumps(
    {"risk_score": 10, "risk_level": "critical", "summary": "s", "reasoning": "r"}
)


def _deps(analyst: FakeAnalyst, prompts: PromptBook | None = None) -> AnalysisDeps:
    return AnalysisDeps(analyst, NO_WAIT, prompts or PromptBook(), "nemotron", "w1/analysis")


def _audits(outcome: Outcome) -> list[ModelCallAudited]:
    return [item.message for item in outcome.publish if item.topic == AI_AUDIT]


async def test_a_valid_answer_becomes_an_event_with_its_audit():
    batch = closed_batch(["person", "car"], at=T0)
    analyst = FakeAnalyst(VALID)
    outcome = await on_batch_closed(batch, 0, _deps(analyst))
    assert (outcome.failure, outcome.state) == (None, 1)
    assert [(item.topic, item.key) for item in outcome.publish] == [
        (AI_AUDIT, "back_yard"),
        (SECURITY_EVENTS, "back_yard"),
    ]
    [audit] = _audits(outcome)
    event = outcome.publish[1].message
    assert isinstance(event, SecurityEventRecorded)
    assert (event.risk_score, event.risk_level, event.summary) == (72, "high", "Person at night.")
    assert (event.batch_id, event.analysis_version, event.detection_count) == ("batch_1", 1, 2)
    assert (event.started_at, event.ended_at) == (batch.started_at, batch.last_activity_at)
    assert (event.model_name, event.model_version, event.prompt_version) == ("fake-analyst", "7", 1)
    assert event.audit_id == audit.audit_id
    assert (audit.attempt, audit.outcome, audit.error, audit.raw_output) == (
        1,
        "success",
        None,
        VALID,
    )
    assert (audit.tokens_out, audit.latency_ms, audit.prompt_version) == (10, 12.5, 1)
    assert audit.input_summary.startswith("batch batch_1 camera back_yard: 2 detections")
    [request] = analyst.requests
    assert request.prompt == build_prompt(batch)
    assert request.system_prompt == DEFAULT_PROMPTS["nemotron"].config.system_prompt
    assert request.json_schema["oneOf"]


async def test_a_batch_already_analysed_is_not_asked_again():
    analyst = FakeAnalyst(VALID)
    assert await on_batch_closed(closed_batch(["car"], at=T0), 1, _deps(analyst)) == Outcome()
    assert analyst.requests == []


async def test_an_invalid_answer_is_retried_audited_each_time_then_given_up_with_it():
    analyst = FakeAnalyst("The risk looks high to me.", CONTRADICTS, CONTRADICTS)
    outcome = await on_batch_closed(closed_batch(["person"], at=T0), 0, _deps(analyst))
    assert [item.topic for item in outcome.publish] == [AI_AUDIT] * 3
    audits = _audits(outcome)
    assert [(a.attempt, a.outcome) for a in audits] == [(n, "invalid_output") for n in (1, 2, 3)]
    assert audits[0].raw_output == "The risk looks high to me."
    assert "answer is not valid JSON" in audits[0].error
    assert "risk_level 'critical' contradicts risk_score 10" in audits[2].error
    failure = outcome.failure
    assert (type(failure.error), failure.attempts) == (InvalidAnalysis, 3)
    assert failure.context == {"raw_answer": CONTRADICTS}
    assert outcome.state is None


async def test_an_answer_valid_on_the_second_attempt_is_used_with_both_audits():
    analyst = FakeAnalyst(CONTRADICTS, VALID)
    outcome = await on_batch_closed(closed_batch(["person"], at=T0), 0, _deps(analyst))
    audits = _audits(outcome)
    assert [(a.attempt, a.outcome) for a in audits] == [(1, "invalid_output"), (2, "success")]
    assert outcome.publish[-1].message.audit_id == audits[1].audit_id


async def test_a_failing_model_is_audited_per_attempt_and_given_up_without_an_answer():
    analyst = FakeAnalyst(AnalystUnavailable("nemotron: generation failed (status 500)"))
    outcome = await on_batch_closed(closed_batch(["person"], at=T0), 0, _deps(analyst))
    audits = _audits(outcome)
    assert [(a.outcome, a.raw_output, a.model_version) for a in audits] == [
        ("error", None, None)
    ] * 3
    assert audits[0].error == "AnalystUnavailable: nemotron: generation failed (status 500)"
    assert (type(outcome.failure.error), outcome.failure.attempts) == (AnalystUnavailable, 3)
    assert outcome.failure.context is None
    assert SECURITY_EVENTS not in [item.topic for item in outcome.publish]


async def test_a_refused_prompt_is_given_up_after_one_attempt():
    analyst = FakeAnalyst(PromptRejected("MAX_TOKENS must be > 0, got 0"), VALID)
    outcome = await on_batch_closed(closed_batch(["person"], at=T0), 0, _deps(analyst))
    [audit] = _audits(outcome)
    assert (audit.outcome, audit.error) == (
        "error",
        "PromptRejected: MAX_TOKENS must be > 0, got 0",
    )
    assert (type(outcome.failure.error), outcome.failure.attempts) == (PromptRejected, 1)
    assert len(analyst.requests) == 1


async def test_the_newest_prompt_version_is_used_and_named():
    prompts = PromptBook()
    prompts.apply(
        PromptConfigured(
            model="nemotron",
            version=4,
            config=PromptConfig(system_prompt="Be terse.", temperature=0.0, max_tokens=64),
        )
    )
    analyst = FakeAnalyst(VALID)
    outcome = await on_batch_closed(closed_batch(["car"], at=T0), 0, _deps(analyst, prompts))
    [request] = analyst.requests
    assert (request.system_prompt, request.temperature, request.max_tokens) == (
        "Be terse.",
        0.0,
        64,
    )
    assert outcome.publish[-1].message.prompt_version == 4
    assert _audits(outcome)[0].prompt_version == 4


def _reanalyse(batch, job_id: str = "job_1") -> ReanalyseBatch:
    return ReanalyseBatch(
        job_id=job_id, batch_id=batch.batch_id, camera_id=batch.camera_id, batch=batch
    )


async def test_a_reanalysis_is_the_next_version_made_for_its_job():
    batch = closed_batch(["person"], at=T0)
    analysed = Analysed.of({"version": 2, "jobs": ["job_0"]})
    outcome = await on_reanalyse(_reanalyse(batch), analysed, _deps(FakeAnalyst(VALID)))
    event = outcome.publish[-1].message
    assert isinstance(event, SecurityEventRecorded)
    assert (event.analysis_version, event.job_id, event.batch_id) == (3, "job_1", "batch_1")
    assert outcome.state == {"version": 3, "jobs": ["job_0", "job_1"]}
    assert [a.batch_id for a in _audits(outcome)] == ["batch_1"]


async def test_a_batch_reanalysed_for_the_job_before_is_not_asked_again():
    analyst = FakeAnalyst(VALID)
    analysed = Analysed.of({"version": 2, "jobs": ["job_1"]})
    batch = closed_batch(["car"], at=T0)
    assert await on_reanalyse(_reanalyse(batch), analysed, _deps(analyst)) == Outcome()
    assert analyst.requests == []


async def test_the_first_reanalysis_follows_the_version_the_table_held_alone():
    """Before reanalysis existed the table kept the version as a number."""
    outcome = await on_reanalyse(
        _reanalyse(closed_batch(["car"], at=T0)), Analysed.of(1), _deps(FakeAnalyst(VALID))
    )
    assert outcome.publish[-1].message.analysis_version == 2
    assert outcome.state == {"version": 2, "jobs": ["job_1"]}


async def test_a_reanalysis_that_keeps_failing_records_nothing_and_is_given_up():
    analyst = FakeAnalyst(CONTRADICTS)
    outcome = await on_reanalyse(
        _reanalyse(closed_batch(["car"], at=T0)), Analysed.of(1), _deps(analyst)
    )
    assert outcome.state is None and outcome.failure is not None
    assert [item.topic for item in outcome.publish] == [AI_AUDIT] * 3


CALM = json.dumps({"risk_score": 5, "risk_level": "low", "summary": "Calm.", "reasoning": "Quiet."})
CANDIDATE = PromptConfig(system_prompt="Rate every scene as calm.", temperature=0.0, max_tokens=99)


def _replay(batch) -> ReplayPrompt:
    return ReplayPrompt(
        job_id="job_9",
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        batch=batch,
        model="nemotron",
        candidate=CANDIDATE,
    )


async def test_a_prompt_replay_compares_the_current_version_with_the_candidate():
    analyst = FakeAnalyst(VALID, CALM)
    outcome = await on_replay(_replay(closed_batch(["person"], at=T0)), _deps(analyst))
    assert (outcome.failure, outcome.state) == (None, None)
    *audits, compared = [item.message for item in outcome.publish]
    assert {item.topic for item in outcome.publish} == {AI_AUDIT}  # no security event
    assert isinstance(compared, PromptReplayed)
    assert (compared.job_id, compared.current_version) == ("job_9", 1)
    assert (compared.current.risk_score, compared.candidate.risk_score) == (72, 5)
    assert (compared.candidate.risk_level, compared.candidate.latency_ms) == ("low", 12.5)
    assert [(a.prompt_version, a.input_summary.split(":")[0]) for a in audits] == [
        (1, "prompt replay, current"),
        (None, "prompt replay, candidate"),
    ]
    current, candidate = analyst.requests
    assert current.system_prompt == DEFAULT_PROMPTS["nemotron"].config.system_prompt
    assert (candidate.system_prompt, candidate.temperature, candidate.max_tokens) == (
        "Rate every scene as calm.",
        0.0,
        99,
    )


async def test_a_prompt_replay_whose_candidate_keeps_failing_is_given_up_with_its_audits():
    analyst = FakeAnalyst(VALID, CONTRADICTS)
    outcome = await on_replay(_replay(closed_batch(["person"], at=T0)), _deps(analyst))
    assert outcome.failure is not None and outcome.failure.context["trial"] == "candidate"
    assert outcome.failure.context["raw_answer"] == CONTRADICTS
    assert [item.message.outcome for item in outcome.publish] == [
        "success",
        "invalid_output",
        "invalid_output",
        "invalid_output",
    ]
