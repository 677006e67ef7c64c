"""The prompt registry's use cases: configure a model's prompt (a new version), restore an
old version, import configurations.

A new version is a `PromptConfigured` on `vigil.prompts` (one partition) proposing the
version after the newest the read model shows. The first proposal of a version on the topic
takes it; the projector and every worker ignore a later one of the same version. So two
changes made at once cannot get one number: the API waits until the read model shows the
version it proposed, and when another change took it, proposes the next one again, or,
when the change was made against an `expected_version`, answers 409.
"""

from __future__ import annotations

from functools import partial

from pydantic import ValidationError
from sqlalchemy.orm import Session

from api.commands import CommandSender, wait_for_read_model
from api.errors import Conflict, NotFound, NotYetVisible
from api.prompt_models import (
    PromptImportError,
    PromptImportOut,
    PromptRestoreOut,
    PromptUpdateOut,
)
from api.queries.prompts import config_of, known_models, latest, version_of
from projections.tables import PromptVersionRow
from schemas.analysis import PromptConfig, PromptConfigured
from schemas.topics import PROMPTS

# How often a change proposes again after other changes took the versions it proposed.
MAX_PROPOSALS = 5


def require_known(session: Session, model: str) -> None:
    if model not in known_models(session):
        raise NotFound(f"no prompt configuration for model {model}")


def configure(
    session: Session,
    sender: CommandSender,
    model: str,
    config: PromptConfig,
    *,
    description: str | None,
    wait_s: float,
    expected_version: int | None = None,
    restored_from: int | None = None,
) -> PromptUpdateOut:
    """Make `config` the model's next version; the version it took."""
    require_known(session, model)
    for _ in range(MAX_PROPOSALS):
        newest = latest(session, model)
        current = newest.version if newest is not None else 0
        if expected_version is not None and expected_version != current:
            raise Conflict(
                f"{model} is at version {current}, not {expected_version}: "
                "read it again and make the change against that version"
            )
        proposal = PromptConfigured(
            model=model,
            version=current + 1,
            config=config,
            description=description,
            restored_from=restored_from,
            producer="vigil/api",
        )
        sender.send(PROMPTS, model, proposal)
        taken = wait_for_read_model(
            session,
            partial(version_of, session, model, proposal.version),
            lambda row: row is not None,
            wait_s=wait_s,
        )
        outcome = PromptUpdateOut(
            model=model,
            version=proposal.version,
            previous_version=current,
            description=description,
            updated_at=proposal.occurred_at,
        )
        if taken is None:
            raise NotYetVisible(outcome.model_copy(update={"status": "pending"}))
        if _is(taken, proposal):
            return outcome
        if expected_version is not None:
            raise Conflict(
                f"another change took {model} version {proposal.version} first: read it "
                "again and make the change against that version"
            )
    raise Conflict(f"{model}: {MAX_PROPOSALS} changes in a row took the version first; try again")


def _is(row: PromptVersionRow, proposal: PromptConfigured) -> bool:
    return row.event_id == str(proposal.event_id)


def restore(
    session: Session,
    sender: CommandSender,
    model: str,
    version: int,
    *,
    description: str | None,
    wait_s: float,
) -> PromptRestoreOut:
    """A new version with an old version's configuration (`restored_from` names it)."""
    require_known(session, model)
    old = version_of(session, model, version)
    if old is None:
        raise NotFound(f"{model} has no version {version}")
    config = config_of(old)
    said = description or f"Restored version {version}"
    try:
        done = configure(
            session, sender, model, config, description=said, wait_s=wait_s, restored_from=version
        )
    except NotYetVisible as pending:
        raise NotYetVisible(_restored(pending.outcome, version, "pending")) from None
    return _restored(done, version, "applied")


def _restored(done, version: int, status: str) -> PromptRestoreOut:
    return PromptRestoreOut(
        model=done.model,
        restored_version=version,
        new_version=done.version,
        description=done.description,
        restored_at=done.updated_at,
        status=status,
    )


def import_prompts(
    session: Session,
    sender: CommandSender,
    prompts: dict[str, dict],
    *,
    overwrite: bool,
    wait_s: float,
) -> PromptImportOut:
    """Each model whole or not at all: a new version of its configuration, skipped when it
    has one and `overwrite` is false, an error (with the reason) when it is unknown or its
    configuration does not validate."""
    known = set(known_models(session))
    imported: list[str] = []
    skipped: list[str] = []
    errors: list[PromptImportError] = []
    for model, raw in prompts.items():
        if model not in known:
            errors.append(PromptImportError(model=model, error=f"unknown model {model}"))
            continue
        try:
            config = PromptConfig.model_validate(raw)
        except ValidationError as exc:
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            errors.append(PromptImportError(model=model, error=f"invalid configuration: {reasons}"))
            continue
        if not overwrite and latest(session, model) is not None:
            skipped.append(model)
            continue
        try:
            configure(session, sender, model, config, description="Imported", wait_s=wait_s)
        except NotYetVisible:
            pass  # on Kafka: it is imported, the read model shows it shortly
        imported.append(model)
    return PromptImportOut(imported=imported, skipped=skipped, errors=errors)
