"""Evaluator: `EvaluateEvent` commands -> the analysis re-run, ablated and judged on Triton
-> `EventEvaluated` on the audit topic, every call audited; `TestPrompt` commands -> an
event's input run through prompt configurations under test -> `PromptTested`.

`on_evaluate` measures each figure of `streams.evaluation` on the command's event:
consistency from `repeats` re-runs of the analysis (same input, same prompt version, one
seed each), model contributions from the analysis run without the detector's objects and
without the vision model's descriptions (at the version's own seed, so the evidence is the
only change), coherence from the judge's rubric, suggestions from the judge, relevance from
the text. A step whose calls fail leaves its figures None, with the reason; once the analyst
cannot be reached, the steps after are not attempted. The stage's table keeps the
evaluations made, so a command delivered again (a restart) is not evaluated twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, TypeVar

from schemas.analysis import PromptConfigured
from schemas.envelope import Message
from schemas.evaluation import (
    AblationEvidence,
    ConsistencyEvidence,
    EvaluateEvent,
    EvaluationEvidence,
    EventEvaluated,
    PromptTested,
    QualityScores,
    Rubric,
    Step,
    Suggestions,
    TestPrompt,
    TrialOutcome,
    rubric_json_schema,
    suggestions_json_schema,
)
from schemas.topics import AI_AUDIT, EVALUATION_COMMANDS, EVALUATION_GROUP
from streams import evaluation
from streams.analysis import InvalidAnalysis, build_prompt, parse_answer, parse_assessment
from streams.analysis_agent import AnalysisDeps, AuditTrail, analyst_request, once_prompts_ready
from streams.analyst import AnalystRequest
from streams.retry import RetryExhausted, call_with_retry
from streams.stage import Handle, Outcome, Publish, Stage
from streams.transactional import TransactionalStage
from streams.wiring import Wiring

log = logging.getLogger(__name__)

T = TypeVar("T")

# The steps that call the analyst; an evaluation none of them could make has failed.
MODEL_STEPS: tuple[Step, ...] = ("consistency", "contributions", "coherence", "suggestions")


@dataclass(frozen=True)
class EvaluationDeps:
    analysis: AnalysisDeps
    # The upstream models whose evidence the ablation removes, by the names they run under.
    detector_model: str
    enricher_model: str
    repeats: int = 2
    judge_max_tokens: int = 384


@dataclass
class _Run:
    """One evaluation in progress: its calls' audits, and the steps that failed."""

    command: EvaluateEvent
    deps: EvaluationDeps
    trails: list[AuditTrail] = field(default_factory=list)
    failures: dict[Step, str] = field(default_factory=dict)
    # Why the analyst could not be reached (then no further call is attempted).
    unreachable: str | None = None

    def fail(self, step: Step, reason: str) -> None:
        self.failures.setdefault(step, reason)

    async def ask(
        self,
        step: Step,
        purpose: str,
        request: AnalystRequest,
        parse: Callable[[str], T],
        prompt_version: int | None,
    ) -> T | None:
        """The parsed answer of one call under the retry policy, or None (the step failed)."""
        if self.unreachable is not None:
            self.fail(step, f"not attempted: {self.unreachable}")
            return None
        trail = AuditTrail(
            self.command.batch,
            self.deps.analysis,
            prompt_version,
            purpose=f"evaluation {self.command.evaluation_id}, {purpose}",
        )
        self.trails.append(trail)
        try:
            parsed, *_ = await call_with_retry(
                partial(trail.attempt, request, parse), self.deps.analysis.policy
            )
        except RetryExhausted as exc:
            if not isinstance(exc.last_error, InvalidAnalysis):
                self.unreachable = f"the analyst could not be reached ({exc})"
            self.fail(step, f"{purpose}: {exc}")
            return None
        return parsed

    def records(self) -> tuple[Publish, ...]:
        return tuple(record for trail in self.trails for record in trail.records())

    def audit_ids(self) -> tuple[str, ...]:
        return tuple(audit.audit_id for trail in self.trails for audit in trail.audits)


async def _consistency(run: _Run, prompt: PromptConfigured) -> ConsistencyEvidence | None:
    batch, analysis = run.command.batch, run.command.analysis
    request = analyst_request(batch, prompt)
    seeds = tuple(range(1, run.deps.repeats + 1))
    scores = []
    for seed in seeds:
        answer = await run.ask(
            "consistency",
            f"consistency run with seed {seed}",
            replace(request, seed=seed),
            parse_assessment,
            prompt.version,
        )
        if answer is None:
            return None
        scores.append(answer.risk_score)
    return ConsistencyEvidence(
        original_score=analysis.risk_score,
        repeated_scores=tuple(scores),
        seeds=seeds,
        temperature=prompt.config.temperature,
    )


async def _ablation(run: _Run, prompt: PromptConfigured) -> AblationEvidence | None:
    batch, analysis = run.command.batch, run.command.analysis
    request = analyst_request(batch, prompt)
    vision = evaluation.vision_model(batch, run.deps.enricher_model)
    without = {
        run.deps.detector_model: ("without the detector's objects", {"objects": False}),
        vision: ("without the vision model's descriptions", {"descriptions": False}),
    }
    scores: dict[str, int | None] = {}
    for model, (purpose, leave_out) in without.items():
        if model == vision and not evaluation.has_descriptions(batch):
            scores[model] = None  # the batch holds no description to remove
            continue
        answer = await run.ask(
            "contributions",
            f"ablation {purpose}",
            replace(request, prompt=build_prompt(batch, **leave_out)),
            parse_assessment,
            prompt.version,
        )
        if answer is None:
            return None
        scores[model] = answer.risk_score
    return AblationEvidence(original_score=analysis.risk_score, ablated_scores=scores)


def _judge_request(
    system_prompt: str, prompt: str, schema: dict, max_tokens: int
) -> AnalystRequest:
    return AnalystRequest(
        system_prompt=system_prompt,
        prompt=prompt,
        temperature=0.0,
        max_tokens=max_tokens,
        json_schema=schema,
    )


async def on_evaluate(command: EvaluateEvent, evaluated: bool, deps: EvaluationDeps) -> Outcome:
    """`evaluated`: whether this evaluation was made before (state: True once it is)."""
    if evaluated:
        log.info("evaluation %s was made already; skipping", command.evaluation_id)
        return Outcome()
    log.info(
        "evaluating %s: batch %s v%d (job %s)",
        command.evaluation_id,
        command.batch_id,
        command.analysis.analysis_version,
        command.job_id,
    )
    started = time.monotonic()
    run = _Run(command, deps)
    batch, analysis = command.batch, command.analysis
    analysis_deps = deps.analysis
    try:
        prompt = analysis_deps.prompts.version(analysis_deps.prompt_name, analysis.prompt_version)
    except LookupError as exc:
        prompt = None
        for step in ("consistency", "contributions", "suggestions"):
            run.fail(step, f"cannot re-run the analysis: {exc}")

    consistency = await _consistency(run, prompt) if prompt is not None else None
    ablation = await _ablation(run, prompt) if prompt is not None else None
    rubric = await run.ask(
        "coherence",
        "coherence rubric",
        _judge_request(
            evaluation.JUDGE_SYSTEM_PROMPT,
            evaluation.judge_prompt(batch, analysis),
            rubric_json_schema(),
            deps.judge_max_tokens,
        ),
        partial(parse_answer, shape=Rubric, schema_name="rubric"),
        None,
    )
    suggested = (
        await run.ask(
            "suggestions",
            "prompt suggestions",
            _judge_request(
                evaluation.SUGGESTIONS_SYSTEM_PROMPT,
                evaluation.suggestions_prompt(prompt.config.system_prompt, batch, analysis),
                suggestions_json_schema(),
                deps.judge_max_tokens,
            ),
            partial(parse_answer, shape=Suggestions, schema_name="suggestions"),
            None,
        )
        if prompt is not None
        else None
    )

    failed = all(step in run.failures for step in MODEL_STEPS)
    if failed:
        run.fail("relevance", "not reported: no step that calls the analyst succeeded")
        relevance = None
    else:
        relevance = evaluation.relevance(analysis, batch)
    quality = evaluation.overall(
        QualityScores(
            consistency=(
                evaluation.consistency(analysis.risk_score, consistency.repeated_scores)
                if consistency is not None
                else None
            ),
            relevance=evaluation.relevance_score(relevance) if relevance is not None else None,
            coherence=evaluation.coherence(rubric) if rubric is not None else None,
        )
    )
    result = EventEvaluated(
        evaluation_id=command.evaluation_id,
        job_id=command.job_id,
        batch_id=command.batch_id,
        camera_id=command.camera_id,
        analysis_version=analysis.analysis_version,
        prompt_version=analysis.prompt_version,
        prompt_model=analysis_deps.prompt_name,
        judge_model=analysis_deps.analyst.model_name,
        status="failed" if failed else "partial" if run.failures else "evaluated",
        failures=run.failures,
        quality=quality,
        model_contributions=(
            evaluation.contributions(
                analysis.risk_score, ablation.ablated_scores, analysis_deps.analyst.model_name
            )
            if ablation is not None
            else None
        ),
        prompt_suggestions=suggested.suggestions if suggested is not None else None,
        evidence=EvaluationEvidence(
            consistency=consistency, relevance=relevance, rubric=rubric, ablation=ablation
        ),
        audit_ids=run.audit_ids(),
        duration_ms=round((time.monotonic() - started) * 1000, 1),
        producer=analysis_deps.producer,
        trace_id=command.trace_id,
    )
    return Outcome(
        publish=(*run.records(), Publish(AI_AUDIT, command.camera_id, result)), state=True
    )


async def on_test_prompt(command: TestPrompt, tested: bool, deps: EvaluationDeps) -> Outcome:
    """Each trial's configuration run fresh on the event's input, every call audited as a
    test call; the results published (`PromptTested`), no security event. `tested`: whether
    this test ran before (state: True once it has)."""
    if tested:
        log.info("prompt test %s ran already; skipping", command.test_id)
        return Outcome()
    trails: list[AuditTrail] = []
    outcomes = []
    for trial in command.trials:
        trail = AuditTrail(
            command.batch,
            deps.analysis,
            trial.version,
            purpose=f"prompt test {command.test_id}, {trial.name}",
        )
        trails.append(trail)
        prompt = PromptConfigured(
            model=command.model, version=trial.version or 1, config=trial.config, producer="test"
        )
        try:
            assessment, *_ = await call_with_retry(
                partial(trail.attempt, analyst_request(command.batch, prompt)),
                deps.analysis.policy,
            )
        except RetryExhausted as exc:
            outcomes.append(TrialOutcome(name=trial.name, version=trial.version, error=str(exc)))
            continue
        answered = trail.audits[-1]
        outcomes.append(
            TrialOutcome(
                name=trial.name,
                version=trial.version,
                **assessment.model_dump(),
                latency_ms=answered.latency_ms,
                tokens_in=answered.tokens_in,
                tokens_out=answered.tokens_out,
            )
        )
    tested_event = PromptTested(
        test_id=command.test_id,
        event_id=command.event_id,
        batch_id=command.batch_id,
        camera_id=command.camera_id,
        model=command.model,
        outcomes=tuple(outcomes),
        producer=deps.analysis.producer,
        trace_id=command.trace_id,
    )
    audits = tuple(record for trail in trails for record in trail.records())
    return Outcome(
        publish=(*audits, Publish(AI_AUDIT, command.camera_id, tested_event)), state=True
    )


def register(wiring: Wiring, analysis: AnalysisDeps) -> TransactionalStage:
    settings = wiring.settings
    stage = Stage("analysis", f"{settings.worker_id}/evaluator")
    deps = EvaluationDeps(
        analysis=replace(analysis, producer=stage.producer),
        detector_model=settings.detector_model,
        enricher_model=settings.enricher_model,
        repeats=settings.evaluation_repeats,
        judge_max_tokens=settings.evaluation_max_tokens,
    )

    # State: evaluation_id or test_id -> True once its result is published.
    def route(message: Message, done: Callable[[str], Any]) -> tuple[str, Handle] | None:
        if isinstance(message, EvaluateEvent):
            key = message.evaluation_id
            handle = partial(on_evaluate, message, bool(done(key)), deps)
        elif isinstance(message, TestPrompt):
            key = message.test_id
            handle = partial(on_test_prompt, message, bool(done(key)), deps)
        else:
            return None
        return key, once_prompts_ready(analysis.prompts, handle)

    evaluator = TransactionalStage(
        stage,
        EVALUATION_GROUP,
        {EVALUATION_COMMANDS: route},
        settings,
        once_per_key=True,
        linger_s=settings.commit_linger_s,
    )
    wiring.run_stage(evaluator)
    return evaluator
