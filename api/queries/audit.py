"""Read queries for the model-call audit log (`ai_audit`, folded from `vigil.ai-audit`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.prompt_models import AuditEntry
from projections.tables import AuditRow


@dataclass(frozen=True)
class AuditFilter:
    model: str | None = None
    outcome: str | None = None
    camera_id: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


def _filtered(query: Select, f: AuditFilter) -> Select:
    if f.model is not None:
        query = query.where(AuditRow.model_name == f.model)
    if f.outcome is not None:
        query = query.where(AuditRow.outcome == f.outcome)
    if f.camera_id is not None:
        query = query.where(AuditRow.camera_id == f.camera_id)
    if f.start_date is not None:
        query = query.where(AuditRow.created_at >= f.start_date)
    if f.end_date is not None:
        query = query.where(AuditRow.created_at <= f.end_date)
    return query


def list_audits(
    session: Session, f: AuditFilter, limit: int, offset: int
) -> tuple[list[AuditEntry], int]:
    """The matching model calls, newest first, and how many match."""
    total = session.scalar(_filtered(select(func.count()).select_from(AuditRow), f)) or 0
    rows = session.scalars(
        _filtered(select(AuditRow), f)
        .order_by(AuditRow.created_at.desc(), AuditRow.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [AuditEntry.model_validate(row) for row in rows], total
