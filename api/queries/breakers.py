"""Read queries for circuit breakers: every live worker's report, combined per model."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.models import BreakerOut, BreakerWorkerOut, CircuitBreakersOut
from projections.tables import CircuitBreakerRow
from schemas.envelope import utcnow

_SEVERITY = {"closed": 0, "half_open": 1, "open": 2}


def live_breakers(session: Session, stale_s: float) -> list[CircuitBreakerRow]:
    """Reports newer than `stale_s` (older ones belong to workers that are gone)."""
    since = utcnow() - timedelta(seconds=stale_s)
    return list(
        session.scalars(
            select(CircuitBreakerRow)
            .where(CircuitBreakerRow.updated_at >= since)
            .order_by(CircuitBreakerRow.name, CircuitBreakerRow.worker_id)
        )
    )


def circuit_breakers(session: Session, stale_s: float) -> CircuitBreakersOut:
    """Per model: open if any worker's breaker is open, half_open if any is probing."""
    by_name: dict[str, list[CircuitBreakerRow]] = {}
    for row in live_breakers(session, stale_s):
        by_name.setdefault(row.name, []).append(row)
    breakers = {
        name: BreakerOut(
            name=name,
            state=max((r.state for r in rows), key=_SEVERITY.__getitem__),
            failure_count=max(r.failure_count for r in rows),
            total_calls=sum(r.total_calls for r in rows),
            workers={
                r.worker_id: BreakerWorkerOut(
                    state=r.state,
                    failure_count=r.failure_count,
                    total_calls=r.total_calls,
                    updated_at=r.updated_at,
                )
                for r in rows
            },
        )
        for name, rows in by_name.items()
    }
    return CircuitBreakersOut(
        circuit_breakers=breakers,
        total_count=len(breakers),
        open_count=sum(1 for b in breakers.values() if b.state == "open"),
    )
