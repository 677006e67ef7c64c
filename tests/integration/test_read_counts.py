"""Counts from the daily rollup (`read_counts`, kept by triggers) are the counts of the rows
themselves: for every filter shape the list endpoints count, after inserts, redeliveries,
updates and deletes; and the enrichment stats are those of the whole table."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, distinct, func, select, update
from sqlalchemy.orm import Session

from api.queries.counts import calls_since
from api.queries.detections import DetectionFilter, _filtered, count_detections
from api.queries.enrichment import (
    EnrichmentFilter,
    count_enrichments,
    enrichment_stats,
)
from api.queries.enrichment import _filtered as enrichment_filtered
from bench.seed import DETECTOR, history
from projections.runner import Projector
from projections.tables import DetectionRow, EnrichmentRow
from tests.support import Record, fresh_read_models

END = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Range edges inside days, on midnights, within one day, open on either side, empty.
RANGES = [
    (None, None),
    (END - timedelta(days=2, hours=5), END - timedelta(hours=7)),
    (datetime(2026, 11, 28, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC)),
    (END - timedelta(hours=30), END - timedelta(hours=29)),
    (END - timedelta(days=1, minutes=3), None),
    (None, END - timedelta(days=2, seconds=1)),
    (END + timedelta(days=1), None),
]


@pytest.fixture(scope="module")
def engine(own_stack):
    facts = history(2500, cameras=3, days=3, seed=5, end=END)
    records = [Record(t.name, n, t.encode(m)) for n, (t, m) in enumerate(facts)]
    with fresh_read_models(own_stack.database_url, "counts", 1) as (engine,):
        projector = Projector(engine, "127.0.0.1:9", consumer_name="counts")
        for start in range(0, len(records), 400):
            projector.apply(records[start : start + 400])
        projector.apply(records[:300])  # redelivered: counted once
        yield engine


def _detection_filters() -> list[DetectionFilter]:
    shapes = [
        {"model_name": DETECTOR},
        {"model_name": DETECTOR, "camera_id": "cam-01"},
        {"model_name": DETECTOR, "label": "person"},
        {"model_name": DETECTOR, "camera_id": "cam-02", "label": "car", "model_version": "1"},
        {"model_name": "centernet"},
        {"model_name": DETECTOR, "min_confidence": 0.8},
    ]
    return [
        DetectionFilter(**shape, start_date=start, end_date=end)
        for shape in shapes
        for start, end in RANGES
    ]


def _enrichment_filters() -> list[EnrichmentFilter]:
    shapes = [{}, {"camera_id": "cam-00"}, {"detection_type": "person"}, {"min_confidence": 0.7}]
    return [
        EnrichmentFilter(**shape, start_date=start, end_date=end)
        for shape in shapes
        for start, end in RANGES
    ]


def _mismatches(engine) -> list[tuple]:
    with Session(engine) as session:
        wrong = []
        for f in _detection_filters():
            rows = session.scalar(_filtered(select(func.count()).select_from(DetectionRow), f))
            if count_detections(session, f) != rows:
                wrong.append((f, count_detections(session, f), rows))
        for f in _enrichment_filters():
            query = enrichment_filtered(select(func.count()).select_from(EnrichmentRow), f)
            rows = session.scalar(query)
            if count_enrichments(session, f) != rows:
                wrong.append((f, count_enrichments(session, f), rows))
    return wrong


def test_counts_are_the_rows_counts(engine):
    with Session(engine) as session:
        assert (
            count_detections(session, DetectionFilter(model_name=DETECTOR)) >= 1000
        )  # (another test deletes some)
    assert _mismatches(engine) == []


def test_counts_follow_updates_and_deletes(engine):
    with Session(engine) as session, session.begin():
        session.execute(
            update(DetectionRow).where(DetectionRow.label == "dog").values(label="person")
        )
        session.execute(
            delete(DetectionRow).where(DetectionRow.detected_at < END - timedelta(days=2))
        )
        session.execute(delete(EnrichmentRow).where(EnrichmentRow.camera_id == "cam-01"))
    assert _mismatches(engine) == []


def test_enrichment_stats_are_the_tables(engine):
    now = END
    with Session(engine) as session:
        for camera_id in (None, "cam-02"):
            query = select(
                func.count(),
                func.count().filter(EnrichmentRow.created_at >= END.replace(hour=0)),
                func.avg(EnrichmentRow.confidence),
                func.avg(EnrichmentRow.latency_ms),
                func.percentile_cont(0.95).within_group(EnrichmentRow.latency_ms),
            )
            if camera_id is not None:
                query = query.where(EnrichmentRow.camera_id == camera_id)
            total, today, confidence, latency, p95 = session.execute(query).one()
            by_type = dict(
                session.execute(
                    enrichment_filtered(
                        select(EnrichmentRow.detection_type, func.count()),
                        EnrichmentFilter(camera_id=camera_id),
                    ).group_by(EnrichmentRow.detection_type)
                ).all()
            )
            stats = enrichment_stats(session, now, camera_id)
            assert (stats.total_enrichments, stats.enrichments_today) == (total, today)
            assert stats.by_detection_type == by_type
            assert math.isclose(stats.avg_confidence, confidence, rel_tol=1e-9)
            assert math.isclose(stats.avg_latency_ms, latency, rel_tol=1e-9)
            assert math.isclose(stats.p95_latency_ms, p95, rel_tol=1e-9)
            assert total > 100 and today > 0


def _scoped(query, column, camera_id):
    return query if camera_id is None else query.where(column == camera_id)


@pytest.mark.parametrize("camera_id", [None, "cam-01"])
@pytest.mark.parametrize("hours", [12, 30, 49, 24 * 7])
def test_calls_per_model_since_are_the_tables(engine, camera_id, hours):
    start = END - timedelta(hours=hours, minutes=17)

    def detections(*columns, until=None):
        query = select(DetectionRow.model_name, *columns).where(DetectionRow.detected_at >= start)
        if until is not None:
            query = query.where(DetectionRow.detected_at < until)
        return _scoped(query, DetectionRow.camera_id, camera_id).group_by(DetectionRow.model_name)

    images = func.count(distinct(DetectionRow.image_id))
    with Session(engine) as session:
        want = {
            model: (count, latency)
            for model, count, latency in session.execute(
                detections(images, func.avg(DetectionRow.latency_ms))
            )
        }
        got = calls_since(
            session,
            "detected_image",
            "detection",
            start,
            camera_id,
            lambda first: detections(
                images,
                func.count(DetectionRow.latency_ms),
                func.coalesce(func.sum(DetectionRow.latency_ms), 0),
                until=first,
            ),
        )
    assert want, "detections in the window"
    assert got.keys() == want.keys()
    for model, (count, latency) in want.items():
        assert got[model][0] == count
        assert math.isclose(got[model][1], latency, rel_tol=1e-9)
