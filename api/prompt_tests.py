"""Prompt testing: run an event's analysis input through the current configuration and a
modified one (`POST /prompts/test`), or through one custom prompt (`POST /test-prompt`),
fresh, on the worker's analyst; or replay weeks of batches through a candidate (`days`: a
prompt_replay job).

Everything a request can get wrong is checked before any model is called: an unknown event
or model answers 404, a prompt that is not the analyst's or a bad configuration 422, an
event whose input is gone from the batches topic 409. The test is a `TestPrompt` command to
the evaluator; its results come back as `PromptTested` (the calls audited as test calls,
no security event, no new version), and the API waits for them: an LLM call takes seconds.
"""

from __future__ import annotations

import uuid
from functools import partial

from fastapi.exceptions import RequestValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.audit_models import (
    CustomPromptIn,
    CustomPromptOut,
    PromptComparison,
    PromptReplayStarted,
    PromptTestIn,
    PromptTestOut,
    TrialResultOut,
)
from api.commands import CommandSender, wait_for_read_model
from api.errors import Conflict, NotYetVisible, found
from api.job_commands import request_job
from api.prompt_commands import require_known
from api.queries.prompts import config_of, latest
from jobs import batch_audit, prompt_replay
from projections.tables import PromptTestRow, SecurityEventRow
from schemas.analysis import PromptConfig
from schemas.evaluation import PromptTrial, TestPrompt
from schemas.topics import EVALUATION_COMMANDS
from vigil.settings import Settings


def _require_analyst_prompt(model: str, settings: Settings) -> None:
    if model != settings.analyst_prompt:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "model"),
                    "msg": f"only the analyst's prompt ({settings.analyst_prompt}) runs on an "
                    "event's analysis input",
                    "type": "value_error",
                }
            ]
        )


def _run(
    session: Session,
    sender: CommandSender,
    settings: Settings,
    event_id: int,
    model: str,
    trials: list[PromptTrial],
    wait_s: float,
) -> tuple[str, PromptTestRow | None]:
    event = found(session.get(SecurityEventRow, event_id), f"event {event_id}")
    batch = batch_audit.analysis_inputs(session, settings.kafka_bootstrap_servers, [event]).get(
        event.batch_id
    )
    if batch is None:
        raise Conflict(
            f"event {event_id}: its batch {event.batch_id} is no longer on the batches topic"
        )
    command = TestPrompt(
        test_id=uuid.uuid4().hex,
        event_id=event.id,
        batch_id=event.batch_id,
        camera_id=event.camera_id,
        model=model,
        trials=tuple(trials),
        batch=batch,
        trace_id=batch.trace_id,
    )
    sender.send(EVALUATION_COMMANDS, event.camera_id, command)
    row = wait_for_read_model(
        session,
        partial(test_result, session, command.test_id),
        lambda shown: shown is not None,
        wait_s=wait_s,
    )
    return command.test_id, row


def test_result(session: Session, test_id: str) -> PromptTestRow | None:
    return session.scalars(select(PromptTestRow).where(PromptTestRow.test_id == test_id)).first()


def _result(outcome: dict) -> TrialResultOut:
    tokens = [outcome.get("tokens_in"), outcome.get("tokens_out")]
    return TrialResultOut(
        risk_score=outcome.get("risk_score"),
        risk_level=outcome.get("risk_level"),
        summary=outcome.get("summary"),
        reasoning=outcome.get("reasoning"),
        latency_ms=outcome.get("latency_ms"),
        tokens_used=sum(tokens) if None not in tokens else None,
        prompt_version=outcome.get("version"),
        error=outcome.get("error"),
    )


def comparison_out(row: PromptTestRow) -> PromptTestOut:
    current, modified = (_result(o) for o in row.outcomes)
    both = current.error is None and modified.error is None
    return PromptTestOut(
        test_id=row.test_id,
        event_id=row.event_id,
        model=row.model,
        current_result=current,
        modified_result=modified,
        comparison=PromptComparison(
            risk_score_diff=modified.risk_score - current.risk_score if both else None,
            latency_diff_ms=round(modified.latency_ms - current.latency_ms, 1) if both else None,
        ),
    )


def custom_out(row: PromptTestRow) -> CustomPromptOut:
    [result] = (_result(o) for o in row.outcomes)
    return CustomPromptOut(
        test_id=row.test_id,
        event_id=row.event_id,
        result=result,
        latency_ms=result.latency_ms,
        tokens_used=result.tokens_used,
    )


def test_prompt(
    session: Session, sender: CommandSender, settings: Settings, body: PromptTestIn, wait_s: float
) -> PromptTestOut | PromptReplayStarted:
    require_known(session, body.model)
    _require_analyst_prompt(body.model, settings)
    if body.days is not None:
        params = prompt_replay.PromptReplayParams(
            days=body.days, camera_id=body.camera_id, model=body.model, candidate=body.config
        )
        job = request_job(
            sender,
            prompt_replay.JOB,
            params.model_dump(mode="json"),
            max_attempts=settings.job_max_attempts,
        )
        return PromptReplayStarted(
            job_id=job.job_id,
            model=body.model,
            days=body.days,
            camera_id=body.camera_id,
            message="Prompt replay queued: follow it at /api/jobs/{job_id}",
        )
    current = found(latest(session, body.model), f"prompt configuration of {body.model}")
    trials = [
        PromptTrial(name="current", config=config_of(current), version=current.version),
        PromptTrial(name="modified", config=body.config),
    ]
    assert body.event_id is not None
    test_id, row = _run(session, sender, settings, body.event_id, body.model, trials, wait_s)
    if row is None:
        raise NotYetVisible(_pending_comparison(test_id, body))
    return comparison_out(row)


def _pending_comparison(test_id: str, body: PromptTestIn) -> PromptTestOut:
    return PromptTestOut(
        test_id=test_id,
        event_id=body.event_id or 0,
        model=body.model,
        status="pending",
        current_result=None,
        modified_result=None,
        comparison=None,
    )


def test_custom_prompt(
    session: Session,
    sender: CommandSender,
    settings: Settings,
    body: CustomPromptIn,
    wait_s: float,
) -> CustomPromptOut:
    require_known(session, body.model)
    _require_analyst_prompt(body.model, settings)
    config = PromptConfig(
        system_prompt=body.custom_prompt, temperature=body.temperature, max_tokens=body.max_tokens
    )
    trials = [PromptTrial(name="custom", config=config)]
    test_id, row = _run(session, sender, settings, body.event_id, body.model, trials, wait_s)
    if row is None:
        raise NotYetVisible(
            CustomPromptOut(
                test_id=test_id,
                event_id=body.event_id,
                status="pending",
                result=None,
                latency_ms=None,
                tokens_used=None,
            )
        )
    return custom_out(row)


def read_test(session: Session, test_id: str) -> PromptTestOut | CustomPromptOut:
    row = found(test_result(session, test_id), f"prompt test {test_id}")
    return custom_out(row) if len(row.outcomes) == 1 else comparison_out(row)
