"""The projector applies consecutive events of its busiest types as one run (a statement or
two per run, not per record). A seeded history, with some records delivered a second time
further on, gives the same read models applied in batches of runs as applied one record at
a time."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from bench.seed import history
from projections.runner import Projector
from tests.support import Record, fresh_read_models

TABLES = {
    "images": "image_id, camera_id, file_path, sha256, size_bytes, file_modified_at, "
    "received_at, status, width, height, detection_count, detected_at, error",
    "detections": "image_id, position, camera_id, label, confidence, x1, y1, x2, y2, "
    "model_name, detected_at, reprocessed",
    "enrichments": "source_event_id, image_id, position, detection_type, description, "
    "confidence, created_at",
    "batches": "batch_id, camera_id, status, started_at, completed_at, detection_count, "
    "last_activity_at, trigger, event_id IS NOT NULL, error",
    "batch_detections": "batch_id, image_id, position",
    "events": "batch_id, camera_id, analysis_version, risk_score, risk_level, summary, "
    "prompt_version, audit_id, started_at, ended_at, detection_count, created_at, updated_at",
    "event_analyses": "batch_id, analysis_version, risk_score, summary, audit_id, created_at",
    "ai_audit": "audit_id, model_name, batch_id, tokens_in, tokens_out, outcome, created_at",
}


def _records() -> list[Record]:
    """The history's records in order up to a point where each camera has a batch open,
    every 5th one of them delivered again 45 records later."""
    end = datetime(2026, 11, 30, tzinfo=UTC)
    facts = list(history(1500, cameras=3, days=1, seed=11, end=end))
    facts = facts[: len(facts) * 4 // 5]
    records = [
        Record(topic.name, n, topic.encode(message)) for n, (topic, message) in enumerate(facts)
    ]
    again = list(records)
    for n in range(0, len(records), 5):
        again.insert(min(n + 45, len(again)), records[n])
    # As a replay fetches them: a topic's records together (long runs of one type), in
    # their order; offsets renumbered, the duplicates being records of their own.
    again.sort(key=lambda record: record.topic())
    return [Record(r.topic(), n, r.value()) for n, r in enumerate(again)]


def _contents(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {
            table: sorted(connection.execute(text(f"SELECT {columns} FROM {table}")).all())
            for table, columns in TABLES.items()
        }


def test_runs_and_records_one_at_a_time_give_the_same_read_models(own_stack):
    records = _records()
    with fresh_read_models(own_stack.database_url, "runs", 2) as (in_runs, one_by_one):
        runs = Projector(in_runs, "127.0.0.1:9", consumer_name="runs")
        single = Projector(one_by_one, "127.0.0.1:9", consumer_name="single", run_handlers={})
        for start in range(0, len(records), 500):
            runs.apply(records[start : start + 500])
        for record in records:
            single.apply([record])
        got, want = _contents(in_runs), _contents(one_by_one)
    assert {t: len(rows) for t, rows in got.items()} == {t: len(rows) for t, rows in want.items()}
    assert got == want
    assert len(want["detections"]) >= 1000
    assert any(batch[2] == "aggregating" for batch in want["batches"])
    assert any(event[2] > 1 for event in want["events"])  # events moved on to a new version
