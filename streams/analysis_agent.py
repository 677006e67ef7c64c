"""Analysis agent: closed batches -> Nemotron on Triton -> security events and audit records.

Every model call is audited, whatever its outcome. An answer that fails the
risk schema is retried under the retry policy and then dead-lettered with the
raw answer; no event, and no made-up score, is ever written for it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import TYPE_CHECKING

import faust

from schemas.analysis import (
    ModelCallAudited,
    RiskAssessment,
    SecurityEventRecorded,
    risk_json_schema,
)
from schemas.batches import BatchClosed
from schemas.topics import BATCHES
from streams.analysis import InvalidAnalysis, build_prompt, input_summary, parse_assessment
from streams.analyst import Analyst, AnalystRequest
from streams.prompts import PromptBook, follow_prompts
from streams.retry import RetryExhausted, RetryPolicy, call_with_retry
from streams.stage import Stage
from vigil.settings import Settings

if TYPE_CHECKING:
    from streams.app import Topics

log = logging.getLogger(__name__)


def register(
    app: faust.App, topics: Topics, analyst: Analyst, policy: RetryPolicy, settings: Settings
) -> None:
    from streams.app import changelog_table, publish

    stage = Stage("analysis", topics.dlq_analysis, f"{settings.worker_id}/analysis")
    book = PromptBook()
    stop_following = asyncio.Event()
    # batch_id -> analysis version published; rebuilt from its changelog on restart.
    analysed = changelog_table(app, "analysed-batches", settings, default=int)

    @app.task
    async def keep_prompts_current() -> None:
        await follow_prompts(settings.kafka_bootstrap_servers, book, stop_following)

    @app.on_before_shutdown.connect
    async def stop_prompt_follower(app: faust.App, **_: object) -> None:
        stop_following.set()

    async def audit(batch: BatchClosed, prompt_version: int, attempt: int, **fields) -> str:
        audit_id = str(uuid.uuid4())
        await publish(
            topics.audit,
            batch.camera_id,
            ModelCallAudited(
                audit_id=audit_id,
                model_name=analyst.model_name,
                camera_id=batch.camera_id,
                batch_id=batch.batch_id,
                prompt_version=prompt_version,
                input_summary=input_summary(batch),
                attempt=attempt,
                producer=stage.producer,
                trace_id=batch.trace_id,
                **fields,
            ),
        )
        return audit_id

    async def assess(batch: BatchClosed) -> tuple[RiskAssessment, str, str, int]:
        prompt = book.current(settings.analyst_prompt)
        request = AnalystRequest(
            system_prompt=prompt.config.system_prompt,
            prompt=build_prompt(batch),
            temperature=prompt.config.temperature,
            max_tokens=prompt.config.max_tokens,
            json_schema=risk_json_schema(),
        )
        attempts = 0

        async def attempt() -> tuple[RiskAssessment, str, str, int]:
            nonlocal attempts
            attempts += 1
            try:
                answer = await analyst.answer(request)
            except Exception as exc:
                await audit(
                    batch,
                    prompt.version,
                    attempts,
                    model_version=None,
                    raw_output=None,
                    outcome="error",
                    error=f"{type(exc).__name__}: {exc}",
                )
                raise
            usage = {
                "model_version": answer.model_version,
                "raw_output": answer.text,
                "tokens_in": answer.tokens_in,
                "tokens_out": answer.tokens_out,
                "latency_ms": answer.latency_ms,
            }
            try:
                assessment = parse_assessment(answer.text)
            except InvalidAnalysis as exc:
                await audit(
                    batch,
                    prompt.version,
                    attempts,
                    outcome="invalid_output",
                    error=str(exc),
                    **usage,
                )
                raise
            audit_id = await audit(batch, prompt.version, attempts, outcome="success", **usage)
            return assessment, audit_id, answer.model_version, prompt.version

        return await call_with_retry(attempt, policy)

    async def on_batch(event: faust.EventT, batch: object) -> None:
        if not isinstance(batch, BatchClosed):
            return
        if analysed[batch.batch_id]:
            log.info("batch %s already analysed; skipping", batch.batch_id)
            return
        try:
            assessment, audit_id, model_version, prompt_version = await assess(batch)
        except RetryExhausted as exc:
            raw = getattr(exc.last_error, "raw_answer", None)
            await stage.give_up(
                event,
                exc,
                batch.camera_id,
                trace_id=batch.trace_id,
                context={"raw_answer": raw} if raw is not None else None,
            )
            return
        await publish(
            topics.events,
            batch.camera_id,
            SecurityEventRecorded(
                batch_id=batch.batch_id,
                camera_id=batch.camera_id,
                analysis_version=1,
                risk_score=assessment.risk_score,
                risk_level=assessment.risk_level,
                summary=assessment.summary,
                reasoning=assessment.reasoning,
                started_at=batch.started_at,
                ended_at=batch.last_activity_at,
                detection_count=len(batch.detections),
                model_name=analyst.model_name,
                model_version=model_version,
                prompt_version=prompt_version,
                audit_id=audit_id,
                producer=stage.producer,
                trace_id=batch.trace_id,
            ),
        )
        analysed[batch.batch_id] = 1

    @app.agent(topics.batches)
    async def analyse(stream: faust.StreamT) -> None:
        async for event in stream.events():
            await stage.handle(event, {BATCHES.name: BATCHES}, on_batch)
