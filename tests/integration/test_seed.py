"""`vigil bench seed`'s history is what the pipeline would have written: an outside consumer
reads exactly the generated messages per topic and event type, and the projector takes every
one of them (no reject) into read models that agree with it."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import text

from bench.seed import history, publish
from schemas.analysis import SecurityEventRecorded
from schemas.batches import BatchClosed
from schemas.detections import DetectionsProduced
from schemas.enrichments import DetectionsEnriched
from schemas.topics import (
    AI_AUDIT,
    BATCHES,
    DETECTIONS,
    DLQ_DETECTION,
    ENRICHMENTS,
    IMAGES,
    SECURITY_EVENTS,
)
from tests.support import read_topic, wait_for

OPTIONS = {"cameras": 4, "days": 2, "seed": 7, "end": datetime(2026, 11, 30, tzinfo=UTC)}
DETECTIONS_WANTED = 1500
TOPICS = (IMAGES, DETECTIONS, ENRICHMENTS, BATCHES, SECURITY_EVENTS, AI_AUDIT, DLQ_DETECTION)


def _rows(engine, table: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_seeded_history_is_read_and_projected_whole(own_stack, own_engine):
    expected = list(history(DETECTIONS_WANTED, **OPTIONS))
    seeded = publish(own_stack.kafka_bootstrap, DETECTIONS_WANTED, **OPTIONS)

    def of_type(messages) -> Counter[str]:
        return Counter(type(message).__name__ for message in messages)

    by_topic = {topic.name: read_topic(own_stack.kafka_bootstrap, topic) for topic in TOPICS}
    for topic in TOPICS:
        assert of_type(by_topic[topic.name]) == of_type(m for t, m in expected if t is topic)
    assert seeded.messages == Counter(t.name for t, _ in expected)
    produced = [m for m in by_topic[DETECTIONS.name] if isinstance(m, DetectionsProduced)]
    detections = sum(len(m.detections) for m in produced)
    assert seeded.detections == detections >= DETECTIONS_WANTED
    # Every camera's batches hold 5-200 detections but its last (closed when the seed ends),
    # and every detection is in exactly one batch.
    batches = [m for m in by_topic[BATCHES.name] if isinstance(m, BatchClosed)]
    assert sum(len(b.detections) for b in batches) == detections
    assert sum(not 5 <= len(b.detections) <= 200 for b in batches) <= OPTIONS["cameras"]
    events = [m for m in by_topic[SECURITY_EVENTS.name] if isinstance(m, SecurityEventRecorded)]
    versions = Counter(e.batch_id for e in events)
    assert set(versions) == {b.batch_id for b in batches}
    assert set(versions.values()) <= {1, 2, 3}
    assert {e.audit_id for e in events} == {a.audit_id for a in by_topic[AI_AUDIT.name]}
    letters = by_topic[DLQ_DETECTION.name]
    assert letters, "no dead letter among the seeded images"
    described = sum(
        len(m.enrichments) for m in by_topic[ENRICHMENTS.name] if isinstance(m, DetectionsEnriched)
    )

    expected_rows = {
        "images": len(by_topic[IMAGES.name]),
        "detections": detections,
        "enrichments": described,
        "batches": len(batches),
        "events": len(versions),
        "event_analyses": len(events),
        "ai_audit": len(events),
        "dead_letters": len(letters),
        "projection_rejects": 0,
    }
    seen: list[dict[str, int]] = []

    def projected() -> bool:
        seen.append({table: _rows(own_engine, table) for table in expected_rows})
        return seen[-1] == expected_rows

    projector = own_stack.start_app("projector", name="seed-projector")
    try:
        wait_for(projected, timeout=120, what="every seeded message projected")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; rows {seen[-1]}, expected {expected_rows}") from None
    finally:
        projector.stop()
