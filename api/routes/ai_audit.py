"""The AI-audit area: the audit log (`GET /api/ai-audit`, from the `ai_audit` read model),
the evaluations of events (`/events/{id}`, `/events/{id}/evaluate`, `/batch`, `/stats`,
`/leaderboard`, `/recommendations`: `api/evaluation_commands.py` and the
`event_evaluations` read model) and the prompt registry (`/api/ai-audit/prompts...`,
`/api/ai-audit/prompt-config/{model}`): reads answer from the `prompt_versions` read
model, changes go to `vigil.prompts` as new versions (`api/prompt_commands.py`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, Path, Query

from api import prompt_tests
from api.audit_models import (
    AuditStats,
    BatchAuditIn,
    BatchAuditOut,
    CustomPromptIn,
    CustomPromptOut,
    EventAuditOut,
    Leaderboard,
    PromptReplayStarted,
    PromptTestIn,
    PromptTestOut,
    Recommendations,
)
from api.deps import ServicesDep, SessionDep
from api.errors import found
from api.evaluation_commands import audit_many, evaluate
from api.pagination import BIGINT_MAX, DateRange, Pagination, row_id
from api.prompt_commands import configure, import_prompts, require_known, restore
from api.prompt_models import (
    AuditList,
    PromptConfigIn,
    PromptConfigOut,
    PromptEntry,
    PromptExport,
    PromptHistories,
    PromptHistory,
    PromptImportIn,
    PromptImportOut,
    PromptList,
    PromptOut,
    PromptRestoreIn,
    PromptRestoreOut,
    PromptUpdateOut,
)
from api.queries import evaluations
from api.queries.audit import AuditFilter, list_audits
from api.queries.prompts import (
    config_of,
    current_versions,
    history,
    known_models,
    latest,
    prompt_out,
    version_of,
)
from api.security import resource_routers
from projections.tables import SecurityEventRow
from schemas.envelope import utcnow

read, write = resource_routers("/api/ai-audit", "ai-audit")

_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown model or version"}}
_NO_EVENT: dict[int | str, dict[str, Any]] = {404: {"description": "Unknown event"}}

EventId = Annotated[int, row_id("event")]
Days = Annotated[int, Query(ge=1, le=90, description="Days to include")]


def _current(session, model: str) -> PromptOut:
    require_known(session, model)
    return prompt_out(found(latest(session, model), f"prompt configuration of {model}"))


@read.get("", response_model=AuditList)
def read_audit_log(
    session: SessionDep,
    page: Pagination,
    dates: DateRange,
    model: Annotated[str | None, Query(min_length=1, description="Model name")] = None,
    outcome: Annotated[Literal["success", "invalid_output", "error"] | None, Query()] = None,
    camera_id: Annotated[str | None, Query(min_length=1)] = None,
) -> AuditList:
    """Every model call audited (newest first): input summary, raw output, tokens, latency,
    outcome, the prompt version it used."""
    filters = AuditFilter(
        model=model,
        outcome=outcome,
        camera_id=camera_id,
        start_date=dates.start_date,
        end_date=dates.end_date,
    )
    audits, total = list_audits(session, filters, page.limit, page.offset)
    return AuditList(audits=audits, count=total, limit=page.limit, offset=page.offset)


@read.get("/events/{event_id}", response_model=EventAuditOut, responses=_NO_EVENT)
def read_event_audit(session: SessionDep, event_id: EventId) -> EventAuditOut:
    """The evaluation of the event's newest analysis (`status` not_evaluated until one)."""
    event = found(session.get(SecurityEventRow, event_id), f"event {event_id}")
    newest = evaluations.newest_evaluation(session, event.batch_id, event.analysis_version)
    return evaluations.event_audit(event, newest)


@write.post(
    "/events/{event_id}/evaluate",
    response_model=EventAuditOut,
    responses={
        **_NO_EVENT,
        202: {"model": EventAuditOut, "description": "Evaluating; not done within the wait"},
        409: {"description": "The event's batch is no longer on the batches topic"},
    },
)
def evaluate_event(
    session: SessionDep,
    services: ServicesDep,
    event_id: EventId,
    force: Annotated[bool, Query(description="Evaluate again if evaluated")] = False,
) -> EventAuditOut:
    """Evaluate the event's newest analysis: consistency, relevance, coherence, model
    contributions and prompt suggestions, each measured on this event (README: Evaluation)."""
    event = found(session.get(SecurityEventRow, event_id), f"event {event_id}")
    return evaluate(
        session,
        services.commands,
        services.settings.kafka_bootstrap_servers,
        event,
        force=force,
        wait_s=services.read_your_writes_wait_s,
    )


@write.post("/batch", response_model=BatchAuditOut, responses=_NO_EVENT)
def audit_batch(session: SessionDep, services: ServicesDep, body: BatchAuditIn) -> BatchAuditOut:
    """A batch_audit job over `event_ids` and the events the filters match (progress, cancel
    and abort through /api/jobs/{job_id})."""
    return audit_many(
        session, services.commands, body, max_attempts=services.settings.job_max_attempts
    )


@read.get("/stats", response_model=AuditStats)
def read_stats(
    session: SessionDep,
    days: Days = 7,
    camera_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
) -> AuditStats:
    return evaluations.stats(session, days, camera_id)


@read.get("/leaderboard", response_model=Leaderboard)
def read_leaderboard(session: SessionDep, days: Days = 7) -> Leaderboard:
    """Models ranked by their mean measured contribution to the risk scores."""
    return evaluations.leaderboard(session, days)


@read.get("/recommendations", response_model=Recommendations)
def read_recommendations(session: SessionDep, days: Days = 7) -> Recommendations:
    """The evaluations' prompt suggestions, grouped by category and wording."""
    return evaluations.recommendations(session, days)


@write.post(
    "/prompts/test",
    response_model=PromptTestOut | PromptReplayStarted,
    responses={
        404: {"description": "Unknown event or model"},
        202: {"model": PromptTestOut, "description": "Still running; read it by its test_id"},
        409: {"description": "The event's batch is no longer on the batches topic"},
    },
)
def test_prompt_config(
    session: SessionDep, services: ServicesDep, body: PromptTestIn
) -> PromptTestOut | PromptReplayStarted:
    """The event's analysis input through the current version and the modified
    configuration, both fresh, compared; or, with `days`, a prompt_replay job over the
    closed batches of those days. No event is written and no version changes."""
    return prompt_tests.test_prompt(
        session, services.commands, services.settings, body, services.settings.prompt_test_wait_s
    )


@read.get(
    "/prompts/test/{test_id}",
    response_model=PromptTestOut | CustomPromptOut,
    responses={404: {"description": "Unknown test"}},
)
def read_prompt_test(
    session: SessionDep, test_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> PromptTestOut | CustomPromptOut:
    """A prompt test's results, once its answers are in (after a 202)."""
    return prompt_tests.read_test(session, test_id)


@write.post(
    "/test-prompt",
    response_model=CustomPromptOut,
    responses={
        404: {"description": "Unknown event or model"},
        202: {"model": CustomPromptOut, "description": "Still running; read it by its test_id"},
        409: {"description": "The event's batch is no longer on the batches topic"},
    },
)
def test_custom_prompt(
    session: SessionDep, services: ServicesDep, body: CustomPromptIn
) -> CustomPromptOut:
    """The event's analysis input through one custom system prompt (the playground)."""
    return prompt_tests.test_custom_prompt(
        session, services.commands, services.settings, body, services.settings.prompt_test_wait_s
    )


@read.get("/prompts", response_model=PromptList)
def read_prompts(session: SessionDep) -> PromptList:
    """Every model's current configuration."""
    return PromptList(
        prompts={
            model: PromptEntry(**prompt_out(row).model_dump(exclude={"model"}))
            for model, row in current_versions(session).items()
        }
    )


@read.get("/prompts/history", response_model=PromptHistories)
def read_all_history(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Max versions per model")] = 10,
) -> PromptHistories:
    entries = {}
    for model in known_models(session):
        versions, total = history(session, model, limit, 0)
        entries[model] = PromptHistory(model=model, versions=versions, total=total)
    return PromptHistories(history=entries)


@read.get("/prompts/history/{model}", response_model=PromptHistory, responses=_UNKNOWN)
def read_model_history(
    session: SessionDep,
    model: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0,
) -> PromptHistory:
    """The model's versions, newest first."""
    require_known(session, model)
    versions, total = history(session, model, limit, offset)
    return PromptHistory(model=model, versions=versions, total=total)


@write.post("/prompts/history/{version}", response_model=PromptRestoreOut, responses=_UNKNOWN)
def restore_version(
    session: SessionDep,
    services: ServicesDep,
    version: Annotated[int, Path(ge=1, le=2**31 - 1, description="The version to restore")],
    model: Annotated[str, Query(min_length=1)],
    body: Annotated[PromptRestoreIn | None, Body()] = None,
) -> PromptRestoreOut:
    """A new version with the configuration of `version` (`restored_from` names it)."""
    return restore(
        session,
        services.commands,
        model,
        version,
        description=body.description if body is not None else None,
        wait_s=services.read_your_writes_wait_s,
    )


@read.get("/prompts/export", response_model=PromptExport)
def export_prompts(session: SessionDep) -> PromptExport:
    prompts = {model: config_of(row) for model, row in current_versions(session).items()}
    return PromptExport(prompts=prompts, exported_at=utcnow())


@write.post("/prompts/import", response_model=PromptImportOut)
def import_configurations(
    session: SessionDep, services: ServicesDep, body: PromptImportIn
) -> PromptImportOut:
    return import_prompts(
        session,
        services.commands,
        body.prompts,
        overwrite=body.overwrite,
        wait_s=services.read_your_writes_wait_s,
    )


@read.get("/prompts/{model}", response_model=PromptOut, responses=_UNKNOWN)
def read_prompt(session: SessionDep, model: str) -> PromptOut:
    return _current(session, model)


@write.put("/prompts/{model}", response_model=PromptUpdateOut, responses=_UNKNOWN)
def update_prompt(
    session: SessionDep, services: ServicesDep, model: str, body: PromptConfigIn
) -> PromptUpdateOut:
    """A new version of the model's configuration; 409 if `expected_version` is stale."""
    return configure(
        session,
        services.commands,
        model,
        body.config(),
        description=body.description,
        expected_version=body.expected_version,
        wait_s=services.read_your_writes_wait_s,
    )


@read.get("/prompt-config/{model}", response_model=PromptConfigOut, responses=_UNKNOWN)
def read_prompt_config(session: SessionDep, model: str) -> PromptConfigOut:
    current = _current(session, model)
    return PromptConfigOut(**current.model_dump(include=set(PromptConfigOut.model_fields)))


@write.put("/prompt-config/{model}", response_model=PromptConfigOut, responses=_UNKNOWN)
def update_prompt_config(
    session: SessionDep, services: ServicesDep, model: str, body: PromptConfigIn
) -> PromptConfigOut:
    """The same registry as PUT /prompts/{model}, answered in the configuration's shape."""
    done = configure(
        session,
        services.commands,
        model,
        body.config(),
        description=body.description,
        expected_version=body.expected_version,
        wait_s=services.read_your_writes_wait_s,
    )
    taken = prompt_out(found(version_of(session, model, done.version), f"{model} v{done.version}"))
    return PromptConfigOut(**taken.model_dump(include=set(PromptConfigOut.model_fields)))
