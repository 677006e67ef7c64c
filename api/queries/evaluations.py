"""Read queries over the evaluations of security events (`event_evaluations`): an event's
audit, and the aggregates of a window (stats, leaderboard, recommendations).

The aggregates take each event's newest evaluation in the window that measured something
(status `evaluated` or `partial`), so an event evaluated twice counts once.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, distinct, func, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from api.audit_models import (
    AuditStats,
    EvaluationOut,
    EventAuditOut,
    Leaderboard,
    LeaderboardEntry,
    ModelStats,
    QualityAverages,
    QualityScoresOut,
    Recommendation,
    Recommendations,
    TokenUsage,
)
from api.queries.counts import calls_since
from jobs.batch_audit import SETTLED
from projections.tables import (
    AuditRow,
    DetectionRow,
    EnrichmentRow,
    EvaluationRow,
    SecurityEventRow,
)
from schemas.evaluation import PromptSuggestion

# A suggestion raised by at least this share of the evaluated events is high priority, by
# at least the second medium, else low.
PRIORITY_SHARES = (("high", 0.25), ("medium", 0.10))
# Pearson's correlation needs this many evaluations to be worth reporting.
MIN_CORRELATED = 3


def newest_evaluation(session: Session, batch_id: str, version: int) -> EvaluationRow | None:
    return session.scalars(
        select(EvaluationRow)
        .where(EvaluationRow.batch_id == batch_id, EvaluationRow.analysis_version == version)
        .order_by(EvaluationRow.created_at.desc(), EvaluationRow.id.desc())
        .limit(1)
    ).first()


def evaluation_count(session: Session, batch_id: str, version: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(EvaluationRow)
            .where(EvaluationRow.batch_id == batch_id, EvaluationRow.analysis_version == version)
        )
        or 0
    )


def evaluation_by_id(session: Session, evaluation_id: str) -> EvaluationRow | None:
    return session.scalars(
        select(EvaluationRow).where(EvaluationRow.evaluation_id == evaluation_id)
    ).first()


def is_settled(row: EvaluationRow | None) -> bool:
    """An evaluation that measured something: answered as it is unless forced."""
    return row is not None and row.status in SETTLED


def event_audit(event: SecurityEventRow, row: EvaluationRow | None) -> EventAuditOut:
    if row is None:
        return EventAuditOut(
            event_id=event.id,
            audit_id=None,
            status="not_evaluated",
            model_contributions=None,
            quality_scores=None,
            prompt_suggestions=None,
            created_at=None,
            evaluation=None,
        )
    suggestions = (
        [PromptSuggestion.model_validate(s) for s in row.prompt_suggestions]
        if row.prompt_suggestions is not None
        else None
    )
    rubric = row.evidence.get("rubric") or {}
    return EventAuditOut(
        event_id=event.id,
        audit_id=row.id,
        status=row.status,
        reason="; ".join(f"{step}: {why}" for step, why in row.failures.items()) or None,
        model_contributions=row.model_contributions,
        quality_scores=QualityScoresOut(
            coherence=row.coherence,
            relevance=row.relevance,
            consistency=row.consistency,
            overall=row.overall,
        ),
        prompt_suggestions=[s.suggestion for s in suggestions] if suggestions is not None else None,
        created_at=row.created_at,
        evaluation=EvaluationOut(
            evaluation_id=row.evaluation_id,
            analysis_version=row.analysis_version,
            prompt_version=row.prompt_version,
            prompt_model=row.prompt_model,
            judge_model=row.judge_model,
            job_id=row.job_id,
            self_critique=rubric.get("critique"),
            failures=row.failures,
            suggestions=suggestions,
            evidence=row.evidence,
            audit_ids=row.audit_ids,
            duration_ms=row.duration_ms,
        ),
    )


def since(days: int, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(days=days)


def _today(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)


def window_evaluations(
    session: Session, start: datetime, camera_id: str | None = None
) -> list[EvaluationRow]:
    """Each event's newest evaluation made since `start` that measured something."""
    query = (
        select(EvaluationRow)
        .where(EvaluationRow.created_at >= start, EvaluationRow.status.in_(SETTLED))
        .order_by(EvaluationRow.batch_id, EvaluationRow.created_at.desc(), EvaluationRow.id.desc())
        .ext(distinct_on(EvaluationRow.batch_id))
    )
    if camera_id is not None:
        query = query.where(EvaluationRow.camera_id == camera_id)
    return list(session.scalars(query))


def _mean(values: Sequence[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _pearson(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    if len(xs) < MIN_CORRELATED:
        return None
    try:
        return round(statistics.correlation(xs, ys), 4)
    except statistics.StatisticsError:  # no variance in one of them
        return None


def contributions_by_model(rows: Sequence[EvaluationRow]) -> dict[str, list[tuple[float, float]]]:
    """Per model: (its contribution, the evaluation's overall quality) per evaluation."""
    pairs: dict[str, list[tuple[float, float | None]]] = defaultdict(list)
    for row in rows:
        for model, share in (row.model_contributions or {}).items():
            pairs[model].append((share, row.overall))
    return pairs


def leaderboard(session: Session, days: int) -> Leaderboard:
    rows = window_evaluations(session, since(days))
    entries = []
    for model, pairs in contributions_by_model(rows).items():
        rated = [(share, q) for share, q in pairs if q is not None]
        entries.append(
            LeaderboardEntry(
                model_name=model,
                contribution_rate=_mean([share for share, _ in pairs]) or 0.0,
                total_events=len(pairs),
                avg_quality_score=_mean([q for _, q in rated]),
                quality_correlation=_pearson([s for s, _ in rated], [q for _, q in rated]),
            )
        )
    entries.sort(key=lambda e: (-e.contribution_rate, e.model_name))
    return Leaderboard(entries=entries, period_days=days, total_events=len(rows))


def _normalised(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".!").lower()


def recommendations(session: Session, days: int) -> Recommendations:
    rows = window_evaluations(session, since(days))
    evaluated = [row for row in rows if row.prompt_suggestions is not None]
    groups: dict[tuple[str, str, str], list[EvaluationRow]] = defaultdict(list)
    wording: dict[tuple[str, str, str], str] = {}
    for row in evaluated:
        raised = set()
        for s in row.prompt_suggestions:
            key = (row.prompt_model, s["category"], _normalised(s["suggestion"]))
            wording.setdefault(key, s["suggestion"].strip())
            raised.add(key)
        for key in raised:
            groups[key].append(row)
    found = []
    for key, raising in groups.items():
        model, category, _ = key
        share = len(raising) / len(evaluated)
        priority = next((p for p, least in PRIORITY_SHARES if share >= least), "low")
        raisers = {row.id for row in raising}
        inside = [r.overall for r in raising if r.overall is not None]
        outside = [r.overall for r in rows if r.id not in raisers and r.overall is not None]
        gap = (
            round(statistics.fmean(outside) - statistics.fmean(inside), 4)
            if inside and outside
            else None
        )
        found.append(
            Recommendation(
                model=model,
                priority=priority,
                category=category,
                suggestion=wording[key],
                impact_estimate=gap,
                affected_events=len(raising),
            )
        )
    order = {"high": 0, "medium": 1, "low": 2}
    found.sort(key=lambda r: (order[r.priority], -r.affected_events, r.suggestion))
    return Recommendations(
        recommendations=found, period_days=days, total_events_analyzed=len(evaluated)
    )


def _calls(session: Session, start: datetime, camera_id: str | None) -> dict[str, ModelStats]:
    """Per model, its outputs in the window and their mean latency."""
    found: dict[str, ModelStats] = {}

    def scoped(query: Select, camera_column) -> Select:
        return query.where(camera_column == camera_id) if camera_id is not None else query

    analyses = scoped(
        select(AuditRow.model_name, func.count(), func.avg(AuditRow.latency_ms))
        .where(AuditRow.created_at >= start, AuditRow.outcome == "success")
        .group_by(AuditRow.model_name),
        AuditRow.camera_id,
    )

    def detections_before(first: datetime) -> Select:
        return scoped(
            select(
                DetectionRow.model_name,
                func.count(distinct(DetectionRow.image_id)),
                func.count(DetectionRow.latency_ms),
                func.coalesce(func.sum(DetectionRow.latency_ms), 0),
            )
            .where(DetectionRow.detected_at >= start, DetectionRow.detected_at < first)
            .group_by(DetectionRow.model_name),
            DetectionRow.camera_id,
        )

    def enrichments_before(first: datetime) -> Select:
        return scoped(
            select(
                EnrichmentRow.model_name,
                func.count(),
                func.count(EnrichmentRow.latency_ms),
                func.coalesce(func.sum(EnrichmentRow.latency_ms), 0),
            )
            .where(EnrichmentRow.created_at >= start, EnrichmentRow.created_at < first)
            .group_by(EnrichmentRow.model_name),
            EnrichmentRow.camera_id,
        )

    # The detector's outputs are the images it detected (its calls), the vision model's its
    # enrichments; both from the daily rollup.
    rolled_up = [
        *calls_since(
            session, "detected_image", "detection", start, camera_id, detections_before
        ).items(),
        *calls_since(
            session, "enrichment", "enrichment", start, camera_id, enrichments_before
        ).items(),
    ]
    for model, count, latency in [*session.execute(analyses), *((m, *v) for m, v in rolled_up)]:
        found[model] = ModelStats(
            events=count,
            avg_latency_ms=round(latency, 1) if latency is not None else None,
            contribution_rate=None,
        )
    return found


def stats(session: Session, days: int, camera_id: str | None) -> AuditStats:
    start, today = since(days), _today()

    def events_since(moment: datetime) -> int:
        query = select(func.count()).select_from(SecurityEventRow)
        query = query.where(SecurityEventRow.created_at >= moment)
        if camera_id is not None:
            query = query.where(SecurityEventRow.camera_id == camera_id)
        return session.scalar(query) or 0

    rows = window_evaluations(session, start, camera_id)
    by_model = _calls(session, start, camera_id)
    for model, pairs in contributions_by_model(rows).items():
        rate = _mean([share for share, _ in pairs])
        shown = by_model.get(model) or ModelStats(
            events=0, avg_latency_ms=None, contribution_rate=None
        )
        by_model[model] = shown.model_copy(update={"contribution_rate": rate})

    def tokens(moment: datetime) -> tuple[int, int]:
        query = select(
            func.coalesce(func.sum(AuditRow.tokens_in), 0),
            func.coalesce(func.sum(AuditRow.tokens_out), 0),
        ).where(AuditRow.created_at >= moment)
        if camera_id is not None:
            query = query.where(AuditRow.camera_id == camera_id)
        tokens_in, tokens_out = session.execute(query).one()
        return int(tokens_in), int(tokens_out)

    total_in, total_out = tokens(start)
    today_in, today_out = tokens(max(today, start))
    return AuditStats(
        total_events=events_since(start),
        events_today=events_since(max(today, start)),
        evaluated_events=len(rows),
        by_model=by_model,
        quality_scores=QualityAverages(
            avg_coherence=_mean([r.coherence for r in rows if r.coherence is not None]),
            avg_relevance=_mean([r.relevance for r in rows if r.relevance is not None]),
            avg_consistency=_mean([r.consistency for r in rows if r.consistency is not None]),
        ),
        token_usage=TokenUsage(
            total_input=total_in,
            total_output=total_out,
            today_input=today_in,
            today_output=today_out,
        ),
        period_days=days,
    )
