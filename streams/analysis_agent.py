"""Analysis stage: closed batches -> Nemotron on Triton -> security events and audit records.

`on_batch_closed` decides: skip a batch already analysed, else ask the analyst under the
retry policy. `on_reanalyse` does the same for a reanalyse job's command, once per job and
batch, and records the result as the batch's next analysis version: the stage's table keeps
each batch's last version (and the jobs that made one), so no version is written twice.
Every model call is audited, whatever its outcome (one `ModelCallAudited` per attempt). An
answer that fails the risk schema is retried and then dead-lettered with the raw answer; no
event, and no made-up score, is ever written for it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import faust

from schemas.analysis import (
    ModelCallAudited,
    PromptConfigured,
    PromptReplayed,
    ReanalyseBatch,
    ReplayPrompt,
    SecurityEventRecorded,
    TrialResult,
    risk_json_schema,
)
from schemas.batches import BatchClosed
from schemas.envelope import Message
from schemas.topics import AI_AUDIT, ANALYSIS_COMMANDS, ANALYSIS_GROUP, BATCHES, SECURITY_EVENTS
from streams.analysis import (
    Answer,
    InvalidAnalysis,
    build_prompt,
    input_summary,
    parse_assessment,
)
from streams.analyst import Analyst, AnalystAnswer, AnalystRequest
from streams.prompts import PromptBook, follow_prompts
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Failure, Handle, Outcome, Publish, Stage
from streams.transactional import TransactionalStage
from streams.wiring import Wiring

log = logging.getLogger(__name__)


def analyst_request(batch: BatchClosed, prompt: PromptConfigured) -> AnalystRequest:
    """What the analyst is asked about a batch, under a prompt configuration."""
    return AnalystRequest(
        system_prompt=prompt.config.system_prompt,
        prompt=build_prompt(batch),
        temperature=prompt.config.temperature,
        max_tokens=prompt.config.max_tokens,
        json_schema=risk_json_schema(),
    )


@dataclass(frozen=True)
class AnalysisDeps:
    analyst: Analyst
    policy: RetryPolicy
    prompts: PromptBook
    # Whose prompt configuration the analyst uses (ANALYST_PROMPT).
    prompt_name: str
    producer: str
    request_for: Callable[[BatchClosed, PromptConfigured], AnalystRequest] = analyst_request


@dataclass
class AuditTrail:
    """The analyst's calls about one batch, each audited in order, and the calls themselves."""

    batch: BatchClosed
    deps: AnalysisDeps
    # The prompt version the calls use (None: a candidate configuration, a judge's prompt).
    prompt_version: int | None
    audits: list[ModelCallAudited] = field(default_factory=list)
    # What the calls are for, named in each audit's input summary ("prompt replay, current").
    purpose: str | None = None

    def records(self) -> tuple[Publish, ...]:
        return tuple(Publish(AI_AUDIT, self.batch.camera_id, audit) for audit in self.audits)

    def audit(self, outcome: str, answer: AnalystAnswer | None, error: str | None) -> str:
        usage: dict[str, Any] = (
            {
                "model_version": answer.model_version,
                "raw_output": answer.text,
                "tokens_in": answer.tokens_in,
                "tokens_out": answer.tokens_out,
                "latency_ms": answer.latency_ms,
            }
            if answer is not None
            else {"model_version": None, "raw_output": None}
        )
        record = ModelCallAudited(
            audit_id=str(uuid.uuid4()),
            model_name=self.deps.analyst.model_name,
            camera_id=self.batch.camera_id,
            batch_id=self.batch.batch_id,
            prompt_version=self.prompt_version,
            input_summary=(f"{self.purpose}: " if self.purpose else "") + input_summary(self.batch),
            attempt=len(self.audits) + 1,
            outcome=outcome,
            error=error,
            producer=self.deps.producer,
            trace_id=self.batch.trace_id,
            **usage,
        )
        self.audits.append(record)
        return record.audit_id

    async def attempt(
        self, request: AnalystRequest, parse: Callable[[str], Answer] = parse_assessment
    ) -> tuple[Answer, str, str]:
        """One call: the parsed answer, its audit id and the model version, or the failure."""
        try:
            answer = await self.deps.analyst.answer(request)
        except Exception as exc:
            self.audit("error", None, f"{type(exc).__name__}: {exc}")
            raise
        try:
            parsed = parse(answer.text)
        except InvalidAnalysis as exc:
            self.audit("invalid_output", answer, str(exc))
            raise
        return parsed, self.audit("success", answer, None), answer.model_version


@dataclass(frozen=True)
class Analysed:
    """A batch's analyses as the stage's table keeps them: the last version published, and
    the reanalyse jobs that published one."""

    version: int = 0
    jobs: tuple[str, ...] = ()

    @classmethod
    def of(cls, value: int | dict[str, Any]) -> Analysed:
        if isinstance(value, int):  # the version alone, as the table held it before jobs
            return cls(version=value)
        return cls(version=value["version"], jobs=tuple(value["jobs"]))

    def next_by(self, job_id: str) -> dict[str, Any]:
        """The table's value once `job_id` published the next version."""
        return {"version": self.version + 1, "jobs": [*self.jobs, job_id]}


async def on_batch_closed(batch: BatchClosed, analysed: int, deps: AnalysisDeps) -> Outcome:
    """`analysed`: the analysis version published for this batch before (0: none; state: 1)."""
    if analysed:
        log.info("batch %s already analysed; skipping", batch.batch_id)
        return Outcome()
    return await _analyse(batch, 1, deps, state=1)


async def on_reanalyse(command: ReanalyseBatch, analysed: Analysed, deps: AnalysisDeps) -> Outcome:
    """`analysed`: the batch's analyses so far (state: the next version, and this job)."""
    if command.job_id in analysed.jobs:
        log.info("batch %s already reanalysed for %s", command.batch_id, command.job_id)
        return Outcome()
    return await _analyse(
        command.batch,
        analysed.version + 1,
        deps,
        state=analysed.next_by(command.job_id),
        job_id=command.job_id,
    )


async def _analyse(
    batch: BatchClosed, version: int, deps: AnalysisDeps, *, state: Any, job_id: str | None = None
) -> Outcome:
    """Ask the analyst under the retry policy; the event (at `version`) and every call's
    audit, and `state` to record; or the audits and the failure."""
    prompt = deps.prompts.current(deps.prompt_name)
    request = deps.request_for(batch, prompt)
    trail = AuditTrail(batch, deps, prompt.version)
    try:
        assessment, audit_id, model_version = await call_with_retry(
            partial(trail.attempt, request), deps.policy
        )
    except RetryExhausted as exc:
        raw = getattr(exc.last_error, "raw_answer", None)
        context = {"raw_answer": raw} if raw is not None else None
        return Outcome(publish=trail.records(), failure=Failure.after(exc, context))
    event = SecurityEventRecorded(
        batch_id=batch.batch_id,
        camera_id=batch.camera_id,
        analysis_version=version,
        risk_score=assessment.risk_score,
        risk_level=assessment.risk_level,
        summary=assessment.summary,
        reasoning=assessment.reasoning,
        started_at=batch.started_at,
        ended_at=batch.last_activity_at,
        detection_count=len(batch.detections),
        model_name=deps.analyst.model_name,
        model_version=model_version,
        prompt_version=prompt.version,
        audit_id=audit_id,
        job_id=job_id,
        producer=deps.producer,
        trace_id=batch.trace_id,
    )
    return Outcome(
        publish=(*trail.records(), Publish(SECURITY_EVENTS, batch.camera_id, event)), state=state
    )


async def on_replay(command: ReplayPrompt, deps: AnalysisDeps) -> Outcome:
    """The batch analysed with the current version of the prompt and with the candidate
    configuration: every call audited, the comparison published, and no security event."""
    current = deps.prompts.current(command.model)
    candidate = current.model_copy(update={"config": command.candidate})
    audits: list[Publish] = []
    results: list[TrialResult] = []
    for trial, prompt in (("current", current), ("candidate", candidate)):
        version = prompt.version if trial == "current" else None
        trail = AuditTrail(command.batch, deps, version, purpose=f"prompt replay, {trial}")
        request = deps.request_for(command.batch, prompt)
        try:
            assessment, *_ = await call_with_retry(partial(trail.attempt, request), deps.policy)
        except RetryExhausted as exc:
            raw = getattr(exc.last_error, "raw_answer", None)
            context = {"trial": trial, **({"raw_answer": raw} if raw is not None else {})}
            return Outcome(publish=(*audits, *trail.records()), failure=Failure.after(exc, context))
        audits.extend(trail.records())
        answered = trail.audits[-1]
        results.append(
            TrialResult(
                risk_score=assessment.risk_score,
                risk_level=assessment.risk_level,
                summary=assessment.summary,
                latency_ms=answered.latency_ms or 0.0,
                tokens_out=answered.tokens_out or 0,
            )
        )
    replayed = PromptReplayed(
        job_id=command.job_id,
        batch_id=command.batch_id,
        camera_id=command.camera_id,
        model=command.model,
        current_version=current.version,
        current=results[0],
        candidate=results[1],
        producer=deps.producer,
        trace_id=command.trace_id,
    )
    return Outcome(publish=(*audits, Publish(AI_AUDIT, command.camera_id, replayed)))


def once_prompts_ready(prompts: PromptBook, handle: Handle) -> Handle:
    """`handle`, run once the prompt versions the topic held at start are known."""

    async def ready() -> Outcome:
        await prompts.ready.wait()
        outcome = handle()
        return await outcome if inspect.isawaitable(outcome) else outcome

    return ready


def register(wiring: Wiring, analyst: Analyst, policy: RetryPolicy) -> AnalysisDeps:
    """The analysis stage and the prompt follower; the deps, which the evaluator shares."""
    settings = wiring.settings
    stage = Stage("analysis", f"{settings.worker_id}/analysis")
    prompts = PromptBook()
    deps = AnalysisDeps(analyst, policy, prompts, settings.analyst_prompt, stage.producer)
    stop_following = asyncio.Event()

    @wiring.app.task
    async def keep_prompts_current() -> None:
        await follow_prompts(settings.kafka_bootstrap_servers, prompts, stop_following)

    @wiring.app.on_before_shutdown.connect
    async def stop_prompt_follower(app: faust.App, **_: object) -> None:
        stop_following.set()

    # State: batch_id -> its analyses (`Analysed`).
    def route(message: Message, state: Callable[[str], Any]) -> tuple[str | None, Handle] | None:
        if isinstance(message, BatchClosed):
            so_far = Analysed.of(state(message.batch_id) or 0).version
            key, handle = message.batch_id, partial(on_batch_closed, message, so_far, deps)
        elif isinstance(message, ReanalyseBatch):
            analysed = Analysed.of(state(message.batch_id) or 0)
            key, handle = message.batch_id, partial(on_reanalyse, message, analysed, deps)
        elif isinstance(message, ReplayPrompt):
            key, handle = None, partial(on_replay, message, deps)
        else:
            return None  # BatchOpened, DetectionsBatched
        return key, once_prompts_ready(prompts, handle)

    # One batch at a time: a reanalysis decides on the version the one before recorded.
    analysis = TransactionalStage(
        stage,
        ANALYSIS_GROUP,
        {BATCHES: route, ANALYSIS_COMMANDS: route},
        settings,
        linger_s=settings.commit_linger_s,
    )
    wiring.run_stage(analysis)
    return deps
