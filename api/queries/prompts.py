"""Read queries for the prompt registry (`prompt_versions`, folded from `vigil.prompts`)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from api.prompt_models import PromptOut, PromptVersionOut
from projections.tables import PromptVersionRow
from schemas.analysis import PromptConfig
from schemas.prompts import DEFAULT_PROMPTS


def known_models(session: Session) -> list[str]:
    """The models that take a prompt: those with a default, and any with a configuration."""
    configured = session.scalars(select(PromptVersionRow.model).distinct()).all()
    return sorted({*DEFAULT_PROMPTS, *configured})


def latest(session: Session, model: str) -> PromptVersionRow | None:
    return session.scalars(
        select(PromptVersionRow)
        .where(PromptVersionRow.model == model)
        .order_by(PromptVersionRow.version.desc())
        .limit(1)
    ).first()


def current_versions(session: Session) -> dict[str, PromptVersionRow]:
    """Each configured model's newest version."""
    rows = session.scalars(
        select(PromptVersionRow)
        .ext(distinct_on(PromptVersionRow.model))
        .order_by(PromptVersionRow.model, PromptVersionRow.version.desc())
    )
    return {row.model: row for row in rows}


def config_of(row: PromptVersionRow) -> PromptConfig:
    return PromptConfig(
        system_prompt=row.system_prompt, temperature=row.temperature, max_tokens=row.max_tokens
    )


def version_of(session: Session, model: str, version: int) -> PromptVersionRow | None:
    return session.get(PromptVersionRow, (model, version))


def prompt_out(row: PromptVersionRow) -> PromptOut:
    return PromptOut(
        model=row.model,
        system_prompt=row.system_prompt,
        temperature=row.temperature,
        max_tokens=row.max_tokens,
        version=row.version,
        description=row.description,
        restored_from=row.restored_from,
        created_at=row.created_at,
    )


def history(
    session: Session, model: str, limit: int, offset: int
) -> tuple[list[PromptVersionOut], int]:
    """The model's versions, newest first, and how many it has."""
    where = PromptVersionRow.model == model
    total = session.scalar(select(func.count()).where(where)) or 0
    rows = session.scalars(
        select(PromptVersionRow)
        .where(where)
        .order_by(PromptVersionRow.version.desc())
        .limit(limit)
        .offset(offset)
    )
    return [
        PromptVersionOut(
            version=r.version,
            system_prompt=r.system_prompt,
            temperature=r.temperature,
            max_tokens=r.max_tokens,
            description=r.description,
            restored_from=r.restored_from,
            created_at=r.created_at,
        )
        for r in rows
    ], total
